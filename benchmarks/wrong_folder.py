"""How well "probably in the wrong folder" finds photos that really are misfiled.

Labels of a share of each dataset's training photos are flipped on purpose (to another class, at random,
seeded); the check then judges every photo from the default backbone's pretrained features, exactly as a
run does (`studio.data.wrong_folder.find`). Printed per dataset: photos, flipped, listed, how many of the
listed are flipped ones (precision), how many flipped ones are listed (recall), and the precision of the
first 24 (what the Runs page shows) -- plus what the unflipped data gets listed (real label noise or
photos that show two classes: the rule's false alarms, or the dataset's own flaws).

    python benchmarks/wrong_folder.py ../shared/datasets/hymenoptera_data ../shared/datasets/clothing \
        ../shared/datasets/cifar10_subset --flip 0.05 --out benchmarks/wrong-folder-2026-12-07.jsonl
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from frozen_features import features

from studio import backbones
from studio.data import wrong_folder
from studio.data.sources import open_dataset

SHOWN = 24


def measure(data: str, flip: float, seed: int) -> dict:
    dataset = open_dataset(data, 0.2, seed)
    train = dataset.samples[dataset.samples.split == "train"]
    files, classes = train.path.tolist(), dataset.classes
    labels = torch.tensor([classes.index(c) for c in train.label])
    model = backbones.create_model(backbones.default_backbone(), len(classes)).eval()
    started = time.perf_counter()
    x = features(files, model, backbones.preprocessing(model))
    feature_seconds = time.perf_counter() - started
    generator = torch.Generator().manual_seed(seed)
    flipped_rows = torch.randperm(len(labels), generator=generator)[:round(flip * len(labels))]
    noisy = labels.clone()
    for row in flipped_rows.tolist():
        others = [c for c in range(len(classes)) if c != int(labels[row])]
        noisy[row] = others[int(torch.randint(len(others), (1,), generator=generator))]
    flipped = {files[r] for r in flipped_rows.tolist()}
    started = time.perf_counter()
    found = wrong_folder.find(x, noisy, files, classes, seed)
    check_seconds = time.perf_counter() - started
    listed = found.suspects.path.tolist()
    hits = [p in flipped for p in listed]
    clean = wrong_folder.find(x, labels, files, classes, seed)
    return {"data": Path(data).name, "photos": len(files), "classes": len(classes), "flipped": len(flipped),
            "listed": len(listed), "precision": round(sum(hits) / max(1, len(listed)), 3),
            "recall": round(sum(hits) / max(1, len(flipped)), 3),
            f"precision_first_{SHOWN}": round(sum(hits[:SHOWN]) / max(1, len(hits[:SHOWN])), 3),
            "listed_without_flips": len(clean.suspects), "check_seconds": round(check_seconds, 2),
            "feature_seconds": round(feature_seconds, 1), "backbone": backbones.default_backbone()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    for data in args.data:
        row = measure(data, args.flip, args.seed)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
