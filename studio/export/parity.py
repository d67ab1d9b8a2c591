"""The parity check: does an exported file give the trained model's answers?

Conversions can fail silently: an operator translated slightly differently, a
quantization range clipped, preprocessing forgotten. So before anyone downloads
an export, the run's own validation photos go through the exported file with
that file's own runtime (onnxruntime, torch.jit), preprocessed exactly as the
studio does, and the answers are compared with the trained model's. A format
outside the tolerance below is flagged in words; nothing is handed over silently.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from studio import augment, calibration, modelfile
from studio.runs import RunFolder, history
from studio.data.pixels import cache_side, decode_all
from studio.export import runtimes
from studio.export.formats import FORMATS, INT8

# Float exports (studio file, TorchScript, ONNX) must give the same top-1 answer on every photo
# and probabilities within FLOAT_MAX_DIFFERENCE; int8 trades a little for size, within these bounds.
FLOAT_MAX_DIFFERENCE = 1e-3
INT8_MIN_AGREEMENT = 0.95
INT8_MAX_ACCURACY_DROP = 0.02
LATENCY_RUNS = 20
LATENCY_BUDGET_S = 1.5
CHUNK = 32

TOLERANCE_WORDS = (f"float formats: the same top answer on every validation photo and every probability within "
                   f"{FLOAT_MAX_DIFFERENCE:g}; int8: the same top answer on at least {INT8_MIN_AGREEMENT:.0%} of them "
                   f"and accuracy at most {INT8_MAX_ACCURACY_DROP * 100:g} points lower")


@dataclass
class Photos:
    """Validation photos ready for the model: the studio's evaluation input and the true classes."""
    batch: torch.Tensor
    labels: torch.Tensor
    listed: int          # photos the run validated on
    unreadable: int      # of those, how many could not be read now (moved, deleted)


def validation_photos(run_dir: Path, meta: dict, progress: Callable[[int, int], None] | None = None) -> Photos:
    rows = [(p, label) for p, label in history.run_samples(run_dir, "val") if label in meta["classes"]]
    return photos_for(rows, meta, progress)


def test_photos(run_dir: Path, meta: dict) -> Photos | None:
    """The run's test split (test-predictions.csv), for each format's test accuracy; None without one."""
    from studio.evaluation import read_run_table
    try:
        table = read_run_table(RunFolder(run_dir).test_predictions)
        rows = [(path, label) for path, label in zip(table.path, table.label) if label in meta["classes"]]
    except (OSError, ValueError, AttributeError):   # no file, an unreadable one, or one without those columns
        return None
    return photos_for(rows, meta) if rows else None


def photos_for(rows: list[tuple[str, str]], meta: dict,
               progress: Callable[[int, int], None] | None = None) -> Photos:
    """(path, label) rows to the model's input, decoded exactly as training and `studio predict` do."""
    prep, classes = meta["preprocessing"], meta["classes"]
    pixels, failures = decode_all([p for p, _ in rows], cache_side(prep), progress)
    failed = {f["index"] for f in failures}
    labels = [classes.index(label) for i, (_, label) in enumerate(rows) if i not in failed]
    return Photos(augment.eval_batch(pixels, prep), torch.tensor(labels, dtype=torch.long), len(rows), len(failed))


@torch.no_grad()
def probabilities(model, batch: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Calibrated probabilities (the file's own temperature), as every runtime shows them."""
    parts = [model(batch[i:i + CHUNK]).float() for i in range(0, len(batch), CHUNK)]
    return calibration.probabilities(torch.cat(parts), temperature) if parts else torch.empty(0)


@torch.no_grad()
def latency_ms(model, image: torch.Tensor) -> float:
    """Median wall time of one photo (batch of one) on this machine's CPU, after a warm-up.

    At most LATENCY_RUNS runs and about LATENCY_BUDGET_S seconds (at least 3 runs), so a slow
    backbone or a busy shared machine cannot hold the export up.
    """
    model(image)
    times: list[float] = []
    deadline = time.perf_counter() + LATENCY_BUDGET_S
    while len(times) < LATENCY_RUNS and (len(times) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        model(image)
        times.append(time.perf_counter() - started)
    return round(sorted(times)[len(times) // 2] * 1000, 2)


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float | None:
    return round((probs.argmax(1) == labels).float().mean().item(), 4) if len(labels) else None


def compare(reference: torch.Tensor, exported: torch.Tensor, labels: torch.Tensor, int8: bool) -> dict:
    """Agreement, accuracy before/after, largest probability difference, and the verdict in words."""
    n = len(labels)
    if n == 0:
        return {"images": 0, "agree": 0, "agreement": None, "accuracy_trained": None, "accuracy_exported": None,
                "accuracy_change": None, "max_probability_difference": None, "ok": None,
                "verdict": "not checked: none of the run's validation photos can be read any more"}
    agree = int((reference.argmax(1) == exported.argmax(1)).sum())
    before, after = _accuracy(reference, labels), _accuracy(exported, labels)
    difference = float((reference - exported).abs().max())
    if int8:
        ok = agree / n >= INT8_MIN_AGREEMENT and before - after <= INT8_MAX_ACCURACY_DROP
    else:
        ok = agree == n and difference <= FLOAT_MAX_DIFFERENCE
    change = round((after - before) * 100, 1)
    if ok and not int8:
        verdict = f"matches the trained model on {agree}/{n} validation photos"
    elif ok:
        verdict = (f"agrees with the trained model on {agree}/{n} validation photos; accuracy "
                   f"{before:.1%} → {after:.1%} ({change:+.1f} points)")
    else:
        verdict = (f"differs from the trained model beyond the tolerance: the same answer on {agree}/{n} "
                   f"validation photos, largest probability difference {difference:.3f}, accuracy "
                   f"{before:.1%} → {after:.1%}. Check it before you use it")
    return {"images": n, "agree": agree, "agreement": round(agree / n, 4), "accuracy_trained": before,
            "accuracy_exported": after, "accuracy_change": round(after - before, 4),
            "max_probability_difference": round(difference, 6), "ok": ok, "verdict": verdict}


def tolerance_of(file_meta: dict) -> str | None:
    """The tolerance of the format a file says it was exported as (None: the studio model file itself)."""
    fmt = FORMATS.get((file_meta.get("export") or {}).get("format"))
    return fmt.tolerance if fmt else None


def check(model_path: Path, exported: list[Path], photos: Photos,
          progress: Callable[[float, str], None] | None = None, test: Photos | None = None) -> dict:
    """Run the trained model and each exported file on the photos; one row per file. With `test` (the run's
    test split), each file's accuracy on it too, the figure to expect on new photos."""
    progress = progress or (lambda fraction, words: None)
    trained, meta = modelfile.load(model_path, "cpu")
    temperature = calibration.temperature_of(meta)
    reference = probabilities(trained, photos.batch, temperature)
    sample = photos.batch[:1] if len(photos.batch) else torch.zeros(1, 3, *(2 * [meta["preprocessing"]["input_size"]]))
    report = {"images": len(photos.labels), "listed": photos.listed, "unreadable": photos.unreadable,
              "tolerance": TOLERANCE_WORDS,
              "trained": {"file": Path(model_path).name, "runtime": "PyTorch (the studio)",
                          "bytes": Path(model_path).stat().st_size,
                          "accuracy": _accuracy(reference, photos.labels), "latency_ms": latency_ms(trained, sample)},
              "exports": [], "test_images": len(test.labels) if test else 0}
    if test:
        report["trained"]["test_accuracy"] = _accuracy(probabilities(trained, test.batch, temperature),
                                                       test.labels)
    for step, path in enumerate(exported):
        progress(step / max(1, len(exported)), f"Checking {path.name} against the trained model")
        model, file_meta, kind, runtime = runtimes.open_model(path)
        if file_meta["classes"] != meta["classes"]:
            raise modelfile.ModelFileError(f"{path.name} names the classes {file_meta['classes']}, the trained "
                                           f"model {meta['classes']}: it is not an export of this model.")
        int8 = tolerance_of(file_meta) == INT8
        file_temperature = calibration.temperature_of(file_meta)
        row = compare(reference, probabilities(model, photos.batch, file_temperature), photos.labels, int8)
        row.update(file=path.name, format=kind + ("-int8" if int8 else ""), runtime=runtime,
                   bytes=path.stat().st_size, latency_ms=latency_ms(model, sample))
        if test:
            row["test_accuracy"] = _accuracy(probabilities(model, test.batch, file_temperature), test.labels)
        report["exports"].append(row)
    report["ok"] = all(row["ok"] is not False for row in report["exports"])
    report["checked"] = report["images"] > 0
    return report


def table_markdown(report: dict) -> str:
    """The figures as a small Markdown table (the page, the model card)."""
    tested = bool(report.get("test_images"))
    test_head, test_rule = (" Test accuracy |", "---|") if tested else ("", "")
    lines = ["| File | Runs with | Size | Time per photo (CPU) | Accuracy |" + test_head + " Same answer as trained | "
             "Largest probability difference |", "|---|---|---|---|---|" + test_rule + "---|---|"]
    trained = report["trained"]
    test_cell = (lambda row: f" {_percent(row.get('test_accuracy'))} |") if tested else (lambda row: "")
    lines.append(f"| {trained['file']} (trained model) | {trained['runtime']} | {_mb(trained['bytes'])} | "
                 f"{trained['latency_ms']:.1f}\u00a0ms | {_percent(trained['accuracy'])} |{test_cell(trained)}"
                 " reference | - |")
    for row in report["exports"]:
        same = f"{row['agree']}/{row['images']}" if row["images"] else "not checked"
        difference = "-" if row["max_probability_difference"] is None else f"{row['max_probability_difference']:.2g}"
        flag = "" if row["ok"] is not False else " ⚠"
        lines.append(f"| {row['file']}{flag} | {row['runtime']} | {_mb(row['bytes'])} | "
                     f"{row['latency_ms']:.1f}\u00a0ms | "
                     f"{_percent(row['accuracy_exported'])} |{test_cell(row)} {same} | {difference} |")
    return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}\u00a0MB"  # no break between number and unit in a narrow column


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
