"""Runs: a run folder on disk, the live run, the job runner, and the runs done before.

    folder.py       RunFolder: every file name in a run folder, read and written in one place
    state.py        Status and RunState: the typed state a run's snapshot and status.json hold
    live.py         Run: the live state the training thread writes and the page reads
    runner.py       JobRunner: starts trainings in background threads, one at a time
    history.py      the runs done before, listed and read back (also runs written elsewhere)
    index.py        the workspace's index of run folders outside its runs folder
    log.py          run.log, with the traceback of any failure
    checkpoints.py  resume.pt, the training state after the last finished epoch
"""
from studio.runs.folder import CHECKPOINT_FILE, MODEL_FILE, RunFolder, write_json_atomic
from studio.runs.state import ACTIVE_STATUSES, RunState, Status
from studio.runs import index, log  # noqa: I001 - live needs both first
from studio.runs.live import Run, owned_by
from studio.runs.runner import JobRunner, RunBusyError

__all__ = ["ACTIVE_STATUSES", "CHECKPOINT_FILE", "MODEL_FILE", "JobRunner", "Run", "RunBusyError", "RunFolder",
           "RunState", "Status", "index", "log", "owned_by", "write_json_atomic"]
