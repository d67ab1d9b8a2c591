"""What an augmentation strength costs or gains on photos like the training photos (in-domain).

The "other-cameras" views (the object smaller in the frame, softer, other light, never mirrored) lift
a model trained on rendered signs by 20 points on real photos (SHIFT.md). A person picks them when the
model will meet other cameras; this measures what they cost when it does not: the same fixed recipe
(top layer groups fine-tuned, a fixed number of epochs, one seed) with each strength, on each dataset,
scored on its validation photos (and on its test photos where the set has them).

    python benchmarks/augment_cost.py [--strengths normal other-cameras] [--freeze 6] [--epochs 4] \
        [--data ../shared/datasets/hymenoptera_data ...] [--out benchmarks/augment-cost.jsonl]

One JSON line per run (dataset, strength, accuracy, seconds) is printed and appended to --out.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
DEFAULT_DATA = [SHARED / "hymenoptera_data", SHARED / "clothing", SHARED / "cifar10_subset"]


def train(data: Path, strength: str, freeze: str, epochs: int, seed: int) -> dict:
    command = [sys.executable, "-m", "studio", "train", str(data), "--backbone", "mobilenetv2_100",
               "--freeze", freeze, "--epochs", str(epochs), "--augment-strength", strength, "--seed", str(seed),
               "--json", "--quiet"]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["?"]}
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {"val_accuracy": summary["best_val_accuracy"], "test_accuracy": summary.get("test_accuracy"),
            "epochs_run": summary["epochs_run"], "seconds": round(time.perf_counter() - started, 1),
            "run_dir": summary["run_dir"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--strengths", nargs="+", default=["normal", "other-cameras"])
    parser.add_argument("--freeze", default="6")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "augment-cost.jsonl")
    args = parser.parse_args()
    with open(args.out, "a") as out:
        for data in args.data:
            for strength in args.strengths:
                record = {"data": data.name, "strength": strength, "freeze": args.freeze, "epochs": args.epochs,
                          "seed": args.seed, **train(data, strength, args.freeze, args.epochs, args.seed)}
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
