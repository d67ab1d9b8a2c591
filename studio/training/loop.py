"""`run_stage`: the only epoch loop. Every way of training is a `Stage`; this loop does what all of
them need after each epoch: validate, keep the best model, checkpoint, tell the page, stop early.

A stage implements four things:
- `setup(ctx, checkpoint)`: make its optimizer and what it trains on; with a checkpoint of its own
  stage, carry on from it; return the first epoch to run;
- `train_epoch(epoch)`: one epoch, returning (training loss, training accuracy);
- `predict_val()`: logits for the validation photos;
- `state()`: what a checkpoint needs to resume it (plain tensors, numbers, lists).
"""
from __future__ import annotations

import shutil
import time
from typing import Protocol

import torch

from studio import backbones, evaluation, faults, modelfile, own_weights
from studio.runs import checkpoints
from studio.training.best import BestTracker, overfitting_advice
from studio.training.context import TrainContext


class Stage(Protocol):
    name: str          # the checkpoint's stage: "head" or "fine_tune" (see checkpoints.STAGES)
    first_epoch: int   # the run's epoch number this stage starts at
    last_epoch: int
    early_stop: bool   # False: the stage always runs all its epochs

    def setup(self, ctx: TrainContext, checkpoint: dict | None) -> int: ...
    def train_epoch(self, epoch: int) -> tuple[float, float]: ...
    def predict_val(self) -> torch.Tensor: ...
    def state(self) -> dict: ...
    def lap_name(self, epoch: int) -> str: ...
    def out_of_time(self, epoch_seconds: float) -> bool: ...   # a time budget's deadline is near


def run_stage(ctx: TrainContext, stage: Stage, tracker: BestTracker, checkpoint: dict | None = None) -> bool:
    """Train `stage` to its last epoch; False when it stopped early (the run has nothing more to gain)."""
    first = stage.setup(ctx, checkpoint)
    tracker.start_stage(checkpoint)
    for epoch in range(first, stage.last_epoch + 1):
        started = time.perf_counter()
        train_loss, train_accuracy = stage.train_epoch(epoch)
        val_logits = stage.predict_val()
        last = epoch == stage.last_epoch or not stage.early_stop
        go_on = end_epoch(ctx, stage, tracker, epoch, (train_loss, train_accuracy), val_logits, started, last)
        ctx.lap(stage.lap_name(epoch))
        if not go_on:
            return False
        if epoch < stage.last_epoch and ctx.agree(stage.out_of_time(time.perf_counter() - started)):
            best_epoch = ctx.run.snapshot()["best_epoch"]
            ctx.run.update(stopped_early=(f"Stopped after epoch {epoch} of {ctx.run.snapshot()['epochs']}: "
                                          "another epoch would not fit in the time budget. The best model "
                                          f"(epoch {best_epoch}) is kept."))
            return False
    return True


def _head_rate(stage: Stage) -> float | None:
    """The new head's learning rate as the epoch ends (the deeper layers' rates are fractions of it)."""
    optimizer = getattr(stage, "optimizer", None)
    return float(f"{optimizer.param_groups[0]['lr']:.4g}") if optimizer is not None else None


def end_epoch(ctx: TrainContext, stage: Stage, tracker: BestTracker, epoch: int, train: tuple[float, float],
              val_logits: torch.Tensor, started: float, last: bool) -> bool:
    """Keep the model if it is the best so far, save the checkpoint, then announce the epoch;
    False when the stage should stop.

    The checkpoint comes before the epoch reaches metrics.jsonl and the page, so an epoch the
    studio calls done can always be resumed: a crash in between loses an epoch nobody was told of.
    """
    run = ctx.run
    figures = ctx.task.epoch(val_logits, ctx.val_y, ctx.classes)   # the task's own figures (see studio.training.task)
    matrix, val_accuracy = figures["confusion"], figures["accuracy"]
    metrics = {"epoch": epoch, "train_loss": round(train[0], 5), "train_accuracy": round(train[1], 5),
               **figures["metrics"], "lr": _head_rate(stage),
               "epoch_seconds": round(time.perf_counter() - started, 3),
               "elapsed_seconds": round(time.perf_counter() - ctx.started, 3)}
    evaluation.predictions_table(ctx.val_files, ctx.val_y, val_logits, ctx.classes, task=ctx.task.name).to_csv(
        run.folder.latest_predictions, index=False)
    improved = tracker.offer(figures["score"], figures["loss"], ctx.model)
    if improved:
        path = _save_best(ctx, epoch, val_accuracy)
    previous = run.snapshot()
    best = ({"epoch": epoch, "val_accuracy": val_accuracy, "confusion": matrix, "score": figures["score"]}
            if improved else
            {"epoch": previous["best_epoch"], "val_accuracy": previous["best_val_accuracy"],
             "confusion": previous.get("best_confusion"), "score": previous.get("best_score")})
    faults.check("save_checkpoint", epoch=epoch)
    checkpoints.write(run.dir, {"stage": stage.name, "epoch": epoch, **stage.state(),
                                "generator": ctx.generator.get_state(), **tracker.state(),
                                "epoch_record": {**metrics, "confusion_matrix": matrix}, "best": best})
    faults.check("announce_epoch", epoch=epoch)
    run.record_epoch(metrics, matrix, figures["table"])
    if improved:
        run.update(best_val_accuracy=val_accuracy, best_epoch=epoch, best_confusion=matrix, model_path=str(path),
                   best_score={"name": ctx.task.score_name, "value": round(figures["score"], 5)})
    run.update(epoch=epoch, advice=overfitting_advice(run.snapshot()["history"]))
    if tracker.should_stop(last):
        best_epoch = run.snapshot()["best_epoch"]
        run.update(stopped_early=(f"Stopped early after epoch {epoch} of {run.snapshot()['epochs']}: validation "
                                  f"results had not improved for {tracker.patience} epochs. The best model "
                                  f"(epoch {best_epoch}) is kept."))
        return False
    return True


def _save_best(ctx: TrainContext, epoch: int, val_accuracy: float):
    """The best model so far, and its predictions, in the run folder."""
    faults.check("save_model", epoch=epoch)
    shutil.copyfile(ctx.run.folder.latest_predictions, ctx.run.folder.predictions)
    # the file names the timm architecture (own weights included), so it loads wherever timm does
    summary = {"epoch": epoch, "val_accuracy": val_accuracy, "freeze": str(ctx.cfg.freeze), "run_id": ctx.run.id}
    if own_weights.is_own(ctx.cfg.backbone):
        summary["pretrained_weights"] = ctx.cfg.backbone
    return modelfile.save(ctx.model, ctx.run.folder.model, backbones.architecture(ctx.cfg.backbone), ctx.classes,
                          ctx.prep, summary, task=ctx.task.name)
