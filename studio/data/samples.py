"""What a source is read into: a `Dataset` (the samples table: path, label, split, and every file not
used, with the reason), `DatasetError`, the words each skip reason starts with, and the split.

The readers (`sources`, `layouts`, `zips`) fill these in; the doctor (`checks`) sorts skipped files by the
reason starts defined here.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}

# The start of each reason: the doctor and the page sort skipped files by these, so keep them stable.
JUNK = "system or hidden file, not data"
NOT_UNPACKED = "not unpacked"
OUTSIDE_CLASS = "file outside a class folder"   # the Data step matches reasons by this start
EMPTY_CLASS = "empty class folder"
NO_TRAINING = "no training images for class"
TEST_SPLIT = "test split, kept apart"
LEFT_OUT = "left out"

SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"
LABEL_JOIN = ";"   # a multi-label photo's labels in the samples table's one `label` cell


def label_list(cell: str) -> list[str]:
    """A multi-label cell's labels (none for an empty cell: a photo that shows none of them)."""
    return [part for part in str(cell).split(LABEL_JOIN) if part]


def one_class_only(dataset: "Dataset", what: str) -> None:
    """Refuse, in words, a tool that works with one class per photo when the data is multi-label."""
    if dataset.is_multilabel:
        raise DatasetError(f"{what} works with one class per photo; this data gives photos several labels (a "
                           "multi-label task). Train with Auto, or choose a backbone and depth yourself.")


def per_label(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per photo and label it has (a multi-label table's `label` cells split): the shape every count
    per class is made from."""
    return samples.assign(label=samples.label.map(label_list)).explode("label").dropna(subset=["label"])


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message says what to do."""


@dataclass
class Dataset:
    root: Path
    samples: pd.DataFrame              # columns: path, label, split
    classes: list[str]
    skipped: list[dict] = field(default_factory=list)   # {"path", "reason"[, "members"]}, path as uploaded
    split_source: str = "folders"      # "folders" or "auto" (stratified split made here)
    source: str = ""
    upload_root: str = ""              # the extraction folder when the data came from a zip, else ""
    renamed: dict = field(default_factory=dict)   # path in that folder -> zip member name, where they differ
    task: str = SINGLE_LABEL           # MULTI_LABEL: each `label` cell holds the photo's labels joined by LABEL_JOIN
    multilabel_check: dict | None = None   # the multi-label data check (studio.multilabel.labels.check)

    @property
    def is_multilabel(self) -> bool:
        return self.task == MULTI_LABEL

    def by_class(self) -> pd.DataFrame:
        """The samples with one row per photo and class it belongs to (for a single-label task, the samples)."""
        return per_label(self.samples) if self.is_multilabel else self.samples

    def counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns); a multi-label photo counts once for each of its labels."""
        table = self.by_class().groupby(["label", "split"]).size().unstack(fill_value=0)
        table = table.reindex(index=self.classes, fill_value=0)
        return table[[s for s in ("train", "val", "test") if s in table.columns]]

    def split(self, name: str) -> pd.DataFrame:
        return self.samples[self.samples.split == name].reset_index(drop=True)

    def shown(self, path: str | Path, folder: bool = False) -> str:
        """A file's name as the user uploaded it: its zip member name, or (for a folder) its path."""
        if not self.upload_root:
            return str(path) + ("/" if folder else "")
        relative = os.path.relpath(os.path.abspath(path), self.upload_root)
        if relative == ".." or relative.startswith(".." + os.sep):
            return str(path)
        relative = relative.replace(os.sep, "/") + ("/" if folder else "")
        return self.renamed.get(relative, relative)

    def summary(self) -> dict:
        counts = self.counts()
        return {"root": str(self.root), "source": self.source, "classes": self.classes,
                "counts": {c: {s: int(counts.loc[c, s]) for s in counts.columns} for c in self.classes},
                "images": int(len(self.samples)), "split_source": self.split_source,
                "skipped": self.skipped}


def is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


def junk_reason(name: str) -> str:
    """Why a system or hidden file is ignored, for the one name (file or folder) that makes it junk."""
    lower = name.lower()
    if lower == "__macosx":
        return f"{JUNK}: copies macOS adds when it makes a zip (__MACOSX); ignored, nothing to do"
    if lower == ".ds_store":
        return f"{JUNK}: folder settings macOS leaves in every folder; ignored, nothing to do"
    if lower in ("thumbs.db", "desktop.ini"):
        return f"{JUNK}: a file Windows leaves in folders; ignored, nothing to do"
    if name.startswith("._"):
        return f"{JUNK}: a macOS resource-fork copy (a '._' file); ignored, nothing to do"
    return f"{JUNK}: its name starts with '.', which hides it; rename it without the '.' if it should be used"



def stratified_split(labels: list[str], val_fraction: float, seed: int) -> list[str]:
    """Assign 'train' or 'val' per item, the same fraction from every class, reproducibly."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    split = ["train"] * len(labels)
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        for index in members[:n_val]:
            split[index] = "val"
    return split

