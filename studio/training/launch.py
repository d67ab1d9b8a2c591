"""Start a distributed run: torchrun's processes train, this process follows their run folder.

    run = start_distributed(TrainConfig(data="photos/", processes=2), runner)   # or gpus=4
    run.wait(); run.snapshot()["best_val_accuracy"]

The queue hands the job its slots (GPUs) like any other; the job's thread starts torchrun
(`python -m torch.distributed.run`, PyTorch's own launcher) on `studio.training.rank_main`, then
copies what rank 0 writes to the run folder (status.json, metrics.jsonl) into the live Run, so
the page, the CLI and the Python API follow it as they follow a run trained in a thread. Stop
writes the folder's stop request, which every rank obeys after the same batch. Whatever the
processes print goes to torchrun.log in the run folder.

Several machines: the same `studio train ... --gpus N --nnodes M --node-rank K --rdzv-endpoint HOST:PORT
--out SHARED_FOLDER` on each; node 0 follows the run, the others only run their processes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from studio import evaluation
from studio.config import ASKED_KEY
from studio.runs import JobRunner, Run, RunFolder, Status
from studio.runs.state import ACTIVE_STATUSES
from studio.training.config import TrainConfig

LOG_NAME = "torchrun.log"
FOLLOW_SECONDS = 0.5


@dataclass(frozen=True)
class Rendezvous:
    """Where the machines of a multi-node run meet (torchrun's --nnodes, --node-rank, --rdzv-endpoint)."""
    nnodes: int = 1
    node_rank: int = 0
    endpoint: str | None = None

    def check(self) -> None:
        if self.nnodes > 1 and not self.endpoint:
            raise ValueError("A run on several machines needs --rdzv-endpoint HOST:PORT (node 0's address), "
                             "the same on every machine.")
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"--node-rank must be from 0 to {self.nnodes - 1} for {self.nnodes} machines.")


def is_distributed(config: TrainConfig) -> bool:
    return bool(config.gpus) or config.processes > 1


def processes_per_node(config: TrainConfig) -> int:
    return config.gpus or config.processes


def command(config_file: Path, run_dir: Path, config: TrainConfig, rendezvous: Rendezvous = Rendezvous(),
            resume: bool = False) -> list[str]:
    """The torchrun command line of one machine."""
    line = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes_per_node(config)}"]
    if rendezvous.nnodes > 1:
        line += [f"--nnodes={rendezvous.nnodes}", f"--node-rank={rendezvous.node_rank}",
                 "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous.endpoint}", f"--rdzv-id={run_dir.name}"]
    else:
        line += ["--standalone"]
    line += ["-m", "studio.training.rank_main", "--config", str(config_file), "--run-dir", str(run_dir)]
    return line + (["--resume"] if resume else [])


def environment(config: TrainConfig, slots: list[int]) -> dict:
    """The processes' environment: the GPUs the queue gave the job, or the CPU split between them."""
    env = dict(os.environ)
    if config.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(s) for s in slots)
    else:
        env["STUDIO_DIST_DEVICE"] = "cpu"
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // config.processes)))
    return env


def start_distributed(config: TrainConfig, runner: JobRunner, run_dir: str | Path | None = None,
                      rendezvous: Rendezvous = Rendezvous(), resume_from: dict | None = None,
                      queued_at: float | None = None) -> Run:
    """Queue the run in `runner` (it waits for `config.gpus` slots); its thread runs torchrun and follows
    the run folder. Returns the live Run at once."""
    rendezvous.check()
    resolved = config if resume_from is not None else config.resolved()
    payload = asdict(resolved)
    if resume_from is None:
        payload[ASKED_KEY] = {k: v for k, v in asdict(config).items() if k != "choices"}

    def target(run: Run) -> None:
        follow(run, resolved, payload, rendezvous, resume=resume_from is not None)

    return runner.start(payload, target, Path(resolved.runs_root) if resolved.runs_root else None,
                        Path(run_dir) if run_dir else None, resume_from, slots_needed=max(1, resolved.gpus),
                        queued_at=queued_at)


def run_other_node(config: TrainConfig, run_dir: Path, rendezvous: Rendezvous) -> int:
    """A machine other than 0 of a multi-node run: its processes train; machine 0 writes and follows the run."""
    resolved = config.resolved()
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="studio-run-", delete=False) as file:
        json.dump(asdict(resolved), file, default=str)
    try:
        return subprocess.call(command(Path(file.name), run_dir, resolved, rendezvous),
                               env=environment(resolved, list(range(resolved.gpus))))
    finally:
        Path(file.name).unlink(missing_ok=True)


def follow(run: Run, config: TrainConfig, payload: dict, rendezvous: Rendezvous, resume: bool) -> None:
    """Job body: run torchrun, mirror rank 0's folder into `run` until the processes end, pass Stop on."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="studio-run-", delete=False) as file:
        json.dump(payload, file, default=str)
    config_file = Path(file.name)
    log_path = run.dir / LOG_NAME
    run.update(phase=f"Starting {processes_per_node(config)} training processes (torchrun)")
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command(config_file, run.dir, config, rendezvous, resume),
                                       env=environment(config, run.snapshot().get("slots") or [0]),
                                       stdout=log, stderr=subprocess.STDOUT)
            while process.poll() is None:
                if run.stop_event.is_set():   # again each time: rank 0 clears a request made before it started
                    run.folder.stop_request.touch()
                mirror(run)
                time.sleep(FOLLOW_SECONDS)
        mirror(run)
        if run.status in ACTIVE_STATUSES:   # the processes ended without saying how: a crash
            run.finish(Status.FAILED, error=f"The training processes ended (exit code {process.returncode}) "
                                            f"before the run did. What they printed is in {log_path}.")
    finally:
        config_file.unlink(missing_ok=True)


def mirror(run: Run) -> None:
    """Copy what rank 0 has written so far (status.json, metrics.jsonl) into the live run."""
    folder = RunFolder(run.dir)
    try:
        status = folder.read_status()
        rows = folder.history()
    except (OSError, ValueError):
        return   # not written yet, or being replaced this instant: the next look sees it
    if status.get("run_dir") and Path(status["run_dir"]).resolve() != run.dir.resolve():
        return
    matrix = rows[-1].get("confusion_matrix") if rows else None
    classes = status.get("classes") or []
    state = {**status, "history": [{k: v for k, v in row.items() if k != "confusion_matrix"} for row in rows],
             "confusion": matrix,
             "per_class": evaluation.per_class_metrics(matrix, classes) if matrix and classes else None}
    try:
        saved = folder.read_config()
        state["config"] = saved
    except (OSError, ValueError):
        pass
    run.adopt(state)
