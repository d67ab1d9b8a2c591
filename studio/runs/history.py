"""Past runs, read back from their folders on disk (the Runs view's engine).

Every run keeps its config, status, per-epoch metrics and best model in its own
folder (see `RunFolder`), so the history survives restarts. This module only reads:
a run whose status.json still says it is active but which is not the caller's live
run (`live`, from its JobRunner) was cut off by a restart, and is reported as
"interrupted" (its best model so far is still usable), never rewritten. A folder whose files cannot be
read is listed as "damaged", with the reason, instead of breaking the list.
"""
from __future__ import annotations

import csv
import os
import socket
import time
from datetime import datetime
from pathlib import Path

from studio import evaluation, paths
from studio.runs import index as run_index
from studio.runs.folder import RunFolder
from studio.runs.live import Run
from studio.runs.state import ACTIVE_STATUSES, Status

INTERRUPTED = Status.INTERRUPTED
UNREADABLE = Status.DAMAGED


class RunNotFound(LookupError):
    """No run folder of that id under the runs root."""


def data_name(data: str | None) -> str:
    """A dataset in two words: "example", or its folder's (or .zip's) name."""
    if not data:
        return "?"
    path = Path(data)
    try:
        if path.resolve() == paths.EXAMPLE_DATASET.resolve():
            return "example"
    except OSError:
        pass
    return path.stem if path.suffix.lower() == ".zip" else path.name


def freeze_words(config_freeze, freeze: dict | None) -> str:
    """What was frozen, in words: "Auto", "new head only", "N of M groups frozen"."""
    asked = str(config_freeze or "").strip().lower()
    if asked == "auto":
        if freeze and not freeze.get("feature_extraction") and freeze.get("total_groups"):
            return f"Auto ({freeze['frozen_groups']} of {freeze['total_groups']} groups frozen)"
        return "Auto"
    if asked == "all" or (freeze and freeze.get("feature_extraction")):
        return "new head only"
    if freeze and freeze.get("total_groups"):
        if freeze["frozen_groups"] == 0:
            return "nothing frozen (all layers train)"
        return f"{freeze['frozen_groups']} of {freeze['total_groups']} groups frozen"
    return f"{asked} groups frozen" if asked.isdigit() else (asked or "?")


def _started_from_id(run_id: str) -> float | None:
    try:
        return datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").timestamp()
    except ValueError:
        return None


def _live_one(run_dir: Path, live) -> Run | None:
    """The live run (of `live`: one Run, or the runs a JobRunner holds) that writes `run_dir`, if any."""
    runs = [live] if isinstance(live, Run) else list(live or [])
    target = run_dir.resolve()
    return next((run for run in reversed(runs) if run.dir.resolve() == target), None)


def kept_by_another_process(process: dict | None) -> bool:
    """Whether another process (a studio server, torchrun's rank 0, a job on another machine) still keeps
    this active run going. This process's own runs are known from its runner (`live`) instead."""
    if not isinstance(process, dict) or not process.get("pid"):
        return False
    if process.get("host") != socket.gethostname():
        return True   # elsewhere (a Ray worker): nothing here can tell, so it is taken at its word
    if process["pid"] == os.getpid():
        return False
    try:
        os.kill(int(process["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, ValueError):
        return True
    return True


def summarize(run_dir: Path, live: Run | list[Run] | None = None) -> dict:
    """One row of the runs table, from a run folder; `live` is the run (or the runs) the caller's runner
    queues or trains now: a folder that says active but none of them writes was cut off (interrupted)."""
    run_dir = Path(run_dir)
    live = _live_one(run_dir, live)
    folder = RunFolder(run_dir)
    row = {"id": run_dir.name, "run_dir": str(run_dir), "started": _started_from_id(run_dir.name),
           "data": "?", "backbone": "?", "freeze": "?", "best_val_accuracy": None, "best_epoch": None,
           "duration_seconds": None, "status": UNREADABLE, "has_model": folder.has_model(),
           "error": None, "owner": None}
    try:
        config = folder.read_config()
        status = folder.read_status()
        if not isinstance(config, dict) or not isinstance(status, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError as exc:
        row["error"] = f"{Path(exc.filename).name} is missing"
        return _dated(row, run_dir)
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        row["error"] = f"a file is damaged ({exc.__class__.__name__}: {exc})"
        return _dated(row, run_dir)
    history = folder.history()
    state = status.get("status") or UNREADABLE
    is_live = live is not None
    if is_live:
        state = live.status
    elif state in ACTIVE_STATUSES and not kept_by_another_process(status.get("process")):
        state = INTERRUPTED
    started = status.get("started") or row["started"]
    finished = status.get("finished")
    if finished and started:
        duration = finished - started
    elif is_live and started:
        duration = time.time() - started
    else:  # interrupted: as far as the last finished epoch got
        duration = history[-1].get("elapsed_seconds") if history else None
    best = status.get("best_val_accuracy")
    if best is None and history:
        best = max(h["val_accuracy"] for h in history)
    row.update(started=started, data=data_name(config.get("data")),
               backbone=config.get("backbone") or "?", freeze=freeze_words(config.get("freeze"), status.get("freeze")),
               best_val_accuracy=best, best_epoch=status.get("best_epoch"), duration_seconds=duration,
               status=state, error=status.get("error"), owner=config.get("owner"),
               test_accuracy=(status.get("test") or {}).get("accuracy"),
               test_images=(status.get("test") or {}).get("images"), task=status.get("task") or "single-label",
               best_score=status.get("best_score"))
    return row


def _dated(row: dict, run_dir: Path) -> dict:
    """A damaged run still sorts by when it was made (its id's date, else its folder's)."""
    if row["started"] is None:
        row["started"] = run_dir.stat().st_mtime
    return row


def run_folders(root: Path | None = None) -> list[Path]:
    """Folders under the runs root that hold a run (a config or status file)."""
    root = Path(root) if root else paths.runs_dir()
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if not p.name.startswith(".") and RunFolder(p).is_run()]


def known_runs(root: Path | None = None) -> dict[str, Path]:
    """Every run by id: the workspace's runs folder, then the runs written elsewhere (`--out`).

    An id is the folder's name; a folder elsewhere whose name is already taken gets its parent's
    name added (`x@experiments`), so every id in the list opens exactly one folder. With `root`,
    only the runs under that folder.
    """
    runs = {folder.name: folder for folder in run_folders(root)}
    if root is not None:
        return runs
    taken = {folder.resolve() for folder in runs.values()}
    for folder in run_index.indexed_folders()[0]:
        if folder.resolve() in taken:
            continue
        run_id, n = folder.name, 1
        while run_id in runs:
            n += 1
            run_id = f"{folder.name}@{folder.parent.name}" + (f"~{n - 1}" if n > 2 else "")
        runs[run_id] = folder
        taken.add(folder.resolve())
    return runs


def _rows(runs: dict[str, Path], owner: str | None = None, live: Run | None = None) -> list[dict]:
    rows = [{**summarize(folder, live), "id": run_id} for run_id, folder in runs.items()]
    if owner is not None:
        rows = [row for row in rows if row.get("owner") == owner]
    return sorted(rows, key=lambda r: (r["started"] or 0, r["id"]), reverse=True)


def list_runs(root: Path | None = None, owner: str | None = None, live: Run | None = None) -> list[dict]:
    """Every run the studio has written, wherever it is, newest first; with `owner` (login), only
    that person's runs. With `root`, only the runs under that folder."""
    return _rows(known_runs(root), owner, live)


def list_runs_at(locations) -> tuple[list[dict], list[str]]:
    """The runs in folders a person named (run folders, or folders of runs), newest first, and a
    line for each path that holds none. They are remembered, so the Runs page lists them too;
    each keeps the id the Runs page and `studio runs` give it."""
    folders, problems = run_index.run_folders_at(locations)
    ids = {folder.resolve(): run_id for run_id, folder in known_runs().items()}
    return _rows({ids.get(folder.resolve(), str(folder)): folder for folder in folders}), problems


def missing_runs() -> list[Path]:
    """Run folders the studio wrote elsewhere that are no longer where they were."""
    return run_index.indexed_folders()[1]


def find_run(run_id: str, root: Path | None = None, owner: str | None = None) -> Path:
    """The folder of run `run_id` (an id from the list, never a path); with `owner`, only theirs."""
    if not run_id or Path(run_id).name != run_id or run_id.startswith("."):
        raise RunNotFound(f"'{run_id}' is not a run id.")
    folder = (Path(root) if root else paths.runs_dir()) / run_id
    if not folder.is_dir():
        folder = known_runs(root).get(run_id) or folder
    if not folder.is_dir():
        raise RunNotFound(f"There is no run '{run_id}' (it may have been deleted).")
    if owner is not None and _owner_of(folder) != owner:
        raise RunNotFound(f"There is no run '{run_id}' among your runs.")
    return folder


def _owner_of(folder: Path) -> str | None:
    try:
        return RunFolder(folder).read_config().get("owner")
    except (OSError, ValueError, AttributeError):
        return None


def load_run(run_id: str, root: Path | None = None, owner: str | None = None, live: Run | None = None) -> dict:
    """Everything the Runs view shows about one run: its row, curves, best epoch's matrix, choices."""
    folder = find_run(run_id, root, owner)
    summary = {**summarize(folder, live), "id": run_id}
    history = RunFolder(folder).history()
    details = {"summary": summary, "history": history, "classes": [], "confusion": None, "per_class": None,
               "choices": {}, "config": {}, "test": None, "ranking": None}
    if summary["status"] == UNREADABLE:
        return details
    config, status = RunFolder(folder).read_config(), RunFolder(folder).read_status()
    classes = status.get("classes") or (status.get("dataset") or {}).get("classes") or []
    confusion = _best_confusion(history, status.get("best_epoch")) or status.get("best_confusion")
    ranked = evaluation.read_ranking(folder)
    details.update(classes=classes, confusion=confusion, config=config, choices=config.get("choices") or {},
                   test=status.get("test"),
                   per_class=evaluation.with_ranking(evaluation.per_class_metrics(confusion, classes), ranked)
                   if confusion and classes else None, ranking=ranked)
    return details


def _best_confusion(history: list[dict], best_epoch: int | None) -> list | None:
    """The confusion matrix of the best epoch (highest validation accuracy when unknown)."""
    if not history:
        return None
    if best_epoch is not None:
        for entry in history:
            if entry.get("epoch") == best_epoch:
                return entry.get("confusion_matrix")
    return max(history, key=lambda h: h.get("val_accuracy", 0)).get("confusion_matrix")


def run_samples(run_dir: Path, split: str) -> list[tuple[str, str]]:
    """(path, label) of the photos a run used for `split` ("train" or "val"), in its own order.

    From samples.csv (written before the first epoch); a run without one falls
    back on predictions.csv, which lists the validation photos. Empty when neither
    can be read. The files themselves may have been moved since.
    """
    run_dir = Path(run_dir)
    sources = [(RunFolder(run_dir).samples, True), (RunFolder(run_dir).predictions, False)]
    for path, has_split in sources:
        if not has_split and split != "val":
            continue
        try:
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, csv.Error, UnicodeDecodeError):
            continue
        # a multi-label photo with none of the labels has an empty label cell, and is still a photo of the run
        picked = [(r["path"], r["label"]) for r in rows
                  if r.get("path") and r.get("label") is not None and (not has_split or r.get("split") == split)]
        if picked:
            return picked
    return []
