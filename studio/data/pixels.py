"""Where a run's pixels live: decoded once into memory, or streamed from disk.

The tutorial loop decodes and resizes each JPEG again in every epoch; here each
file is decoded once (JPEG draft mode skips detail a resize would discard) into
an N x 3 x S x S uint8 tensor, where S = input size / crop fraction. Evaluation
takes the centre crop of S (timm's own eval preprocessing); augmentation crops
batches of it on the training device (see `augment`).

A training run's cache is a `SquareCache`: the doctor's one pass over the files
(`checks.diagnose`) decodes each square into it while it checks the file, and the
run's train and validation sets are `CachedPixels` views of that one array. Other
users (the LR finder, outliers, parity, prediction) decode with `decode_all`.

When that cache would not fit the memory budget, `StreamedPixels` decodes the
same squares from disk in DataLoader worker processes, batch by batch. Both hand
out identical uint8 batches for the same indices, so results do not depend on
which one a run uses.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from studio.data.imaging import ImageDecodeError, decode_square

BUDGET_FRACTION = 0.5   # of the memory available now: leaves room for the model, the page and other users


def cache_side(preprocessing: dict) -> int:
    """Side of the cached square: the resize that precedes timm's centre crop."""
    return int(round(preprocessing["input_size"] / preprocessing["crop_pct"]))


def cache_bytes(count: int, side: int) -> int:
    return count * side * side * 3


def parse_size(text: str) -> int:
    """'512MB', '8 GB', '1.5g' or a plain byte count to bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not match:
        raise ValueError(f"Cannot read {text!r} as a size; write e.g. 512MB or 8GB.")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "_kmgt".index(unit or "_"))


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable on Linux; the page-count estimate elsewhere)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024 ** 3


def memory_budget(override_mb: int | None = None) -> int:
    """Bytes a run's pixel cache may take: config, then STUDIO_CACHE_BUDGET, then half of free RAM."""
    if override_mb is not None:
        return int(override_mb) * 1024 ** 2
    if os.environ.get("STUDIO_CACHE_BUDGET"):
        return parse_size(os.environ["STUDIO_CACHE_BUDGET"])
    return int(available_memory() * BUDGET_FRACTION)


def gpu_budget(device: torch.device) -> int:
    """Bytes of GPU memory a pixel cache may take (half of what is free), 0 off CUDA."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(free * BUDGET_FRACTION)


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

    with ThreadPoolExecutor(decode_threads()) as pool:
        for done, _ in enumerate(pool.map(work, range(len(files))), start=1):
            if progress and (done % 16 == 0 or done == len(files)):
                progress(done, len(files))
            if should_stop and should_stop():
                break
    pixels = torch.from_numpy(out[ok]).permute(0, 3, 1, 2).contiguous()
    failures.sort(key=lambda f: f["index"])
    return pixels, failures


def decode_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class CachedPixels:
    """Decoded squares held in memory (on the GPU when they fit there).

    `rows` picks this source's images out of a larger array (a run's train and
    validation images share one `SquareCache`), so nothing is copied.
    """

    streamed = False

    def __init__(self, pixels: torch.Tensor, rows: torch.Tensor | None = None):
        self.pixels = pixels
        self.rows = torch.arange(len(pixels)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def batches(self, index_batches: Iterable[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
        for index in index_batches:
            rows = self.rows[index.to(self.rows.device, non_blocking=True)]
            yield self.pixels[rows].contiguous().to(device, non_blocking=True)


@dataclass
class SquareCache:
    """A run's decoded squares, filled in by the doctor's pass (`checks.gather`): rows[path] -> index in
    pixels. A run's train and validation sources are views of it (`sources`)."""
    side: int
    rows: dict[str, int]
    pixels: np.ndarray

    @classmethod
    def for_files(cls, files: list[str], side: int) -> "SquareCache":
        rows = {path: i for i, path in enumerate(dict.fromkeys(files))}
        return cls(side, rows, np.zeros((len(rows), side, side, 3), dtype=np.uint8))

    def sources(self, *file_lists: list[str]) -> list[CachedPixels]:
        """One CachedPixels per list of files, all views of the same array (no copy)."""
        pixels = torch.from_numpy(self.pixels).permute(0, 3, 1, 2)
        return [CachedPixels(pixels, torch.tensor([self.rows[f] for f in files], dtype=torch.long))
                for files in file_lists]


class _SquareFiles(torch.utils.data.Dataset):
    """One decoded square per file, for DataLoader workers."""

    def __init__(self, files: list[str], side: int):
        self.files, self.side = files, side

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(decode_square(self.files[index], self.side)).permute(2, 0, 1)


class StreamedPixels:
    """The same squares as CachedPixels, decoded from disk for every batch (bounded memory)."""

    streamed = True

    def __init__(self, files: list[str], side: int, workers: int | None = None):
        self.files, self.side = list(files), side
        self.workers = max(1, min(4, os.cpu_count() or 1)) if workers is None else workers

    def __len__(self) -> int:
        return len(self.files)

    def batches(self, index_batches: Iterable[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
        index_batches = [index.tolist() for index in index_batches]
        loader = torch.utils.data.DataLoader(
            _SquareFiles(self.files, self.side), batch_sampler=index_batches, num_workers=self.workers,
            pin_memory=device.type == "cuda", prefetch_factor=4 if self.workers else None)
        for batch in loader:
            yield batch.to(device, non_blocking=True)
