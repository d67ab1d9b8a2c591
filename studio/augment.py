"""Batched preprocessing and augmentation on tensors, on the training device.

Why not per-image PIL transforms: on a GPU they starve the model (the tutorial
loop reaches 5% of what the card can train), and on a CPU they repeat work in
every epoch. One affine grid sample per batch gives each image its own random
resized crop and flip.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from studio.choices import STRENGTHS  # noqa: F401 - named here too


# How much each training view may differ from the photo: the smallest share of the photo a
# random crop keeps, and how far brightness, contrast and saturation may move.


def to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor on `device` without waiting for the GPU.

    A plain `.to("cuda")` waits until every queued kernel has finished, so a few of
    them per batch keep the CPU from queueing the next step while the GPU works.
    """
    if values.device == device:
        return values
    return values.to(device, non_blocking=True)


def normalize(batch: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """0-255 pixels [N,3,H,W] (uint8 or float) to normalised float, as the pretrained weights expect."""
    mean_t = to_device(torch.tensor(mean, dtype=dtype).view(1, 3, 1, 1) * 255.0, batch.device)
    std_t = to_device(torch.tensor(std, dtype=dtype).view(1, 3, 1, 1) * 255.0, batch.device)
    return (batch.to(dtype) - mean_t) / std_t


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    height, width = batch.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return batch[..., top:top + size, left:left + size]


def random_resized_crop(batch: torch.Tensor, size: int, generator: torch.Generator | None = None,
                        scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True) -> torch.Tensor:
    """Per-image random crop (area fraction in `scale`, aspect in `ratio`), resize and flip.

    `batch` is float [N,3,H,W]; the random numbers come from `generator` on the CPU
    so a seed gives the same crops on every device.
    """
    n = batch.shape[0]
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
    sign = torch.ones(n)
    if flip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = width * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    theta = to_device(theta.to(batch.dtype), batch.device)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(batch_u8_float: torch.Tensor, strength: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Light brightness/contrast/saturation changes on 0-255 float images."""
    if strength <= 0:
        return batch_u8_float
    n = batch_u8_float.shape[0]

    def factors() -> torch.Tensor:
        values = 1 + (torch.rand(n, generator=generator) * 2 - 1) * strength
        return to_device(values.to(batch_u8_float.dtype), batch_u8_float.device).view(n, 1, 1, 1)

    x = batch_u8_float * factors()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factors() + mean
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * factors() + gray
    return x.clamp(0, 255)


def eval_batch(batch_u8: torch.Tensor, preprocessing: dict, dtype=torch.float32) -> torch.Tensor:
    """Cached squares to the model's evaluation input (centre crop, normalise)."""
    cropped = center_crop(batch_u8, preprocessing["input_size"])
    return normalize(cropped, preprocessing["mean"], preprocessing["std"], dtype)


def train_batch(batch_u8: torch.Tensor, preprocessing: dict, generator: torch.Generator | None,
                jitter: float = 0.1, scale=(0.35, 1.0), dtype=torch.float32, size: int | None = None,
                smallest: float = 1.0, softest: float = 1.0, mirror: bool = True) -> torch.Tensor:
    """Cached squares to an augmented, normalised training batch (`size` px, default the input size).

    Crops zoom in (`scale`: the share of the photo kept) unless `smallest` < 1, which zooms out instead
    (the object shrinks to that share of the frame); `softest` < 1 resamples down to that share and back."""
    size = size or preprocessing["input_size"]
    x = batch_u8.to(dtype)
    x = color_jitter(x, jitter, generator)
    if smallest < 1.0:
        x = zoom_out(x, size, smallest, generator)
    else:
        x = random_resized_crop(x, size, generator, scale=scale, flip=mirror)
    if softest < 1.0:
        x = soften(x, softest, generator)
    return normalize(x, preprocessing["mean"], preprocessing["std"], dtype)


def zoom_out(batch: torch.Tensor, size: int, smallest: float, generator: torch.Generator | None = None,
             shift: float = 0.15) -> torch.Tensor:
    """Each photo shrunk to a random share (down to `smallest`) of a `size` px frame, a little off centre,
    its edges repeated around it: the object as a farther or wider camera frames it. Never mirrored."""
    n = batch.shape[0]
    scale = torch.empty(n).uniform_(1.0, 1.0 / smallest, generator=generator)
    aspect = torch.exp(torch.empty(n).uniform_(math.log(0.85), math.log(1 / 0.85), generator=generator))
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * aspect.sqrt(), scale / aspect.sqrt()
    theta[:, 0, 2] = (torch.rand(n, generator=generator) * 2 - 1) * shift
    theta[:, 1, 2] = (torch.rand(n, generator=generator) * 2 - 1) * shift
    theta = to_device(theta.to(batch.dtype), batch.device)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def soften(batch: torch.Tensor, softest: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The batch resampled down to a random share (down to `softest`) of its size and back: the detail a
    cheaper or farther camera loses."""
    size = batch.shape[-1]
    factor = float(torch.empty(1).uniform_(softest, 1.0, generator=generator))
    small = max(8, int(size * factor))
    return F.interpolate(F.interpolate(batch, size=small, mode="bilinear", antialias=True), size=size,
                         mode="bilinear")
