"""Does `studio advise` rank the backbones as training does? Kendall's tau, per dataset, in one process.

For each dataset: the advisor's ranking (and its seconds), then each usable backbone trained with
the studio's feature-extraction recipe (`--freeze all`, its defaults) and its accuracy: on the test
split where the data has one (clothing), else on validation. The advisor never sees the test split;
on sets without one, training's validation figure and the advisor's validation sample overlap, which
flatters the agreement: said beside the numbers.

    python benchmarks/advisor_agreement.py ../shared/datasets/hymenoptera_data ../shared/datasets/clothing ...
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a between two scorings of the same items (ties count as neither)."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    score = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - \
        sum((a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs)
    return score / len(pairs) if pairs else float("nan")


def trained_accuracy(data: str, backbone: str) -> tuple[float, str, float]:
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training
    started = time.perf_counter()
    run = start_training(TrainConfig(data=data, backbone=backbone, freeze="all"))
    run.wait()
    snapshot = run.snapshot()
    if snapshot["test"]:
        return snapshot["test"]["accuracy"], "test", time.perf_counter() - started
    return snapshot["best_val_accuracy"], "val", time.perf_counter() - started


def main(datasets: list[str]) -> None:
    from studio.models.advisor import advise
    report = {}
    for data in datasets:
        advice = advise(data)
        names = [row["backbone"] for row in advice["ranking"]]
        trained = {name: trained_accuracy(str(Path(data).resolve()), name) for name in names}
        row = {"advisor_seconds": advice["seconds"], "backbones": names,
               "knn": [r["knn_accuracy"] for r in advice["ranking"]],
               "probe": [r["probe_accuracy"] for r in advice["ranking"]],
               "logme": [r["logme"] for r in advice["ranking"]],
               "trained": [trained[n][0] for n in names], "measured_on": trained[names[0]][1],
               "train_seconds": [round(trained[n][2], 1) for n in names]}
        for score in ("knn", "probe", "logme"):
            row[f"tau_{score}"] = round(kendall_tau(row[score], row["trained"]), 3)
        report[Path(data).name] = row
        print(f"{Path(data).name}: advisor {advice['seconds']} s; " + ", ".join(
            f"{n} k-NN {k:.3f} probe {p:.3f} LogME {lm:.3f} trained {t:.3f}"
            for n, k, p, lm, t in zip(names, row["knn"], row["probe"], row["logme"], row["trained"])) +
            f"; tau k-NN {row['tau_knn']}, probe {row['tau_probe']}, LogME {row['tau_logme']}", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
