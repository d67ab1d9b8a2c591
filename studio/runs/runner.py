"""The job runner: starts trainings in background threads of this process, one at a time.

A server, a CLI command or a script creates one and passes it on; nothing in the engine keeps one
in a module global, so two studios in one process (or a test beside a server) never share a queue.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from studio import paths
from studio.runs.live import Run, new_run_id


class RunBusyError(RuntimeError):
    """A second training was asked for while one runs."""


class JobRunner:
    """Runs one training at a time in a background thread of this process.

    A second Start while one runs is refused (RunBusyError) with what is running
    and how long it is expected to take.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.current: Run | None = None

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
            run.thread = threading.Thread(target=target, args=(run,), name=f"train-{run.id}", daemon=True)
            run.thread.start()
            return run

    def stop(self) -> bool:
        run = self.current
        if run is not None and run.is_active():
            run.stop_event.set()
            return True
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Until the current run's thread ends (or `timeout` seconds)."""
        if self.current is not None:
            self.current.wait(timeout)
