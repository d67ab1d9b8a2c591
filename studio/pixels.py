"""Decode every image of a run once into a compact uint8 tensor cache.

The tutorial loop decodes and resizes each JPEG again in every epoch; here each
file is decoded once (JPEG draft mode skips detail a resize would discard) into
an N x 3 x S x S uint8 tensor, where S = input size / crop fraction. Evaluation
takes the centre crop of S (timm's own eval preprocessing); augmentation crops
batches of it on the training device (see `augment`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from studio.imaging import ImageDecodeError, decode_square


def cache_side(preprocessing: dict) -> int:
    """Side of the cached square: the resize that precedes timm's centre crop."""
    return int(round(preprocessing["input_size"] / preprocessing["crop_pct"]))


def decode_all(files: list[str], side: int, progress: Callable[[int, int], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Decode `files` into (uint8 tensor [N, 3, side, side], failures).

    A file that fails to decode is left out of the tensor and reported as
    {"index", "path", "reason"}, so the caller can drop it from its table.
    Decoding runs on a thread pool: PIL releases the GIL while it decodes.
    """
    out = np.empty((len(files), side, side, 3), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    failures: list[dict] = []

    def work(index: int) -> None:
        try:
            out[index] = decode_square(files[index], side)
            ok[index] = True
        except ImageDecodeError as exc:
            failures.append({"index": index, "path": files[index], "reason": str(exc)})

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for done, _ in enumerate(pool.map(work, range(len(files))), start=1):
            if progress and (done % 16 == 0 or done == len(files)):
                progress(done, len(files))
            if should_stop and should_stop():
                break
    pixels = torch.from_numpy(out[ok]).permute(0, 3, 1, 2).contiguous()
    failures.sort(key=lambda f: f["index"])
    return pixels, failures
