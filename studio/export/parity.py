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
from studio.multilabel.dataset import label_matrix
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

INT8_MAX_MICRO_F1_DROP = 0.02   # multi-label int8: micro-F1 (every yes/no decision counts once) may drop this much

TOLERANCE_WORDS = (f"float formats: the same top answer on every validation photo and every probability within "
                   f"{FLOAT_MAX_DIFFERENCE:g}; int8: the same top answer on at least {INT8_MIN_AGREEMENT:.0%} of them "
                   f"and accuracy at most {INT8_MAX_ACCURACY_DROP * 100:g} points lower")
MULTILABEL_TOLERANCE_WORDS = (
    f"a yes/no decision per label, a label's score at or above its threshold; float formats: the same decision on "
    f"every label of every validation photo and every score within {FLOAT_MAX_DIFFERENCE:g}; int8: the same "
    f"decision on at least {INT8_MIN_AGREEMENT:.0%} of the photo-label pairs and micro-F1 at most "
    f"{INT8_MAX_MICRO_F1_DROP * 100:g} points lower")


def tolerance_words(meta: dict) -> str:
    """The bounds the check holds a model's exports to, in words (multi-label models are judged per label)."""
    return MULTILABEL_TOLERANCE_WORDS if modelfile.is_multilabel(meta) else TOLERANCE_WORDS


@dataclass
class Photos:
    """Validation photos ready for the model: the studio's evaluation input and the true classes (class indices;
    for a multi-label model 0/1 targets, one row per photo and one column per label)."""
    batch: torch.Tensor
    labels: torch.Tensor
    listed: int          # photos the run validated on
    unreadable: int      # of those, how many could not be read now (moved, deleted)


def known_rows(rows: list[tuple[str, str]], meta: dict) -> list[tuple[str, str]]:
    """The (path, label) rows the model can be judged on: a class it knows; for a multi-label model every row
    (its ';'-joined labels become 0/1 targets, and a label the model was not trained on is left out of them)."""
    if modelfile.is_multilabel(meta):
        return list(rows)
    return [(p, label) for p, label in rows if label in meta["classes"]]


def validation_photos(run_dir: Path, meta: dict, progress: Callable[[int, int], None] | None = None) -> Photos:
    return photos_for(known_rows(history.run_samples(run_dir, "val"), meta), meta, progress)


def test_photos(run_dir: Path, meta: dict) -> Photos | None:
    """The run's test split (test-predictions.csv), for each format's test accuracy; None without one."""
    from studio.evaluation import read_run_table
    try:
        table = read_run_table(RunFolder(run_dir).test_predictions)
        rows = known_rows(list(zip(table.path, table.label)), meta)
    except (OSError, ValueError, AttributeError):   # no file, an unreadable one, or one without those columns
        return None
    return photos_for(rows, meta) if rows else None


def photos_for(rows: list[tuple[str, str]], meta: dict,
               progress: Callable[[int, int], None] | None = None) -> Photos:
    """(path, label) rows to the model's input, decoded exactly as training and `studio predict` do."""
    prep, classes = meta["preprocessing"], meta["classes"]
    pixels, failures = decode_all([p for p, _ in rows], cache_side(prep), progress)
    failed = {f["index"] for f in failures}
    kept = [label for i, (_, label) in enumerate(rows) if i not in failed]
    if modelfile.is_multilabel(meta):
        labels = label_matrix(kept, classes)   # 0/1 per label from the ';'-joined cells
    else:
        labels = torch.tensor([classes.index(label) for label in kept], dtype=torch.long)
    return Photos(augment.eval_batch(pixels, prep), labels, len(rows), len(failed))


@torch.no_grad()
def probabilities(model, batch: torch.Tensor, temperature: float = 1.0, multilabel: bool = False) -> torch.Tensor:
    """Calibrated probabilities (the file's own temperature; a multi-label model's per-label sigmoid scores), as
    every runtime shows them."""
    parts = [model(batch[i:i + CHUNK]).float() for i in range(0, len(batch), CHUNK)]
    return calibration.probabilities(torch.cat(parts), temperature, multilabel) if parts else torch.empty(0)


def scores_of(model, batch: torch.Tensor, meta: dict) -> torch.Tensor:
    """What a file's own description says its outputs mean: its temperature, softmax or per-label sigmoid."""
    return probabilities(model, batch, calibration.temperature_of(meta), modelfile.is_multilabel(meta))


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
        return _unchecked()
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


def decisions(probs: torch.Tensor, thresholds: list[float]) -> torch.Tensor:
    """A multi-label model's yes/no per photo and label: the score at or above that label's threshold."""
    return probs >= torch.tensor(thresholds, dtype=probs.dtype)


def label_figures(probs: torch.Tensor, targets: torch.Tensor, thresholds: list[float]) -> dict:
    """Micro-F1 (every yes/no decision counts once) and the share of photos with every label right, at the
    file's thresholds: the multi-label figures the check reports in place of accuracy."""
    if not len(targets):
        return {"micro_f1": None, "every_label_right": None}
    said, truth = decisions(probs, thresholds), targets.bool()
    both = int(said.sum()) + int(truth.sum())
    micro_f1 = 2 * int((said & truth).sum()) / both if both else 0.0
    return {"micro_f1": round(micro_f1, 4), "every_label_right": round((said == truth).all(1).float().mean().item(), 4)}


def compare_labels(reference: torch.Tensor, exported: torch.Tensor, targets: torch.Tensor, int8: bool,
                   thresholds: tuple[list[float], list[float]]) -> dict:
    """A multi-label export against the trained model: the yes/no decisions (each with its own file's thresholds)
    that agree, the photos given exactly the same labels, micro-F1 and every-label-right before/after, the largest
    score difference, and the verdict in words."""
    n = len(targets)
    if n == 0:
        return {**_unchecked(), "decisions": 0, "decisions_agree": 0, "micro_f1_trained": None,
                "micro_f1_exported": None, "micro_f1_change": None}
    said_before, said_after = decisions(reference, thresholds[0]), decisions(exported, thresholds[1])
    same = said_before == said_after
    agree, total, photos_agree = int(same.sum()), same.numel(), int(same.all(1).sum())
    before, after = label_figures(reference, targets, thresholds[0]), label_figures(exported, targets, thresholds[1])
    difference = float((reference - exported).abs().max())
    if int8:
        ok = agree / total >= INT8_MIN_AGREEMENT and before["micro_f1"] - after["micro_f1"] <= INT8_MAX_MICRO_F1_DROP
    else:
        ok = agree == total and difference <= FLOAT_MAX_DIFFERENCE
    f1_words = f"micro-F1 {before['micro_f1']:.3f} → {after['micro_f1']:.3f}"
    if ok and not int8:
        verdict = f"matches the trained model: the same labels on {photos_agree}/{n} validation photos"
    elif ok:
        verdict = (f"agrees with the trained model on {agree}/{total} yes/no label decisions (the same labels on "
                   f"{photos_agree}/{n} validation photos); {f1_words}")
    else:
        verdict = (f"differs from the trained model beyond the tolerance: the same yes/no decision on {agree}/{total} "
                   f"photo-label pairs (the same labels on {photos_agree}/{n} validation photos), largest score "
                   f"difference {difference:.3f}, {f1_words}. Check it before you use it")
    return {"images": n, "agree": photos_agree, "agreement": round(agree / total, 4), "decisions": total,
            "decisions_agree": agree, "accuracy_trained": before["every_label_right"],
            "accuracy_exported": after["every_label_right"],
            "accuracy_change": round(after["every_label_right"] - before["every_label_right"], 4),
            "micro_f1_trained": before["micro_f1"], "micro_f1_exported": after["micro_f1"],
            "micro_f1_change": round(after["micro_f1"] - before["micro_f1"], 4),
            "max_probability_difference": round(difference, 6), "ok": ok, "verdict": verdict}


def _unchecked() -> dict:
    return {"images": 0, "agree": 0, "agreement": None, "accuracy_trained": None, "accuracy_exported": None,
            "accuracy_change": None, "max_probability_difference": None, "ok": None,
            "verdict": "not checked: none of the run's validation photos can be read any more"}


def _other_task(file_meta: dict, multilabel: bool, images: int) -> dict:
    """A file whose description reads its outputs another way than the trained model's (one class per photo
    against a yes/no per label): every answer it gives would be read wrongly, so it is flagged outright."""
    said = ("multi-label (a yes/no per label)" if modelfile.is_multilabel(file_meta)
            else "single-label (one class per photo)")
    trained = "multi-label" if multilabel else "single-label"
    return {**_unchecked(), "images": images, "ok": False,
            "verdict": f"describes itself as {said} while the trained model is {trained}: its answers would be read "
                       "wrongly. Export it again"}


def tolerance_of(file_meta: dict) -> str | None:
    """The tolerance of the format a file says it was exported as (None: the studio model file itself)."""
    fmt = FORMATS.get((file_meta.get("export") or {}).get("format"))
    return fmt.tolerance if fmt else None


def _figures(probs: torch.Tensor, labels: torch.Tensor, meta: dict) -> dict:
    """A file's own figures on photos: accuracy; for a multi-label model the share of photos with every label right
    (as `accuracy`, the studio's multi-label accuracy) and micro-F1, at the file's own thresholds."""
    if not modelfile.is_multilabel(meta):
        return {"accuracy": _accuracy(probs, labels)}
    figures = label_figures(probs, labels, modelfile.thresholds_of(meta))
    return {"accuracy": figures["every_label_right"], "micro_f1": figures["micro_f1"]}


def _compare_file(reference: torch.Tensor, model, file_meta: dict, meta: dict, photos: Photos, int8: bool) -> dict:
    """One exported file's row (without its name, size and speed): single-label or per-label comparison."""
    multilabel = modelfile.is_multilabel(meta)
    if modelfile.is_multilabel(file_meta) != multilabel:
        return _other_task(file_meta, multilabel, len(photos.labels))
    exported = scores_of(model, photos.batch, file_meta)
    if multilabel:
        return compare_labels(reference, exported, photos.labels, int8,
                              (modelfile.thresholds_of(meta), modelfile.thresholds_of(file_meta)))
    return compare(reference, exported, photos.labels, int8)


def _with_test(row: dict, model, meta: dict, test: Photos) -> None:
    """The file's figures on the run's test split, beside its validation ones (`test_accuracy`, `test_micro_f1`)."""
    figures = _figures(scores_of(model, test.batch, meta), test.labels, meta)
    row.update({f"test_{name}": value for name, value in figures.items()})


def check(model_path: Path, exported: list[Path], photos: Photos,
          progress: Callable[[float, str], None] | None = None, test: Photos | None = None) -> dict:
    """Run the trained model and each exported file on the photos; one row per file. With `test` (the run's
    test split), each file's accuracy on it too, the figure to expect on new photos. A multi-label model's
    rows compare yes/no decisions per label (see compare_labels)."""
    progress = progress or (lambda fraction, words: None)
    trained, meta = modelfile.load(model_path, "cpu")
    multilabel = modelfile.is_multilabel(meta)
    reference = scores_of(trained, photos.batch, meta)
    sample = photos.batch[:1] if len(photos.batch) else torch.zeros(1, 3, *(2 * [meta["preprocessing"]["input_size"]]))
    report = {"images": len(photos.labels), "listed": photos.listed, "unreadable": photos.unreadable,
              "tolerance": tolerance_words(meta),
              "trained": {"file": Path(model_path).name, "runtime": "PyTorch (the studio)",
                          "bytes": Path(model_path).stat().st_size,
                          **_figures(reference, photos.labels, meta), "latency_ms": latency_ms(trained, sample)},
              "exports": [], "test_images": len(test.labels) if test else 0}
    if multilabel:
        report["task"] = modelfile.MULTI_LABEL
    if test:
        _with_test(report["trained"], trained, meta, test)
    for step, path in enumerate(exported):
        progress(step / max(1, len(exported)), f"Checking {path.name} against the trained model")
        model, file_meta, kind, runtime = runtimes.open_model(path)
        if file_meta["classes"] != meta["classes"]:
            raise modelfile.ModelFileError(f"{path.name} names the classes {file_meta['classes']}, the trained "
                                           f"model {meta['classes']}: it is not an export of this model.")
        int8 = tolerance_of(file_meta) == INT8
        row = _compare_file(reference, model, file_meta, meta, photos, int8)
        row.update(file=path.name, format=kind + ("-int8" if int8 else ""), runtime=runtime,
                   bytes=path.stat().st_size, latency_ms=latency_ms(model, sample))
        if test:
            _with_test(row, model, file_meta, test)
        report["exports"].append(row)
    report["ok"] = all(row["ok"] is not False for row in report["exports"])
    report["checked"] = report["images"] > 0
    return report


def table_markdown(report: dict) -> str:
    """The figures as a small Markdown table (the page, the model card); a multi-label model's says what its
    columns are beneath it."""
    if report.get("task") == modelfile.MULTI_LABEL:
        return _labels_table(report)
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


LABELS_TABLE_WORDS = ("Micro-F1: every yes/no label decision on the validation photos counts once (1.0: all right). "
                      "Every label right: the share of photos given exactly their labels. Same labels: photos given "
                      "exactly the trained model's labels; same yes/no: the photo-label decisions that agree, each "
                      "file deciding with its own thresholds. Score difference: the largest change in a label's score.")


def _labels_table(report: dict) -> str:
    """A multi-label model's parity table: micro-F1 and every-label-right in place of accuracy, the photos with
    the same labels and the yes/no decisions that agree; the words beneath say what each column is."""
    tested = bool(report.get("test_images"))
    test_head, test_rule = (" Test micro-F1 | Test: every label right |", "---|---|") if tested else ("", "")
    lines = ["| File | Runs with | Size | Time per photo (CPU) | Micro-F1 | Every label right |" + test_head +
             " Same labels as trained | Same yes/no decisions | Largest score difference |",
             "|---|---|---|---|---|---|" + test_rule + "---|---|---|"]

    def test_cells(row: dict) -> str:
        return f" {_two_places(row.get('test_micro_f1'))} | {_percent(row.get('test_accuracy'))} |" if tested else ""

    trained = report["trained"]
    lines.append(f"| {trained['file']} (trained model) | {trained['runtime']} | {_mb(trained['bytes'])} | "
                 f"{trained['latency_ms']:.1f}\u00a0ms | {_two_places(trained.get('micro_f1'))} | "
                 f"{_percent(trained['accuracy'])} |{test_cells(trained)} reference | reference | - |")
    for row in report["exports"]:
        compared = row.get("decisions") is not None and bool(row["images"])   # not: unreadable, or another task
        same = f"{row['agree']}/{row['images']} photos" if compared else "-" if row["images"] else "not checked"
        decided = f"{row['decisions_agree']}/{row['decisions']}" if compared else "-"
        difference = "-" if row["max_probability_difference"] is None else f"{row['max_probability_difference']:.2g}"
        flag = "" if row["ok"] is not False else " ⚠"
        lines.append(f"| {row['file']}{flag} | {row['runtime']} | {_mb(row['bytes'])} | "
                     f"{row['latency_ms']:.1f}\u00a0ms | {_two_places(row.get('micro_f1_exported'))} | "
                     f"{_percent(row['accuracy_exported'])} |{test_cells(row)} {same} | {decided} | {difference} |")
    return "\n".join(lines) + "\n\n" + LABELS_TABLE_WORDS


def _two_places(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f}\u00a0MB"  # no break between number and unit in a narrow column


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
