"""Pretrained networks as the studio uses them.

`features`: the one frozen-feature extractor (pooled backbone features, traced into one graph on a
CPU), shared by training's head stage and, through the same class, by anything else that needs a
frozen backbone's view of the photos.
"""
