"""Pooled features of a pretrained backbone for a pile of unlabeled photos.

Why the pretrained network as it is: with no labels there is nothing to fine-tune on, and ImageNet
features already place photos of one kind of thing near each other (the premise of unsupervised
transfer). Photos are decoded in chunks, so ten thousand of them need no more memory than a few
hundred; files that cannot be read are listed with the reason, never dropped silently.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from studio import augment, backbones, hardware
from studio.data.imaging import image_files, is_image_name
from studio.data.samples import is_junk
from studio.data.zips import MANIFEST, extract_zip, read_manifest
from studio.data.pixels import CachedPixels, cache_side, decode_all
from studio.models.features import FeatureExtractor

CHUNK = 512               # photos decoded at once


def unpacked(photos: Sequence[str | Path]) -> list[Path]:
    """Files and folders as given, each .zip replaced by the folder it is safely extracted to (the zip
    itself is left as it is)."""
    return [extract_zip(Path(item)) if str(item).lower().endswith(".zip") and Path(item).is_file() else Path(item)
            for item in photos]


@dataclass
class PhotoFeatures:
    paths: list[str]                       # readable photos, in the order of `features`
    features: torch.Tensor                 # [n, D] float32
    backbone: str
    unreadable: list[dict] = field(default_factory=list)   # {"path", "reason"}


def photo_features(photos: Sequence[str | Path], backbone: str | None = None, device: str = "auto",
                   progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> PhotoFeatures:
    """Features of every image under `photos` (files and folders, any depth); a photo reached twice (a
    folder and a file in it, the same folder twice) counts once."""
    items = unpacked(photos)
    paths = _once([str(p) for p in image_files(items)])
    name = backbone or backbones.default_backbone()
    model = backbones.create_model(name, num_classes=0).eval()
    prep = backbones.preprocessing(model)
    target = hardware.pick_device(device)
    model.to(target)
    extractor = FeatureExtractor(model, name, prep, target, amp=hardware.fast_bf16(target))
    side = cache_side(prep)
    kept, chunks, unreadable = [], [], not_photos(items)
    total = len(paths)
    for start, readable, source in decoded_chunks(paths, side, unreadable):
        if should_stop and should_stop():
            break
        kept += readable
        if source is not None:   # progress at every batch: a few hundred photos are one chunk
            chunks.append(extractor.extract(
                source, lambda b: augment.eval_batch(b, prep),
                progress=progress and (lambda done, of, s=start, n=len(readable): progress(s + n * done // of, total))))
        if progress:
            progress(min(start + CHUNK, total), total)
    features = torch.cat(chunks) if chunks else torch.empty(0, 0)
    return PhotoFeatures(kept, features, name, unreadable)


def decoded_chunks(paths: list[str], side: int, unreadable: list[dict]):
    """(start, readable paths, their CachedPixels or None) for CHUNK photos at a time, so any number of
    photos needs the memory of one chunk; a photo that cannot be decoded goes to `unreadable` {path, reason}."""
    for start in range(0, len(paths), CHUNK):
        files = paths[start:start + CHUNK]
        pixels, failures = decode_all(files, side)
        failed = {f["path"] for f in failures}
        unreadable += [{"path": f["path"], "reason": f["reason"]} for f in failures]
        yield start, [p for p in files if p not in failed], CachedPixels(pixels) if len(pixels) else None


def not_photos(items: Sequence[Path]) -> list[dict]:
    """{path, reason} for every file under the folders of `items` that is not read as a photo (its name is
    not a photo's, or a zip member refused when unpacking), so none is left out silently. System files
    (.DS_Store, __MACOSX, hidden files) and the unpacking's own note are not listed."""
    rows = []
    for item in map(Path, items):
        if not item.is_dir():
            continue
        for entry in (read_manifest(item) or {}).get("refused") or []:
            if isinstance(entry, dict):
                rows.append({"path": entry.get("path") or entry.get("name") or "?",
                             "reason": entry.get("reason") or "not unpacked"})
        for file in sorted(item.rglob("*")):
            relative = file.relative_to(item)
            if (file.is_file() and not is_image_name(file) and file.name != MANIFEST
                    and not any(is_junk(part) for part in relative.parts)):
                rows.append({"path": str(file), "reason": "not a photo (its name does not end in .jpg, .png, "
                                                          ".webp, ...); left out"})
    return rows


def copies_of(paths: Sequence[str], references: Sequence[str | Path]) -> set[str]:
    """The paths that are one of `references` or hold the same bytes as one. Sizes are compared first, so
    only files of a size some reference has are read (a labelled dataset is not read again in full)."""
    def size(path) -> int | None:
        try:
            return os.path.getsize(path)
        except OSError:
            return None

    def digest(path) -> str | None:
        try:
            return hashlib.sha1(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None

    same_file = {os.path.realpath(r) for r in references}
    by_size: dict[int, list] = {}
    for reference in references:
        by_size.setdefault(size(reference), []).append(reference)
    candidates = [p for p in paths if os.path.realpath(p) not in same_file and size(p) in by_size]
    wanted = {d for s in {size(p) for p in candidates} for d in map(digest, by_size[s])} - {None}
    return {p for p in paths if os.path.realpath(p) in same_file} | {p for p in candidates if digest(p) in wanted}


def _once(paths: list[str]) -> list[str]:
    """`paths` without the ones that name a file already listed (in any spelling: ./a.jpg, a.jpg, a link)."""
    seen: set[str] = set()
    kept = []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept
