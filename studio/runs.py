"""Runs: the object the training thread writes and the page reads, and its folder on disk.

One `Run` is shared between the training thread (the only writer) and any number
of readers (the page's timer, the CLI's progress bar). Readers take a
`snapshot()`, a plain dict copied under the lock, so they never see a half-updated
epoch. Everything a run learns is also written to its folder, so a finished run
outlives the process:

    runs/<run id>/config.json     what was asked, plus what the studio chose
    runs/<run id>/status.json     status, timings, best epoch (rewritten atomically)
    runs/<run id>/metrics.jsonl   one JSON line per finished epoch
    runs/<run id>/samples.csv     exactly which files trained and validated
    runs/<run id>/predictions.csv the best epoch's answer and confidence for each validation photo
    runs/<run id>/model.safetensors   the best model so far (see modelfile)
    runs/<run id>/resume.pt       the last finished epoch's full training state (until the run finishes)
    runs/<run id>/run.log         what happened, in order, with the traceback of any failure (see run_log)
"""
from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable

from studio import paths, run_index
from studio.run_log import LOG_FILE, close_log, open_log

ACTIVE_STATUSES = ("queued", "preparing", "running")
MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "resume.pt"
RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "samples.csv", "predictions.csv",
             "predictions-latest.csv", MODEL_FILE, CHECKPOINT_FILE, LOG_FILE)


def write_json_atomic(path: Path, data) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str))
    os.replace(partial, path)


def new_run_id(backbone: str) -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{backbone}-{uuid.uuid4().hex[:6]}"


class Run:
    """Live state of one training run (thread-safe)."""

    def __init__(self, directory: Path, config: dict, resume_from: dict | None = None):
        """A new run in `directory`; with `resume_from` (its checkpoint), the run already there, continued
        after the checkpoint's epoch."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            for leftover in RUN_FILES:  # a folder reused for a new run starts clean
                (self.dir / leftover).unlink(missing_ok=True)
        self.id = self.dir.name
        run_index.remember(self.dir)   # a run written outside the workspace's runs folder is still listed
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._state = {
            "id": self.id, "run_dir": str(self.dir), "config": config, "status": "queued",
            "phase": "Waiting to start", "message": "", "error": None,
            "epoch": 0, "epochs": int(config.get("epochs") or 0), "step": 0, "steps": 0,
            "progress": 0.0, "eta_seconds": None, "history": [], "classes": [],
            "confusion": None, "per_class": None, "best_val_accuracy": None, "best_epoch": None,
            "model_path": None, "started": time.time(), "finished": None, "notes": [],
            "log_file": str(self.dir / LOG_FILE),
        }
        self.log = open_log(self.dir, self.id)
        if resume_from is not None:
            self._reopen(resume_from)
            self.log.info("Resumed after epoch %s.", resume_from["epoch"])
        else:
            self.log.info("Run %s started with %s", self.id, json.dumps(config, default=str))
        write_json_atomic(self.dir / "config.json", config)
        self._write_status()

    def _reopen(self, checkpoint: dict) -> None:
        """Take back what the folder knows up to the checkpoint's epoch.

        The checkpoint is written before its epoch is announced, so it carries that epoch's record
        and the best so far: an epoch missing from metrics.jsonl (a crash just after the save) is put
        back from it, and later lines (never checkpointed) are dropped, so the history has no gaps
        or repeats.
        """
        epochs_done = checkpoint["epoch"]
        kept = [row for row in load_history(self.dir) if row.get("epoch", 0) <= epochs_done]
        record = checkpoint.get("epoch_record")
        if record and not any(row.get("epoch") == epochs_done for row in kept):
            kept.append(dict(record))
        partial = self.dir / "metrics.jsonl.partial"
        partial.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(partial, self.dir / "metrics.jsonl")
        try:
            previous = json.loads((self.dir / "status.json").read_text())
        except (OSError, ValueError):
            previous = {}
        history = [{k: v for k, v in row.items() if k != "confusion_matrix"} for row in kept]
        by_epoch = {row["epoch"]: row for row in kept}
        best = checkpoint.get("best") or {"epoch": previous.get("best_epoch"),
                                          "val_accuracy": previous.get("best_val_accuracy")}
        best_confusion = best.get("confusion") or by_epoch.get(best.get("epoch"), {}).get("confusion_matrix")
        self._state.update(
            history=history, epoch=epochs_done, classes=previous.get("classes") or [],
            confusion=kept[-1].get("confusion_matrix") if kept else None,
            best_val_accuracy=best.get("val_accuracy"), best_epoch=best.get("epoch"),
            best_confusion=best_confusion,
            model_path=str(self.dir / MODEL_FILE) if (self.dir / MODEL_FILE).is_file() else None,
            notes=[*previous.get("notes", []), f"Resumed after epoch {epochs_done}."],
            resumed_after=epochs_done)

    def record_setting(self, name: str, value, words: str) -> None:
        """A setting the run decided once it saw the data (e.g. the batch size), with the reason."""
        with self._lock:
            self._state["config"][name] = value
        self.add_choice(name, words)

    def add_choice(self, name: str, words: str) -> None:
        """Record a decision made during the run (e.g. class weighting) beside the recipe's own."""
        with self._lock:
            config = self._state["config"]
            config.setdefault("choices", {})[name] = words
            snapshot = copy.deepcopy(config)
        self.log.info("Chose %s: %s", name, words)
        write_json_atomic(self.dir / "config.json", snapshot)

    # -- reading
    def snapshot(self) -> dict:
        with self._lock:
            return copy.deepcopy(self._state)

    @property
    def status(self) -> str:
        with self._lock:
            return self._state["status"]

    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    # -- writing (training thread)
    def update(self, **fields) -> None:
        with self._lock:
            new_phase = "phase" in fields and fields["phase"] != self._state["phase"]
            self._state.update(fields)
        if new_phase:
            self.log.info("%s", fields["phase"])
        if {"status", "best_val_accuracy", "error"} & fields.keys():
            self._write_status()

    def note(self, text: str) -> None:
        with self._lock:
            self._state["notes"].append(text)
        self.log.info("Note: %s", text)

    def record_epoch(self, metrics: dict, confusion: list, per_class: list) -> None:
        with self._lock:
            self._state["history"].append(metrics)
            self._state["confusion"] = confusion
            self._state["per_class"] = per_class
        with open(self.dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({**metrics, "confusion_matrix": confusion}) + "\n")
        self.log.info("Epoch %s: %s", metrics.get("epoch"), json.dumps(metrics))
        self._write_status()

    def finish(self, status: str, error: str | None = None) -> None:
        self.update(status=status, error=error, finished=time.time(), eta_seconds=0 if status == "finished" else None)
        self.log.log(logging.ERROR if status == "failed" else logging.INFO, "Run %s%s", status,
                     f": {error}" if error else ".")
        close_log(self.log)

    def _write_status(self) -> None:
        """Mirror the state to status.json; a failed write (disk full) keeps the previous file whole."""
        with self._lock:
            state = {k: v for k, v in self._state.items() if k not in ("history", "confusion", "per_class", "config")}
        try:
            write_json_atomic(self.dir / "status.json", state)
        except OSError as exc:  # the live state stays right in memory; the page and the CLI read that
            with self._lock:
                self._state["status_file_error"] = f"status.json could not be written: {exc.strerror}"


def owned_by(config: dict, user: str | None) -> bool:
    """With login, a person sees only their own runs; without it (user None) every run is theirs."""
    return user is None or (config or {}).get("owner") == user


class RunBusyError(RuntimeError):
    """A second training was asked for while one runs."""


class JobManager:
    """Runs one training at a time in a background thread of this process.

    A second Start while one runs is refused (RunBusyError) with what is running
    and how long it is expected to take.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.current: Run | None = None
        self._thread: threading.Thread | None = None

    def start(self, config: dict, target: Callable[[Run], None], runs_root: Path | None = None,
              run_dir: Path | None = None, resume_from: dict | None = None) -> Run:
        with self._lock:
            if self.current is not None and self.current.is_active():
                snap = self.current.snapshot()
                eta = snap.get("eta_seconds")
                wait = f" about {int(eta)} s left" if eta else ""
                raise RunBusyError(f"A training run is already going ({snap['id']}, {snap['phase']}{wait}). "
                                   "Wait for it to finish or stop it first.")
            root = Path(runs_root) if runs_root else paths.runs_dir()
            run = Run(Path(run_dir) if run_dir else root / new_run_id(config.get("backbone", "model")), config,
                      resume_from)
            self.current = run
            self._thread = threading.Thread(target=target, args=(run,), name=f"train-{run.id}", daemon=True)
            self._thread.start()
            return run

    def stop(self) -> bool:
        run = self.current
        if run is not None and run.is_active():
            run.stop_event.set()
            return True
        return False

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


MANAGER = JobManager()


def load_history(run_dir: Path) -> list[dict]:
    """Per-epoch metrics of a run folder (a damaged trailing line is ignored)."""
    rows = []
    metrics = Path(run_dir) / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows
