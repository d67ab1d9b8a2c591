"""A run folder on disk: the one place that knows each file's name and how it is read and written.

Why one place: the page, the CLI, the exports and the resume code all read run folders, some
written by older versions or moved by hand, and a file name spelled in six modules drifts.

    config.json            what was asked, plus what the studio chose (rewritten atomically)
    status.json            status, timings, best epoch (rewritten atomically)
    metrics.jsonl          one JSON line per finished epoch
    metrics.csv            the same epochs as a table (losses, accuracies, learning rate) for a spreadsheet
    samples.csv            exactly which files trained and validated
    predictions.csv        the best epoch's answer and confidence for each validation photo
    predictions-latest.csv the last finished epoch's, for the live view
    test-predictions.csv   the finished model's answers on the test split, measured once at the end
    model.safetensors      the best model so far (see modelfile); the finished one carries its temperature
    familiarity.safetensors training photos' features and validation distances, to tell unfamiliar photos
    resume.pt              the last finished epoch's full training state, until the run finishes
    run.log                what happened, in order, with the traceback of any failure
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
METRICS_TABLE_FILE = "metrics.csv"
METRICS_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy",
                   "val_macro_f1", "lr", "epoch_seconds", "elapsed_seconds")
SAMPLES_FILE = "samples.csv"
PREDICTIONS_FILE = "predictions.csv"
LATEST_PREDICTIONS_FILE = "predictions-latest.csv"
TEST_PREDICTIONS_FILE = "test-predictions.csv"
RANKING_FILE = "ranking.json"   # per-class ROC AUC, average precision and precision-recall curves (evaluation)
WRONG_FOLDER_FILE = "wrong-folder.csv"   # training photos probably in the wrong folder (studio.data.wrong_folder)
MODEL_FILE = "model.safetensors"
FAMILIARITY_FILE = "familiarity.safetensors"
CHECKPOINT_FILE = "resume.pt"
LOG_FILE = "run.log"
STOP_FILE = "stop.request"   # asks a run trained by another process (torchrun, Ray) to stop
RUN_FILES = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, METRICS_TABLE_FILE, SAMPLES_FILE, PREDICTIONS_FILE,
             LATEST_PREDICTIONS_FILE, TEST_PREDICTIONS_FILE, WRONG_FOLDER_FILE, RANKING_FILE, MODEL_FILE,
             FAMILIARITY_FILE, CHECKPOINT_FILE, LOG_FILE, STOP_FILE)
EVENTS_FOLDER = "tensorboard"   # the optional TensorBoard events (studio.runs.tensorboard)


def write_json_atomic(path: Path, data) -> None:
    """Whole or not at all: a reader (or a crash) never meets half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str))
    os.replace(partial, path)


class RunFolder:
    """Paths and plain reads and writes of one run folder; no live state (that is `Run`'s)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # -- where each file is
    config = property(lambda self: self.path / CONFIG_FILE)
    status = property(lambda self: self.path / STATUS_FILE)
    metrics = property(lambda self: self.path / METRICS_FILE)
    metrics_table = property(lambda self: self.path / METRICS_TABLE_FILE)
    samples = property(lambda self: self.path / SAMPLES_FILE)
    predictions = property(lambda self: self.path / PREDICTIONS_FILE)
    latest_predictions = property(lambda self: self.path / LATEST_PREDICTIONS_FILE)
    test_predictions = property(lambda self: self.path / TEST_PREDICTIONS_FILE)
    model = property(lambda self: self.path / MODEL_FILE)
    familiarity = property(lambda self: self.path / FAMILIARITY_FILE)
    checkpoint = property(lambda self: self.path / CHECKPOINT_FILE)
    log = property(lambda self: self.path / LOG_FILE)
    stop_request = property(lambda self: self.path / STOP_FILE)

    def is_run(self) -> bool:
        """A folder the studio wrote a run into (it holds the run's config or status)."""
        return self.path.is_dir() and (self.config.is_file() or self.status.is_file())

    def has_model(self) -> bool:
        return self.model.is_file()

    def clear(self) -> None:
        """Remove what an earlier run left, so a folder reused for a new run starts clean."""
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / EVENTS_FOLDER, ignore_errors=True)

    # -- reading (OSError or ValueError for a missing or damaged file: callers decide what that means)
    def read_config(self) -> dict:
        return json.loads(self.config.read_text())

    def read_status(self) -> dict:
        return json.loads(self.status.read_text())

    def history(self) -> list[dict]:
        """Per-epoch metrics (a damaged trailing line, as a crash mid-write leaves, is ignored)."""
        rows = []
        if self.metrics.is_file():
            for line in self.metrics.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return rows

    # -- writing
    def write_config(self, config: dict) -> None:
        write_json_atomic(self.config, config)

    def write_status(self, state: dict) -> None:
        write_json_atomic(self.status, state)

    def append_epoch(self, row: dict) -> None:
        with open(self.metrics, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self._write_table(self.history())

    def rewrite_history(self, rows: list[dict]) -> None:
        partial = self.metrics.with_name(self.metrics.name + ".partial")
        partial.write_text("".join(json.dumps(row) + "\n" for row in rows))
        os.replace(partial, self.metrics)
        self._write_table(rows)

    def _write_table(self, rows: list[dict]) -> None:
        """metrics.csv, rewritten whole from the epochs (a few dozen lines), so it always matches them."""
        partial = self.metrics_table.with_name(self.metrics_table.name + ".partial")
        with open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, METRICS_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, self.metrics_table)
