"""Optional doctor check: pictures that do not look like the rest of their class.

A placeholder ("image not found"), a blank frame or a screenshot that slipped
into a class folder decodes fine and passes every file check, yet teaches the
model nothing true. A pretrained network sees it: its features sit far from
every real photo of the dataset. This is a suggestion, never a verdict (an odd
but genuine photo can be flagged too), so nothing is left out unless the user
accepts it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from studio import augment, backbones, fastpath, hardware
from studio.data.findings import INFO, Finding
from studio.data.pixels import CachedPixels, cache_side, decode_all
from studio.data.samples import Dataset
from studio.models.features import FeatureExtractor

NEIGHBOURS = 5          # an image's score: mean cosine distance to its 5 nearest images
THRESHOLD = 5.5         # robust z above which a score stands out (measured: see tests/test_outliers.py)
MAX_SHARE = 0.05        # never flag more than 5% of a class (at least one may be flagged)
MIN_CLASS_SIZE = 8      # below this a class has no "typical" to compare with
MAD_TO_SIGMA = 1.4826   # median absolute deviation of a normal distribution, in standard deviations


class _Stopped(Exception):
    """Raised inside the feature pass when the caller asked to stop."""


def embed(files: list[str], backbone: str | None = None,
          progress: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, list[str]]:
    """L2-normalised pooled features of the pretrained network, one row per readable file.

    Returns (embeddings, the files they belong to); files that fail to decode are
    left out (the doctor reports them as unreadable already). Empty when stopped.
    """
    name = backbone or backbones.default_backbone()
    model = backbones.create_model(name, num_classes=2).eval()
    model.to(memory_format=torch.channels_last)  # oneDNN's fast path on CPU
    prep = backbones.preprocessing(model)
    total = len(files)
    pixels, failures = decode_all(files, cache_side(prep),
                                  (lambda d, t: progress(d, 2 * total)) if progress else None, should_stop)
    failed = {f["index"] for f in failures}
    kept = [f for i, f in enumerate(files) if i not in failed]
    if (should_stop and should_stop()) or not kept:
        return np.zeros((0, 0), dtype=np.float32), []
    extractor = FeatureExtractor(model, name, prep, torch.device("cpu"),
                                 amp=hardware.fast_bf16(torch.device("cpu")))  # training's feature pass

    def check_stop():
        if should_stop and should_stop():
            raise _Stopped

    def embedded(done: int, batches: int):
        if progress:
            progress(total + total * done // batches, 2 * total)

    try:
        features = extractor.extract(CachedPixels(pixels), lambda batch: fastpath.channels_last(
            augment.eval_batch(batch, prep)), check_stop, embedded).numpy()
    except _Stopped:
        return np.zeros((0, 0), dtype=np.float32), []
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12), kept


def neighbour_distance(embeddings: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Mean cosine distance of each image to its k nearest other images, of any class.

    Nearest images of any class, not only its own: an unusual but genuine photo
    usually has a close cousin somewhere in the dataset, a placeholder has none.
    """
    k = max(1, min(k, len(embeddings) - 1))
    distances = np.empty(len(embeddings), dtype=np.float64)
    for start in range(0, len(embeddings), 1024):  # blockwise: 20,000 images need no 1.6 GB matrix
        similarity = embeddings[start:start + 1024] @ embeddings.T
        rows = np.arange(len(similarity))
        similarity[rows, rows + start] = -np.inf  # not its own neighbour
        nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
        distances[start:start + 1024] = 1.0 - nearest.mean(axis=1)
    return distances


def robust_z(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """How far each score lies above its class's median, in robust standard deviations.

    The spread is pooled over all classes: a class of 15 images gives too
    unsteady a MAD of its own (measured on the example: per-class spreads let
    ordinary bee photos outrank the placeholder).
    """
    deviation = np.zeros_like(scores)
    for label in np.unique(labels):
        members = labels == label
        deviation[members] = scores[members] - np.median(scores[members])
    spread = MAD_TO_SIGMA * np.median(np.abs(deviation))
    return deviation / max(spread, 1e-6)


def pick(z: np.ndarray, labels: np.ndarray, threshold: float = THRESHOLD) -> list[int]:
    """Indices to flag, most outlying first: above threshold, within each class's cap and size."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < MIN_CLASS_SIZE:
            continue
        cap = max(1, int(MAX_SHARE * len(members)))
        ranked = members[np.argsort(-z[members], kind="stable")]
        chosen += [int(i) for i in ranked[:cap] if z[i] > threshold]
    return sorted(chosen, key=lambda i: -z[i])


def find_outliers(dataset: Dataset, backbone: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> Finding | None:
    """The optional 'outliers' finding for a dataset, or None when no picture stands out (or stopped).

    Train and validation images are scored together: a placeholder is as wrong
    in either. Takes about as long as one epoch of feature extraction.
    """
    samples = dataset.samples.reset_index(drop=True)
    embeddings, kept = embed(samples.path.tolist(), backbone, progress, should_stop)
    label_of = dict(zip(samples.path, samples.label))
    return suggest(embeddings, kept, [label_of[p] for p in kept])


def suggest(embeddings: np.ndarray, files: list[str], labels: list[str]) -> Finding | None:
    """The finding for already embedded files (one label per file), or None."""
    if len(files) < 2:
        return None
    labels = np.asarray(labels)
    chosen = pick(robust_z(neighbour_distance(embeddings), labels), labels)
    if not chosen:
        return None
    flagged = [files[i] for i in chosen]
    classes = sorted({str(labels[i]) for i in chosen})
    return Finding("outliers", INFO,
                   f"Suggestion (from a pretrained network, not a certainty): {len(flagged)} picture(s) do not "
                   f"look like the rest of their class ({', '.join(repr(c) for c in classes)}), nor like any "
                   "other picture in the dataset; for example a placeholder 'image not found' picture or a "
                   "blank frame. Look at them, most unusual first. If they are not real examples of their "
                   "class, leave them out; if they are, keep them.",
                   flagged, flagged)
