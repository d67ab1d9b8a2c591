"""The studio's own multi-label runs on the baseline's split, scored on the same test photos (issue 22).

`multilabel_baseline.py` gives the yardstick (a linear BCE head on frozen features, one threshold of 0.5). This
trains the studio itself on the very same seeded 60/20/20 split, written as a labels CSV with a split column
(absolute paths, in a temporary folder: the shared data stays untouched), so the studio's final test measures
the same 400 posters. Each plan is one `studio.train` call; one JSON line per plan.

    python benchmarks/multilabel_studio.py ../shared/datasets/posters/labels.csv --plans head auto \
        --out benchmarks/multilabel-studio-2026-12-07.jsonl
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from studio import train
from studio.multilabel import labels as ml

PLANS = {"head": {"freeze": "all"},                 # the new head alone on frozen features
         "auto": {"freeze": "auto"},                # Auto, Balanced: the head, the plans tried, fine-tuning
         "finetune": {"freeze": "0", "epochs": 6}}  # every layer, six epochs


def split_csv(csv: Path, seed: int, folder: Path) -> Path:
    """The baseline's split (the same seeded order and cuts) as a labels CSV with a split column."""
    sets = ml.read_label_sets(csv)
    order = torch.randperm(len(sets.rows), generator=torch.Generator().manual_seed(seed)).tolist()
    cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
    split = ({i: "train" for i in order[:cut1]} | {i: "val" for i in order[cut1:cut2]}
             | {i: "test" for i in order[cut2:]})
    lines = ["filename,labels,split"] + [f"{Path(row['path']).resolve()},{';'.join(row['labels'])},{split[i]}"
                                         for i, row in enumerate(sets.rows)]
    target = folder / "labels.csv"
    target.write_text("\n".join(lines) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plans", nargs="+", default=["head", "auto"], choices=list(PLANS))
    parser.add_argument("--out")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="multilabel-studio-"))
    split_csv(Path(args.csv), args.seed, folder)
    for plan in args.plans:
        started = time.perf_counter()
        model = train(folder, backbone="mobilenetv2_100", out=folder / f"run-{plan}", **PLANS[plan])
        status = json.loads((model.run_dir / "status.json").read_text())
        test = status.get("test") or {}
        record = {"plan": plan, "settings": PLANS[plan], "seconds": round(time.perf_counter() - started, 1),
                  "epochs": len(model.history), "best_epoch": status.get("best_epoch"),
                  "freeze": (status.get("freeze") or {}).get("frozen_groups"),
                  "validation": status.get("multilabel"),
                  "test": {"map": test.get("map"), "micro_f1": test.get("micro_f1"), "macro_f1": test.get("macro_f1"),
                           "exact_match": test.get("accuracy"), "photos": test.get("images")}}
        print(json.dumps(record), flush=True)
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
