"""A run's `run.log`: what happened, in order, with the full traceback of any failure.

The page and `status.json` keep the failure in words; the details a developer needs (which
line, which call) go here, in the run's own folder, so they outlive the process and travel
with the run. Plain stdlib `logging`, one logger per run, written by the training thread.
"""
from __future__ import annotations

import logging
from pathlib import Path

from studio.runs.folder import LOG_FILE

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


class _QuietFileHandler(logging.FileHandler):
    """A line that cannot be written (a full disk) is dropped: the log must never stop a run
    or print logging's own traceback over the progress bar."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def open_log(run_dir: Path, run_id: str) -> logging.Logger:
    """The run's logger, appending to `<run_dir>/run.log` (a resumed run carries on the same file)."""
    # Not registered with logging's manager (getLogger would keep every run's logger for good).
    logger = logging.Logger(f"studio.run.{run_id}", logging.INFO)
    logger.propagate = False   # the CLI and the page show their own progress; this is the file's
    try:
        handler = _QuietFileHandler(Path(run_dir) / LOG_FILE, mode="a", encoding="utf-8", delay=True)
    except OSError:
        return logger
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    return logger


def close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
