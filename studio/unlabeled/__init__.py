"""Photos nobody has labelled: sort them into groups by what a pretrained network sees, and suggest
which to label first.

    grouping = sort_photos(["camera-trap/"])          # the number of groups chosen automatically
    grouping.name(0, "deer"); grouping.merge(3, 4); grouping.split(1); grouping.move(path, 2)
    grouping.save(folder)                             # a dataset of class folders, ready to train
    label_next(grouping, labelled=[...])              # the photos to label first

What `studio cluster`, the Data step's *Sort my photos* and `studio.sort_photos` share. The photos
themselves are never changed: saving copies them.
"""
from studio.unlabeled.features import PhotoFeatures, photo_features
from studio.unlabeled.grouping import Group, Grouping, GroupingError, sort_photos
from studio.unlabeled.suggest import label_next

__all__ = ["Group", "Grouping", "GroupingError", "PhotoFeatures", "label_next", "photo_features", "sort_photos"]
