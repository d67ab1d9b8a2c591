"""The live run: the object the training thread writes and the page reads.

One `Run` is shared between the training thread (the only writer) and any number of readers
(the page's timer, the CLI's progress bar). Readers take a `snapshot()`, a plain dict copied under
the lock, so they never see a half-updated epoch. Everything a run learns is also written to its
folder (`RunFolder`), so a finished run outlives the process.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from studio.runs import index, tensorboard
from studio.runs.folder import RunFolder
from studio.runs.log import close_log, open_log
from studio.runs.state import ACTIVE_STATUSES, SNAPSHOT_ONLY, RunState, Status

STATUS_EVERY_S = 5.0   # progress reaches status.json this often: what `studio runs`, torchrun and Ray followers read


def new_run_id(backbone: str) -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S}-{backbone}-{uuid.uuid4().hex[:6]}"


class Run:
    """Live state of one training run (thread-safe)."""

    def __init__(self, directory: Path, config: dict, resume_from: dict | None = None, listed: bool = True):
        """A new run in `directory`; with `resume_from` (its checkpoint), the run already there, continued
        after the checkpoint's epoch. `listed` False: a scratch run nobody lists (a torchrun rank
        other than 0 writes one)."""
        self.dir = Path(directory)
        self.folder = RunFolder(self.dir)
        self._status_written = 0.0   # monotonic time of the last status.json write (progress is throttled)
        self._tensorboard: tensorboard.EpochLog | None = None   # made with the first epoch (when installed)
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            self.folder.clear()   # a folder reused for a new run starts clean
        self.folder.stop_request.unlink(missing_ok=True)   # a Stop meant for an earlier try of this run
        self.id = self.dir.name
        self.thread: threading.Thread | None = None   # set by the JobRunner that starts it
        self.listed = listed
        if listed:
            index.remember(self.dir)   # a run written outside the workspace's runs folder is still listed
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._state: RunState = {
            "id": self.id, "run_dir": str(self.dir), "config": config, "status": Status.QUEUED,
            "phase": "Waiting to start", "message": "", "error": None,
            "epoch": 0, "epochs": int(config.get("epochs") or 0), "step": 0, "steps": 0,
            "progress": 0.0, "eta_seconds": None, "history": [], "classes": [],
            "confusion": None, "per_class": None, "best_val_accuracy": None, "best_epoch": None,
            "model_path": None, "started": time.time(), "finished": None, "notes": [],
            "log_file": str(self.folder.log),
            # who keeps this run going: another process (a server, `studio runs`) tells a live run from one
            # cut off by a restart by asking whether this process still exists
            "process": {"pid": os.getpid(), "host": socket.gethostname()},
        }
        self.log = open_log(self.dir, self.id)
        if resume_from is not None:
            self._reopen(resume_from)
            self.log.info("Resumed after epoch %s.", resume_from["epoch"])
        else:
            self.log.info("Run %s started with %s", self.id, json.dumps(config, default=str))
        self.folder.write_config(config)
        self._write_status()

    def _reopen(self, checkpoint: dict) -> None:
        """Take back what the folder knows up to the checkpoint's epoch.

        The checkpoint is written before its epoch is announced, so it carries that epoch's record
        and the best so far: an epoch missing from metrics.jsonl (a crash just after the save) is put
        back from it, and later lines (never checkpointed) are dropped, so the history has no gaps
        or repeats.
        """
        epochs_done = checkpoint["epoch"]
        kept = [row for row in self.folder.history() if row.get("epoch", 0) <= epochs_done]
        record = checkpoint.get("epoch_record")
        if record and not any(row.get("epoch") == epochs_done for row in kept):
            kept.append(dict(record))
        self.folder.rewrite_history(kept)
        try:
            previous = self.folder.read_status()
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
            best_confusion=best_confusion, best_score=previous.get("best_score"), task=previous.get("task"),
            model_path=str(self.folder.model) if self.folder.has_model() else None,
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
        self.folder.write_config(snapshot)

    # -- reading
    def snapshot(self) -> RunState:
        with self._lock:
            return copy.deepcopy(self._state)

    @property
    def status(self) -> str:
        with self._lock:
            return self._state["status"]

    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def wait(self, timeout: float | None = None) -> None:
        """Until the run's thread ends (or `timeout` seconds); a queued run is waited for through its
        time in the queue; at once for a run nothing trains (ended, or read back from its folder)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.thread is None and self.is_active():
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.05)
        if self.thread is not None:
            self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def adopt(self, state: dict) -> None:
        """Take the state another process wrote to this run's folder (status.json, metrics.jsonl) as this
        run's own, writing nothing: the page follows a torchrun or Ray run through this object."""
        with self._lock:
            self._state.update({k: v for k, v in state.items() if k not in ("id", "run_dir")})

    # -- writing (training thread)
    def update(self, **fields) -> None:
        with self._lock:
            new_phase = "phase" in fields and fields["phase"] != self._state["phase"]
            self._state.update(fields)
        if new_phase:
            self.log.info("%s", fields["phase"])
        now = time.monotonic()
        if ({"status", "best_val_accuracy", "error"} & fields.keys() or new_phase
                or ("progress" in fields and now - self._status_written >= STATUS_EVERY_S)):
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
        self.folder.append_epoch({**metrics, "confusion_matrix": confusion})
        self.log.info("Epoch %s: %s", metrics.get("epoch"), json.dumps(metrics))
        if self._tensorboard is None and self.listed:   # a torchrun rank's scratch run keeps no events
            self._tensorboard = tensorboard.EpochLog(self.dir)
        if self._tensorboard is not None:
            self._tensorboard.epoch(metrics)
        self._write_status()

    def finish(self, status: str, error: str | None = None) -> None:
        self.update(status=status, error=error, finished=time.time(), eta_seconds=0 if status == "finished" else None)
        self.log.log(logging.ERROR if status == "failed" else logging.INFO, "Run %s%s", status,
                     f": {error}" if error else ".")
        close_log(self.log)
        if self._tensorboard is not None:
            self._tensorboard.close()

    def _write_status(self) -> None:
        """Mirror the state to status.json; a failed write (disk full) keeps the previous file whole."""
        with self._lock:
            state = {k: v for k, v in self._state.items() if k not in SNAPSHOT_ONLY}
            self._status_written = time.monotonic()
        try:
            self.folder.write_status(state)
        except OSError as exc:  # the live state stays right in memory; the page and the CLI read that
            with self._lock:
                self._state["status_file_error"] = f"status.json could not be written: {exc.strerror}"


def owned_by(config: dict, user: str | None) -> bool:
    """With login, a person sees only their own runs; without it (user None) every run is theirs."""
    return user is None or (config or {}).get("owner") == user
