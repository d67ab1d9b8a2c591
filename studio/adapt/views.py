"""How labelled photos are shown while adapting: as in training, or as photos from another camera.

A new site's photos differ from the training photos mostly in how they were taken, not in what they
show: the object smaller in the frame, softer (a cheaper or farther camera), other light. SITE_LIKE
views vary exactly those things: they are training's "other-cameras" augmentation (`augment.STRENGTHS`),
the biggest lever measured when trained into the source model (benchmarks/SHIFT.md: rendered signs to
real photos, 68% -> 88%). In `studio adapt`'s short retraining they did not pay (71.8% against 73.7%
with the usual views, and the validation photos lost 12 points), so adapt shows the labelled photos as
the source run did: site-like only for a run trained with other-cameras views.

Choosing the views by the new photos was tried and dropped: in the model's features (and in
ImageNet's) the real signs lie nearer the usual views than the site-like ones by every distance tried
(nearest neighbours, centroids, MMD), yet the site-like ones are what get them right: they work by
making the network indifferent to size, blur and light, not by imitating the new photos. Mirror images
are never used here: a left arrow, a line of text or a left hand would become something else.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from studio import augment


OTHER_CAMERAS = augment.STRENGTHS["other-cameras"]


@dataclass(frozen=True)
class Views:
    name: str
    words: str
    smallest: float = 1.0      # the object may shrink to this share of the frame (1: never; crops only zoom in)
    softest: float = 1.0       # the photo may be resampled down to this share of its size and back (1: never)
    jitter: float = 0.1        # how far brightness, contrast and saturation may move


AS_TRAINED = Views("as trained", "the labelled photos shown as in training (random crops, light colour changes)")
SITE_LIKE = Views("site-like", "the labelled photos shown smaller in the frame, softer and in other light, as "
                  "photos from another camera are", smallest=OTHER_CAMERAS["smallest"],
                  softest=OTHER_CAMERAS["softest"], jitter=OTHER_CAMERAS["jitter"])
CANDIDATES = (AS_TRAINED, SITE_LIKE)
BY_NAME = {views.name: views for views in CANDIDATES}


def for_source(name: str, source_config: dict) -> Views:
    """The views asked for; "as trained" means as the source run showed its photos, so a run trained with
    other-cameras views keeps them while adapting (switching them off would undo what made it robust)."""
    if name == AS_TRAINED.name and source_config.get("augment_strength") == "other-cameras":
        return SITE_LIKE
    return BY_NAME[name]


def show(pixels: torch.Tensor, prep: dict, size: int, views: Views, generator: torch.Generator,
         jitter: float | None = None) -> torch.Tensor:
    """uint8 squares -> normalised training views of `size` px, never mirrored, channels_last."""
    x = augment.train_batch(pixels, prep, generator, jitter=views.jitter if jitter is None else jitter, size=size,
                            smallest=views.smallest, softest=views.softest, mirror=False)
    return x.contiguous(memory_format=torch.channels_last)
