"""Multi-label on posters: the plain baseline against what the studio's multi-label head will do (issue 22).

One frozen backbone pass (the default backbone, packaged weights) over every poster, then on those features:
- baseline: a linear head trained with plain binary cross-entropy, one threshold of 0.5 for every label;
- studio: the same head with BCE weighted for rare labels (`metrics.positive_weights`) and one threshold per
  label tuned on the validation photos (`metrics.tune_thresholds`).
Split (seeded): 60% train, 20% validation (early stopping, thresholds), 20% test, reported. Printed as JSON:
mAP, micro and macro F1 and exact match on the test photos, for both, and the seconds taken.

    python benchmarks/multilabel_baseline.py ../shared/datasets/posters/labels.csv \
        --out benchmarks/multilabel-2026-12-07.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from frozen_features import features

from studio import backbones
from studio.multilabel import labels as ml
from studio.multilabel import metrics

EPOCHS, LR, BATCH = 60, 1e-3, 64


def train_head(x, y, val_x, val_y, pos_weight, seed: int) -> torch.nn.Linear:
    """A linear head on the features, Adam, the epoch with the best validation mAP kept."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    optimizer = torch.optim.Adam(head.parameters(), lr=LR, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    best, best_state = -1.0, None
    for _ in range(EPOCHS):
        for rows in torch.randperm(len(x)).split(BATCH):
            optimizer.zero_grad()
            loss_fn(head(x[rows]), y[rows].float()).backward()
            optimizer.step()
        with torch.no_grad():
            score = metrics.evaluate(torch.sigmoid(head(val_x)), val_y, [str(i) for i in range(y.shape[1])])["map"]
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    sets = ml.read_label_sets(Path(args.csv))
    files = [row["path"] for row in sets.rows]
    y = torch.tensor(sets.matrix().values, dtype=torch.int64)
    model = backbones.create_model(backbones.default_backbone(), 2).eval()
    started = time.perf_counter()
    x = features(files, model, backbones.preprocessing(model))
    feature_seconds = time.perf_counter() - started
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(args.seed))
    cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
    train, val, test = order[:cut1], order[cut1:cut2], order[cut2:]
    result = {"data": Path(args.csv).parent.name, "photos": len(files), "labels": len(sets.labels),
              "split": [len(train), len(val), len(test)], "backbone": backbones.default_backbone(),
              "feature_seconds": round(feature_seconds, 1)}
    for name, weighted, tuned in (("baseline", False, False), ("weighted_loss", True, False),
                                  ("tuned_thresholds", False, True), ("studio", True, True)):
        started = time.perf_counter()
        weights = metrics.positive_weights(y[train]) if weighted else None
        head = train_head(x[train], y[train], x[val], y[val], weights, args.seed)
        with torch.no_grad():
            val_p, test_p = torch.sigmoid(head(x[val])), torch.sigmoid(head(x[test]))
        thresholds = metrics.tune_thresholds(val_p, y[val]) if tuned else metrics.DEFAULT_THRESHOLD
        found = metrics.evaluate(test_p, y[test], sets.labels, thresholds)
        result[name] = {k: found[k] for k in ("map", "micro_f1", "macro_f1", "exact_match")}
        result[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(name, result[name], flush=True)
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
