"""How labelled photos are shown while adapting: as in training, or as photos from another camera.

A new site's photos differ from the training photos mostly in how they were taken, not in what they
show: the object smaller in the frame, softer (a cheaper or farther camera), other light. SITE_LIKE
views vary exactly those things. Trained into the source model they are the biggest lever measured
(benchmarks/SHIFT.md: rendered signs to real photos, 68% -> 88%); in `studio adapt`'s short retraining
they did not pay (71.8% against 73.7% with the usual views, and the validation photos lost 12 points),
so adapt keeps the usual views and SITE_LIKE waits for a `studio train` option.

Choosing the views by the new photos was tried and dropped: in the model's features (and in
ImageNet's) the real signs lie nearer the usual views than the site-like ones by every distance tried
(nearest neighbours, centroids, MMD), yet the site-like ones are what get them right: they work by
making the network indifferent to size, blur and light, not by imitating the new photos. Mirror images
are never used here: a left arrow, a line of text or a left hand would become something else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from studio import augment


@dataclass(frozen=True)
class Views:
    name: str
    words: str
    smallest: float = 1.0      # the object may shrink to this share of the frame (1: never; crops only zoom in)
    softest: float = 1.0       # the photo may be resampled down to this share of its size and back (1: never)
    jitter: float = 0.1        # how far brightness, contrast and saturation may move


AS_TRAINED = Views("as trained", "the labelled photos shown as in training (random crops, light colour changes)")
SITE_LIKE = Views("site-like", "the labelled photos shown smaller in the frame, softer and in other light, as "
                  "photos from another camera are", smallest=0.6, softest=0.25, jitter=0.4)
CANDIDATES = (AS_TRAINED, SITE_LIKE)
BY_NAME = {views.name: views for views in CANDIDATES}


def show(pixels: torch.Tensor, prep: dict, size: int, views: Views, generator: torch.Generator,
         jitter: float | None = None) -> torch.Tensor:
    """uint8 squares -> normalised training views of `size` px, channels_last."""
    x = augment.color_jitter(pixels.float(), views.jitter if jitter is None else jitter, generator)
    if views.smallest < 1.0:
        x = _smaller(x, size, views.smallest, generator)
    else:
        x = augment.random_resized_crop(x, size, generator, flip=False)
    if views.softest < 1.0:
        factor = float(torch.empty(1).uniform_(views.softest, 1.0, generator=generator))
        small = max(8, int(size * factor))
        x = F.interpolate(F.interpolate(x, size=small, mode="bilinear", antialias=True), size=size, mode="bilinear")
    return augment.normalize(x, prep["mean"], prep["std"]).contiguous(memory_format=torch.channels_last)


def _smaller(x: torch.Tensor, size: int, smallest: float, generator: torch.Generator) -> torch.Tensor:
    """Each photo zoomed out to a random share of the frame (edges repeated around it), a little off centre."""
    n = x.shape[0]
    scale = torch.empty(n).uniform_(1.0, 1.0 / smallest, generator=generator)
    aspect = torch.exp(torch.empty(n).uniform_(math.log(0.85), math.log(1 / 0.85), generator=generator))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * aspect.sqrt(), scale / aspect.sqrt()
    theta[:, 0, 2] = (torch.rand(n, generator=generator) * 2 - 1) * 0.15
    theta[:, 1, 2] = (torch.rand(n, generator=generator) * 2 - 1) * 0.15
    grid = F.affine_grid(theta.to(x.dtype), [n, 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
