"""A training run from start to end: a config in, a run folder with metrics and the best model out.

`Trainer.train` prepares the context (data, model, pixels), then runs the plan's stages one by
one through `run_stage`, the only epoch loop. `start_training()` runs it in a background thread
of a `JobRunner` (the caller's, or a new one), which is what the page, the CLI and the Python API use.
"""
from __future__ import annotations

import errno
import os
import socket
from dataclasses import asdict
from pathlib import Path

from studio import backbones
from studio.config import ASKED_KEY
from studio.runs import JobRunner, Run, RunFolder, Status, checkpoints
from studio.runs.checkpoints import ResumeError
from studio.training import backbone_choice, calibrate, final_test, label_check, plan
from studio.training.best import BestTracker
from studio.training.config import TrainConfig
from studio.training.context import StopRequested, TrainContext, new_context, prepare
from studio.training.distributed import Ranks
from studio.training.loop import run_stage


class Trainer:
    """One training run from a resolved config, publishing everything to `run`."""

    def __init__(self, config: TrainConfig, run: Run, resume: dict | None = None, ranks: Ranks | None = None):
        self.cfg, self.run = config, run
        self.resume = resume    # a checkpoint from checkpoints.read: continue after its epoch
        self.ctx: TrainContext = new_context(config, run, ranks)   # ranks: one of several torchrun processes
        self.tracker = BestTracker(config.patience)

    @property
    def model(self):
        return self.ctx.model

    @property
    def prep(self) -> dict:
        return self.ctx.prep

    def train(self) -> dict:
        ctx, checkpoint = self.ctx, self.resume
        if checkpoint is None and backbone_choice.should_advise(self.cfg):
            backbone_choice.choose(self.cfg, self.run)
            self.cfg.backbone = ctx.agree(self.cfg.backbone)
            ctx.lap("advisor")
        prepare(ctx, checkpoint, staged=plan.is_staged(self.cfg))
        if checkpoint:
            self.tracker.take_back(checkpoint, self.run.folder.model)
        for stage in plan.stages(ctx, self.tracker, checkpoint):
            own = checkpoint if checkpoint and checkpoint["stage"] == stage.name else None
            checkpoint = None   # only the stage the run stopped in carries on from the checkpoint
            if not run_stage(ctx, stage, self.tracker, own):
                break
        self.tracker.restore(ctx.model)
        if self.tracker.best_state is not None:   # the best epoch's model, now in ctx.model
            calibrated = calibrate.run(ctx)
            ctx.lap("calibrate")
            self.run.update(calibration=calibrated)
            self.run.update(test=final_test.measure(ctx, ctx.test_files, ctx.test_labels, calibrated["temperature"]))
            checked = label_check.run(ctx)
            if checked is not None:
                ctx.lap("wrong_folder")
                self.run.update(wrong_folder=checked)
        return self.run.snapshot()


def run_training(config: TrainConfig, run: Run, resume: dict | None = None, ranks: Ranks | None = None) -> None:
    """Thread body (or a torchrun process's): train, and leave the run finished, stopped or failed (never
    hanging)."""
    try:
        Trainer(config, run, resume, ranks).train()
        run.update(phase="Finished", progress=1.0)
        run.finish(Status.FINISHED)
        run.folder.checkpoint.unlink(missing_ok=True)  # nothing left to resume: give the disk back
    except StopRequested:
        run.update(phase="Stopped by you; the best model so far is kept.")
        run.finish(Status.STOPPED)
    except Exception as exc:  # reported on the page, not raised into a dead thread
        run.log.exception("Training failed")   # the traceback goes to run.log; the page gets words
        run.update(phase="Failed")
        words = failure_words(exc)
        if not _is_user_error(exc):
            words += f" The details are in {run.folder.log}."
        run.finish(Status.FAILED, error=words)


DISK_WORDS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EACCES: "the studio may not write there", errno.EROFS: "the disk is read-only"}


def failure_words(exc: Exception) -> str:
    """Why a run failed, in words a person can act on."""
    if isinstance(exc, OSError) and exc.errno in DISK_WORDS:
        where = f" ({exc.filename})" if exc.filename else ""
        return (f"Could not save{where}: {DISK_WORDS[exc.errno]}. The epochs finished so far and the best "
                "model saved before this are kept; free some space, then resume the run (Resume in the Runs "
                "view, or studio train --resume).")
    if isinstance(exc, MemoryError):
        return str(exc) or "Out of memory: choose a smaller backbone or batch size."
    return str(exc) if _is_user_error(exc) else f"{exc.__class__.__name__}: {exc}"


def _is_user_error(exc: Exception) -> bool:
    from studio.data.sources import DatasetError
    return isinstance(exc, (DatasetError, backbones.BackboneError, ValueError))


def start_training(config: TrainConfig, run_dir: str | Path | None = None, runner: JobRunner | None = None) -> Run:
    """Queue the run in `runner` (a new one when None) and train it as soon as it is its turn: in a background
    thread here, in torchrun's processes (--gpus, --nproc), or as a Ray job (a runner served with one);
    returns the live Run at once (`run.wait()` blocks until it ends)."""
    from studio.training import executors
    return executors.start(config, runner or JobRunner(), Path(run_dir) if run_dir else None)


def start_in_thread(config: TrainConfig, runner: JobRunner, run_dir: Path | None = None,
                    resume_from: dict | None = None) -> Run:
    """The in-process executor: the run trains in a background thread of this process."""
    if resume_from is not None:
        return runner.start(asdict(config), lambda run: run_training(config, run, resume_from), run_dir=run_dir,
                            resume_from=resume_from)
    resolved = config.resolved()
    payload = asdict(resolved)
    # what was asked, apart from what the studio then decided: `studio train --config RUN_DIR` repeats it
    payload[ASKED_KEY] = {k: v for k, v in asdict(config).items() if k != "choices"}
    return runner.start(payload, lambda run: run_training(resolved, run),
                        Path(resolved.runs_root) if resolved.runs_root else None, run_dir)


def requeue_saved(runner: JobRunner, root: str | Path | None = None) -> list[Run]:
    """Put back in line the runs whose folders still say "queued" (the studio was restarted while they
    waited), in their first order; returns them. Runs cut off while training are left to history,
    which shows them interrupted (Resume carries them on)."""
    from studio.runs import history
    requeued = []
    saved = []
    known = set(TrainConfig.__dataclass_fields__)
    for folder in history.known_runs(Path(root) if root else None).values():
        if runner.find(folder) is not None:
            continue
        try:
            status, config = RunFolder(folder).read_status(), RunFolder(folder).read_config()
            resolved = TrainConfig(**{k: v for k, v in config.items() if k in known})
        except (OSError, ValueError, TypeError):   # unreadable, or not a training's settings
            continue
        # only runs whose studio is gone: one still running (another server, or a runner of this process)
        # keeps its own line
        process = status.get("process") or {}
        mine = process.get("pid") == os.getpid() and process.get("host") == socket.gethostname()
        if status.get("status") == Status.QUEUED and not mine and not history.kept_by_another_process(process):
            saved.append((status.get("queued_at") or status.get("started") or 0.0, folder, config, resolved))
    from studio.training import launch
    for queued_at, folder, config, resolved in sorted(saved, key=lambda item: item[0]):
        if launch.is_distributed(resolved):   # it goes back to torchrun's processes, as it was queued
            requeued.append(launch.start_distributed(resolved, runner, run_dir=folder, queued_at=queued_at))
            continue
        requeued.append(runner.start(config, lambda run, cfg=resolved: run_training(cfg, run), run_dir=folder,
                                     queued_at=queued_at))
    return requeued


def resume_training(run_dir: str | Path, owner: str | None = None, runner: JobRunner | None = None) -> Run:
    """Carry on a stopped, failed or interrupted run after its last finished epoch, in its own folder,
    in a background thread of `runner` (a new one when None)."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    try:
        saved = folder.read_config()
        status = folder.read_status().get("status")
    except (OSError, ValueError):
        raise ResumeError(f"{run_dir} is not a run folder the studio can read (config.json or status.json is "
                          "missing or damaged).") from None
    if owner is not None and saved.get("owner") != owner:
        raise ResumeError("That run is not one of yours.")
    runner = runner or JobRunner()
    live = runner.find(run_dir)
    if live is not None and live.is_active():
        raise ResumeError("That run is still training.")
    if status == Status.FINISHED:
        raise ResumeError("That run finished: there is nothing to resume. Try or export its model instead.")
    checkpoint = checkpoints.read(run_dir)
    known = {f for f in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    if not Path(config.data).exists():
        raise ResumeError(f"The run's data ({config.data}) is no longer there, so it cannot be resumed.")
    from studio.training import launch
    if launch.is_distributed(config):   # torchrun's processes carry it on, as they trained it
        return launch.start_distributed(config, runner, run_dir=run_dir, resume_from=checkpoint)
    return start_in_thread(config, runner, run_dir, checkpoint)
