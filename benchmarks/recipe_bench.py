"""Balanced and Best against the tutorial loop, side by side in one run (issue 17's RECIPE table).

For each dataset, one after another on the same machine:
- the shared tutorial loop (`../shared/bench/tutorial_baseline.py`), fine-tune and frozen, 3 epochs,
  with the packaged MobileNetV2 ImageNet weights;
- `studio train DATA` (Balanced, the default: the default backbone, MobileNetV2, as the tutorial's);
- `studio train DATA --budget Ns`, N = BEST_FACTOR x the tutorial's fine-tune time: Best, which with
  the backbone left to it first ranks the backbones at hand (the advisor) and trains the first.

Each result is one JSON line on stdout as soon as it is measured, so a run cut short still says what it
measured. Times: the tutorial's own `total_s` (its loop, without starting Python and loading the model);
the studio's `train_seconds` (from the command's start to the end of training, the photos' reading
included) and the whole command's wall time.

    python benchmarks/recipe_bench.py ../shared/datasets/hymenoptera_data ../shared/datasets/clothing
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEST_FACTOR = 2.0
BACKBONE = "mobilenetv2_100"
TUTORIAL = Path(__file__).resolve().parents[2] / "shared" / "bench" / "tutorial_baseline.py"


def tutorial_weights() -> str:
    from studio import backbones
    return str(backbones.packaged_weight_path(backbones.lookup(BACKBONE)))


def tutorial(data: str, mode: str, epochs: int) -> dict:
    out = subprocess.run([sys.executable, str(TUTORIAL), data, "--weights", tutorial_weights(), "--mode", mode,
                          "--epochs", str(epochs)], capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {"accuracy": summary["best_val_acc"], "seconds": summary["total_s"]}


def studio(data: str, budget: str | None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "studio", "train", data, "--json",
                   "--out", str(Path(folder) / "run")] + (["--budget", budget] if budget else [])
        started = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
    result = json.loads(out.stdout)
    search = result.get("search") or {}
    return {"accuracy": result["best_val_accuracy"], "test_accuracy": result.get("test_accuracy"),
            "seconds": result["train_seconds"], "wall_seconds": round(wall, 2), "epochs_run": result["epochs_run"],
            "search": search.get("summary"), "depth": result["choices"].get("depth"), "budget": budget or "balanced",
            "backbone": result["backbone"], "timings": result.get("timings")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--epochs", type=int, default=3, help="the tutorial's epochs (3, as in RECIPE.md)")
    args = parser.parse_args()
    for data in args.data:
        name = Path(data).name
        finetune = tutorial(data, "finetune", args.epochs)
        print(json.dumps({"data": name, "run": "tutorial finetune", **finetune}), flush=True)
        frozen = tutorial(data, "frozen", args.epochs)
        print(json.dumps({"data": name, "run": "tutorial frozen", **frozen}), flush=True)
        print(json.dumps({"data": name, "run": "balanced", **studio(data, None)}), flush=True)
        best = f"{int(BEST_FACTOR * finetune['seconds'])}s"
        print(json.dumps({"data": name, "run": "best", **studio(data, best)}), flush=True)


if __name__ == "__main__":
    main()
