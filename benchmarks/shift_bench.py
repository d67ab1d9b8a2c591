"""Domain shift, measured: does the familiarity score flag the photos the model gets wrong, do whole
folders' shifts order their accuracy, does calibration hold, and does adapting help on a new site?

    python benchmarks/shift_bench.py SOURCE_RUN --labelled-site ../shared/datasets/signs_shift/real \
        [--familiar-folder DIR ...] [--adapt] [--control [as-trained]] [--out benchmarks/shift-bench.jsonl]

SOURCE_RUN is a finished run (e.g. `studio train ../shared/datasets/signs_shift/synthetic`). The new
site's folder names are its labels, read here only to score; adapting never sees them. Folders for the
ordering: the run's own validation photos, the new site, and copies of both made harder (blurred,
colour-inverted), written under a temporary folder. Each figure is printed and appended as JSON lines.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from PIL import Image, ImageFilter, ImageOps

from studio import calibration, load
from studio.data.imaging import image_files
from studio.inference import Predictor
from studio.runs import JobRunner, RunFolder, history


def auroc(scores: list[float], positives: list[bool]) -> float:
    """Chance that a random positive (a mistake) scores above a random negative, ties counting half
    (the Mann-Whitney statistic over average ranks)."""
    pos = sum(positives)
    neg = len(positives) - pos
    if not pos or not neg:
        return float("nan")
    ranks = pd.Series(scores, dtype=float).rank(method="average")
    return float((ranks[pd.Series(positives, dtype=bool)].sum() - pos * (pos + 1) / 2) / (pos * neg))


def spearman(a: list[float], b: list[float]) -> float:
    return float(pd.Series(a, dtype=float).corr(pd.Series(b, dtype=float), method="spearman"))


def labelled_photos(folder: Path) -> list[tuple[str, str]]:
    return [(str(p), p.parent.name) for p in image_files([folder])]


def harder_copy(pairs: list[tuple[str, str]], root: Path, name: str, change) -> list[tuple[str, str]]:
    out = []
    for path, label in pairs:
        target = root / name / label / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        change(Image.open(path).convert("RGB")).save(target)
        out.append((str(target), label))
    return out


def score_folder(predictor: Predictor, pairs: list[tuple[str, str]], with_ece: bool = False) -> dict:
    """Per photo: shift, calibrated confidence, right or wrong; with_ece: the calibration error with and
    without the temperature (a second pass with T = 1)."""
    results = list(predictor.predict_each([p for p, _ in pairs], top_k=1, familiarity=True))
    rows = [(r, label) for r, label in zip(results, (lab for _, lab in pairs)) if r.error is None]
    right = [r.top[0][0] == label for r, label in rows]
    confidence = [r.top[0][1] for r, _ in rows]
    ece = None
    if with_ece:
        kept, predictor.temperature = predictor.temperature, 1.0
        raw = [r.top[0][1] for r in predictor.predict_each([str(r.image) for r, _ in rows], top_k=1)]
        predictor.temperature = kept
        correct = torch.tensor(right)
        ece = {"before": round(calibration.confidence_error(torch.tensor(raw), correct), 4),
               "after": round(calibration.confidence_error(torch.tensor(confidence), correct), 4)}
    return {"shift": [r.familiarity["shift"] for r, _ in rows], "confidence": confidence,
            "right": right, "accuracy": sum(right) / max(1, len(right)), "photos": len(rows), "ece": ece}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--labelled-site", required=True, help="the new site, class folders (labels to score only)")
    parser.add_argument("--adapt", action="store_true", help="also adapt to the new site and score it")
    parser.add_argument("--control", nargs="?", const="all", choices=["all", "as-trained"],
                        help="also continue training on the labelled photos alone for the same steps")
    parser.add_argument("--out", default="benchmarks/shift-bench.jsonl")
    args = parser.parse_args()
    out = open(args.out, "a")

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)
        out.write(json.dumps(record) + "\n")
        out.flush()

    run = Path(args.run)
    predictor = Predictor(RunFolder(run).model)
    site = labelled_photos(Path(args.labelled_site))
    val = history.run_samples(run, "val")
    scratch = Path(tempfile.mkdtemp(prefix="shift-bench-"))
    folders = {"validation": val, "new site": site,
               "validation blurred": harder_copy(val, scratch, "val-blur", lambda im: im.filter(
                   ImageFilter.GaussianBlur(radius=max(1, im.width // 40)))),
               "validation inverted": harder_copy(val, scratch, "val-inv", ImageOps.invert),
               "new site blurred": harder_copy(site[::4], scratch, "site-blur", lambda im: im.filter(
                   ImageFilter.GaussianBlur(radius=max(1, im.width // 40))))}
    scored = {}
    for name, pairs in folders.items():
        started = time.perf_counter()
        scored[name] = score_folder(predictor, pairs, with_ece=name in ("validation", "new site"))
        s = scored[name]
        emit({"what": "folder", "folder": name, "photos": s["photos"], "accuracy": round(s["accuracy"], 4),
              "shift": sorted(s["shift"])[len(s["shift"]) // 2], "ece": s["ece"],
              "seconds": round(time.perf_counter() - started, 1)})
    names = list(scored)
    emit({"what": "ordering", "spearman_shift_vs_accuracy": round(spearman(
        [sorted(scored[n]["shift"])[len(scored[n]["shift"]) // 2] for n in names],
        [scored[n]["accuracy"] for n in names]), 3)})
    for name in ("new site", "validation"):
        s = scored[name]
        wrong = [not r for r in s["right"]]
        emit({"what": "auroc", "folder": name, "mistakes": sum(wrong), "photos": len(wrong),
              "auroc_shift": round(auroc(s["shift"], wrong), 3),
              "auroc_low_confidence": round(auroc([-c for c in s["confidence"]], wrong), 3)})
    pooled_shift = scored["validation"]["shift"] + scored["new site"]["shift"]
    pooled_wrong = [not r for r in scored["validation"]["right"] + scored["new site"]["right"]]
    emit({"what": "auroc", "folder": "validation + new site",
          "auroc_shift": round(auroc(pooled_shift, pooled_wrong), 3),
          "auroc_low_confidence": round(auroc([-c for c in scored["validation"]["confidence"]
                                               + scored["new site"]["confidence"]], pooled_wrong), 3)})

    if args.adapt:
        started = time.perf_counter()
        adapted = load(run).adapt([Path(args.labelled_site)], out=scratch / "adapted")
        seconds = time.perf_counter() - started
        after = score_folder(Predictor(adapted.model_path), site)
        report = adapted.adaptation
        emit({"what": "adapt", "source_only": round(scored["new site"]["accuracy"], 4),
              "adapted": round(after["accuracy"], 4), "seconds": round(seconds, 1),
              "val_before": report["val_accuracy_before"], "val_after": report["val_accuracy_after"],
              "shift_before": report["shift_before"], "shift_after": report["shift_after"],
              "pseudo_labelled": report["pseudo_labelled"], "rounds": report["rounds"],
              "class_mix_missing": len(report["class_mix"]["missing"]), "views": report.get("views")})
    if args.control:
        # the same rounds and steps with the labelled photos alone, in each family of views: how much of the
        # gain is more training, how much the views, and (the rest) the new photos' pseudo-labels
        from studio.adapt import start_adaptation
        from studio.adapt.selftrain import Schedule
        from studio.adapt.views import CANDIDATES
        for views in CANDIDATES[:1] if args.control == "as-trained" else CANDIDATES:
            started = time.perf_counter()
            run_ = start_adaptation(run, [Path(args.labelled_site)], runner=JobRunner(),
                                    out=scratch / f"control-{views.name.replace(' ', '-')}",
                                    schedule=Schedule(labelled_only=True, views=views.name))
            run_.wait()
            snap = run_.snapshot()
            control = score_folder(Predictor(RunFolder(snap["run_dir"]).model), site) \
                if snap["status"] == "finished" else None
            emit({"what": "control", "views": views.name, "labelled_only": control and round(control["accuracy"], 4),
                  "status": snap["status"], "val_after": (snap.get("adaptation") or {}).get("val_accuracy_after"),
                  "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
