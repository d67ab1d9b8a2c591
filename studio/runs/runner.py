"""The job runner: a fair queue of trainings, each run in a background thread of this process.

A Start while every slot is busy is queued, not refused: the run gets its folder at once (status
"queued", so `studio runs` and the Runs view list it), its place in line and an expected start.
A slot is one GPU (a machine with N GPUs runs N jobs at once, each on its own card) or, on a
CPU-only machine, the whole CPU (one job at a time: two trainings on the same cores are each slower
than one after the other). The next job is picked round-robin by person, so one person's ten runs
do not hold back everyone else's one. A queued run can be cancelled by whoever queued it.

A queued run's folder says "queued" and holds its config, so a studio restarted on the same
workspace puts it back in line (`trainer.requeue_saved`); a run cut off while training reads as
interrupted (history) and can be resumed.

A server, a CLI command or a script creates one runner and passes it on; nothing in the engine keeps
one in a module global, so two studios in one process (or a test beside a server) never share a queue.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from studio import paths
from studio.runs.live import Run, new_run_id, owned_by
from studio.runs.state import Status

MAX_WAITING_PER_PERSON = 5      # queued runs one person may have at once: the queue is shared
TYPICAL_RUN_SECONDS = 300.0     # a guess for a queued run's length before any run has finished here
TRAINING_NICENESS = 5           # CPU priority of a training thread: Try it and the page stay quick (5: a quarter
                                # of the CPU while they compete; 10 starved training whenever anything else ran)


class RunBusyError(RuntimeError):
    """A run cannot be queued (this person already has too many waiting)."""


@dataclass
class Job:
    """A run waiting for (or holding) slots, and how to train it."""
    run: Run
    target: Callable[[Run], None]
    owner: str | None
    queued_at: float
    slots_needed: int = 1
    slots: list[int] = field(default_factory=list)


def training_slots() -> int:
    """Jobs that may train at once here: one per GPU, or one on a CPU-only machine."""
    try:
        import torch
        return max(1, torch.cuda.device_count())
    except Exception:   # a broken CUDA install must not stop the studio from training on the CPU
        return 1


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


class JobRunner:
    """Queues trainings and runs them, up to `slots` at once, each in a background thread."""

    def __init__(self, slots: int | None = None, niceness: int | None = None, executor=None):
        """`executor`: where the jobs train when not here (studio.training.executors.RayJobs); None: in
        this process (threads, or torchrun's processes for runs that ask for several)."""
        self.executor = executor
        self.slots = slots or training_slots()
        self.niceness = TRAINING_NICENESS if niceness is None else niceness
        self._lock = threading.RLock()
        self._waiting: list[Job] = []
        self._running: dict[int, Job] = {}
        self._served: dict[str | None, int] = {}   # person -> the turn they were last served (round-robin)
        self._turn = 0
        self._durations: list[float] = []          # seconds the runs finished here took (for expected starts)
        self.runs: list[Run] = []                  # every run this runner has queued or trained, oldest first

    # -- reading
    @property
    def current(self) -> Run | None:
        """The run queued or started last (what a one-person studio shows)."""
        with self._lock:
            return self.runs[-1] if self.runs else None

    def latest_for(self, owner: str | None) -> Run | None:
        """The newest run `owner` may see (with login, their own; without, anyone's)."""
        with self._lock:
            mine = [run for run in self.runs if owned_by(run.snapshot()["config"], owner)]
        return mine[-1] if mine else None

    def active(self) -> list[Run]:
        """Runs training or waiting, oldest first."""
        with self._lock:
            return [run for run in self.runs if run.is_active()]

    def busy(self) -> bool:
        with self._lock:
            return bool(self._running) or bool(self._waiting)

    def find(self, run_dir: str | Path) -> Run | None:
        target = Path(run_dir).resolve()
        with self._lock:
            return next((run for run in reversed(self.runs) if run.dir.resolve() == target), None)

    def place(self, run: Run) -> dict | None:
        """For a waiting run: {place (1 = next), ahead, expected_start_seconds}; None when it is not waiting."""
        with self._lock:
            order = self._order()
            position = next((i for i, job in enumerate(order) if job.run is run), None)
            if position is None:
                return None
            return {"place": position + 1, "ahead": position + len(self._running),
                    "expected_start_seconds": self._expected_start(order, position)}

    # -- starting
    def start(self, config: dict, target: Callable[[Run], None], runs_root: Path | None = None,
              run_dir: Path | None = None, resume_from: dict | None = None, *, slots_needed: int = 1,
              queued_at: float | None = None) -> Run:
        """Queue a run (its folder is written at once) and start it as soon as `slots_needed` slots are
        free and it is its turn; returns the live Run. RunBusyError when the person has too many waiting."""
        owner = config.get("owner")
        with self._lock:
            waiting = sum(1 for job in self._waiting if job.owner == owner)
            if waiting >= MAX_WAITING_PER_PERSON:
                raise RunBusyError(f"You already have {waiting} runs waiting in the queue. Wait for one to start, "
                                   "or stop one of them (Stop, or Runs), then start again.")
            if slots_needed > self.slots:
                raise RunBusyError(f"This run asks for {slots_needed} GPUs and this machine has {self.slots}.")
            root = Path(runs_root) if runs_root else paths.runs_dir()
            run = Run(Path(run_dir) if run_dir else root / new_run_id(config.get("backbone", "model")), config,
                      resume_from)
            job = Job(run, target, owner, queued_at or time.time(), slots_needed)
            run.update(queued_at=job.queued_at, status=Status.QUEUED)   # status.json keeps its place in line
            self.runs.append(run)
            self._waiting.append(job)
            self._dispatch()
            return run

    def stop(self, run: Run | None = None) -> bool:
        """Stop `run` (default: the latest): a training one after its current batch, a waiting one at once
        (it leaves the queue). False when it is not going."""
        run = run or self.current
        if run is None:
            return False
        with self._lock:
            job = next((j for j in self._waiting if j.run is run), None)
            if job is not None:
                self._waiting.remove(job)
                run.update(phase="Taken out of the queue before it started.")
                run.finish(Status.STOPPED)
                self._refresh_places()
                return True
        if run.is_active():
            run.stop_event.set()
            return True
        return False

    def wait(self, timeout: float | None = None) -> None:
        """Until every run queued so far has ended (or `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for run in list(self.runs):
            run.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    # -- the queue
    def _order(self) -> list[Job]:
        """The waiting jobs in the order they will start: round-robin over people (whoever was served
        longest ago goes first), each person's own jobs first come first served."""
        served = dict(self._served)
        turn = self._turn
        queue = sorted(self._waiting, key=lambda j: j.queued_at)
        order: list[Job] = []
        while queue:
            owners = {job.owner for job in queue}
            owner = min(owners, key=lambda o: (served.get(o, -1), next(j.queued_at for j in queue if j.owner == o)))
            job = next(j for j in queue if j.owner == owner)
            order.append(job)
            queue.remove(job)
            turn += 1
            served[owner] = turn
        return order

    def _free_slots(self) -> list[int]:
        taken = {slot for job in self._running.values() for slot in job.slots}
        return [slot for slot in range(self.slots) if slot not in taken]

    def _dispatch(self) -> None:
        """Start every waiting job that fits the free slots, in turn."""
        for job in self._order():
            free = self._free_slots()
            if len(free) < job.slots_needed:
                break   # the next in line waits for its slots; no one overtakes it
            job.slots = free[:job.slots_needed]
            self._waiting.remove(job)
            self._turn += 1
            self._served[job.owner] = self._turn
            self._running[job.slots[0]] = job
            # its time starts now (the runs list's duration), and it has no place in line any more
            job.run.update(slots=list(job.slots), phase="Starting", queue=None, started=time.time(),
                           status=Status.PREPARING)
            job.run.thread = threading.Thread(target=self._body, args=(job,), name=f"train-{job.run.id}",
                                              daemon=True)
            job.run.thread.start()
        self._refresh_places()

    def _body(self, job: Job) -> None:
        started = time.time()
        try:
            with self._on_slots(job.slots):
                job.target(job.run)
        finally:
            with self._lock:
                self._running.pop(job.slots[0], None)
                if job.run.status == Status.FINISHED:
                    self._durations.append(time.time() - started)
                self._dispatch()

    @contextlib.contextmanager
    def _on_slots(self, slots: list[int]) -> Iterator[None]:
        """Train on the job's GPU (each thread has its own current CUDA device), or on the CPU at a lower
        priority so the page's other work (Try it) is not starved by the training."""
        import torch
        if torch.cuda.is_available() and self.slots > 1:
            with torch.cuda.device(slots[0]):
                yield
            return
        if self.niceness and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):   # the thread's own priority; its helper threads inherit it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        yield

    def _expected_start(self, order: list[Job], position: int) -> float | None:
        """Seconds until order[position] starts: the running jobs' time left, then the typical length of
        each job ahead, each on the slot that frees first."""
        typical = statistics.median(self._durations) if self._durations else TYPICAL_RUN_SECONDS
        free_at = [0.0] * self.slots
        for job in self._running.values():
            snapshot = job.run.snapshot()
            # the first estimates of time left come before the photos are read: not below the typical run's rest
            left = max(float(snapshot.get("eta_seconds") or 0), typical * (1 - (snapshot.get("progress") or 0)))
            for slot in job.slots:
                free_at[slot] = left
        for i, job in enumerate(order[:position + 1]):
            free_at.sort()
            start = free_at[job.slots_needed - 1]
            if i == position:
                return start
            for k in range(job.slots_needed):
                free_at[k] = start + typical
        return None

    def _refresh_places(self) -> None:
        """Tell each waiting run where it stands, in words its page shows."""
        for job in self._waiting:
            where = self.place(job.run)
            if where is None:
                continue
            seconds = where["expected_start_seconds"]
            when = (f"; expected to start in about {max(1, round(seconds / 60))} min" if seconds
                    else "; it starts as soon as a run ends")
            job.run.update(queue=where, phase=f"Queued: {ordinal(where['place'])} in line{when} "
                                              "(Stop takes it out of the queue)")

    def refresh(self) -> None:
        """Bring the waiting runs' places and expected starts up to date (the page calls it as it polls)."""
        with self._lock:
            self._refresh_places()
