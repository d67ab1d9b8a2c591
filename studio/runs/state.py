"""The typed state of a run: its status words and the fields of its snapshot and status.json.

`Status` members are strings (a StrEnum), so status.json, the JSON the CLI prints and the page's
code keep comparing plain words; the type names every status there is in one place.
`RunState` is what `Run.snapshot()` returns; status.json holds the same minus the bulky parts.
"""
from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict


class Status(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"   # a folder says running, but no process is training it (a crash, kill -9)
    DAMAGED = "damaged"           # a folder that cannot be read back (the reason is in "error")


ACTIVE_STATUSES = (Status.QUEUED, Status.PREPARING, Status.RUNNING)
ENDED_STATUSES = (Status.FINISHED, Status.STOPPED, Status.FAILED)


class RunState(TypedDict, total=False):
    id: str
    run_dir: str
    config: dict[str, Any]         # what was asked, plus "choices": {setting: why}; only in the snapshot
    status: str                    # a Status
    phase: str                     # what is happening now, in words
    message: str
    error: str | None
    epoch: int
    epochs: int
    step: int
    steps: int
    progress: float                # 0..1 of the whole run
    eta_seconds: float | None
    history: list[dict]            # one row per finished epoch; only in the snapshot
    classes: list[str]
    confusion: list[list[int]] | None     # the last finished epoch's; only in the snapshot
    per_class: list[dict] | None          # only in the snapshot
    best_val_accuracy: float | None
    best_epoch: int | None
    best_confusion: list[list[int]] | None
    model_path: str | None
    started: float
    finished: float | None
    notes: list[str]
    log_file: str
    dataset: dict[str, Any]        # counts, classes and the files left out with their reasons
    freeze: dict[str, Any]
    engine: dict[str, Any]         # how the pixels and the passes were run (cache, precision)
    timings: dict[str, float]      # seconds per phase
    advice: str | None
    stopped_early: bool
    resumed_after: int
    test: dict[str, Any] | None    # the finished model on the test split: accuracy, images, confusion, per_class,
                                   # calibration_error {before, after}
    calibration: dict[str, Any] | None   # the temperature and the validation calibration error (studio.calibration)
    status_file_error: str
    process: dict[str, Any]        # {pid, host} of the process that queues or trains the run
    queued_at: float               # when Start was pressed (the queue's order)
    queue: dict[str, Any] | None   # while waiting: place (1 = next), ahead, expected_start_seconds
    slots: list[int]               # the slots (GPUs) the runner gave the run


SNAPSHOT_ONLY = ("history", "confusion", "per_class", "config")   # kept out of status.json
