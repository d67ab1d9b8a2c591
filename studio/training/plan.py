"""The config's training plan as stages, with the decisions in between in words.

- "all" (feature extraction): the head alone on frozen features.
- a number of frozen groups: fine-tune that deep from the start, or, with head epochs, the
  head alone first.
- Auto: the head alone first; then plans for fine-tuning (how deep, how fast) are tried from
  the trained head and the best one trains on, as long as the budget allows (`search`).

`stages()` yields one stage at a time because a later stage can depend on how an earlier one
went; the trainer runs each with `run_stage`.
"""
from __future__ import annotations

import math
import time
from typing import Iterator

from studio import backbones, budgets, optim, recipe
from studio.training import search
from studio.training.best import BestTracker
from studio.training.config import HEAD_LR
from studio.training.context import TrainContext
from studio.training.finetune import FineTune
from studio.training.head import HeadOnFeatures
from studio.training.loop import Stage

BUDGET_PATIENCE_SHARE = 1 / 3   # a time budget's patience: this part of the planned epochs (at least the usual)


def is_staged(cfg) -> bool:
    """The head alone first, then the backbone unfrozen (Auto, or head epochs asked for)."""
    return cfg.freeze == "auto" or cfg.head_epochs > 0


def stages(ctx: TrainContext, tracker: BestTracker, checkpoint: dict | None) -> Iterator[Stage]:
    cfg = ctx.cfg
    if is_staged(cfg):
        yield from _staged(ctx, tracker, checkpoint)
    elif cfg.freeze == "all":
        yield HeadOnFeatures(cfg.epochs, cfg.lr)
    else:
        yield FineTune({"frozen": cfg.freeze, "lr": cfg.lr, "epochs": cfg.epochs, "first_epoch": 1})


def _staged(ctx: TrainContext, tracker: BestTracker, checkpoint: dict | None) -> Iterator[Stage]:
    cfg, run = ctx.cfg, ctx.run
    if checkpoint and checkpoint["stage"] == "fine_tune":  # the head stage and its decisions are behind us
        plan = checkpoint["plan"]
        run.update(epochs=cfg.head_epochs + plan["epochs"],
                   freeze=backbones.apply_freeze(ctx.model, plan["frozen"]))
        yield FineTune(plan)
        return
    if cfg.freeze == "auto":
        run.update(epochs=cfg.head_epochs + (cfg.epochs or recipe.fine_tune_epochs(len(ctx.train_y))[0]))
    else:
        run.update(epochs=cfg.head_epochs + cfg.epochs)
    yield HeadOnFeatures(cfg.head_epochs, HEAD_LR * optim.LR_SCALE[cfg.optimizer], early_stop=False)
    tracker.restore(ctx.model)  # the fine-tuning starts from the best head
    if cfg.freeze != "auto":   # head epochs, then the depth the person chose
        run.update(freeze=backbones.apply_freeze(ctx.model, cfg.freeze))
        yield FineTune({"frozen": cfg.freeze, "lr": cfg.lr, "epochs": cfg.epochs, "first_epoch": cfg.head_epochs + 1})
        return
    stage = _searched_plan(ctx, tracker, run.snapshot()["best_val_accuracy"])
    if stage is not None:
        yield stage


def _searched_plan(ctx: TrainContext, tracker: BestTracker, head_accuracy: float) -> FineTune | None:
    """Auto: try the plans (`search`), record why the winner won, and return its fine-tuning stage (None
    when the budget has no time left for one epoch: the head alone is kept)."""
    cfg, run = ctx.cfg, ctx.run
    finder = search.Search(ctx, search.candidates(ctx, head_accuracy))
    outcome = finder.run()
    seconds = time.perf_counter() - finder.started
    ctx.lap("search")
    if outcome.winner is None or outcome.epochs == 0:
        backbones.apply_freeze(ctx.model, "all")
        ctx.model.load_state_dict(finder.start_weights)
        words = ("the photos and the new head took the whole time budget, so no plan for fine-tuning fitted: "
                 "the new head alone is kept. A longer budget (Balanced or Best) fine-tunes the backbone too.")
        run.add_choice("search", words)
        run.update(epochs=cfg.head_epochs, search={"summary": words, "seconds": round(seconds, 2), "plans":
                                                   [c.record() for c in outcome.tried]})
        return None
    winner = outcome.winner
    for name, words in search.choice_words(outcome, len(finder.val_rows), finder.first_steps).items():
        run.add_choice(name, words)
    run.add_choice("epochs", _epoch_words(cfg, outcome.epochs, len(ctx.train_y), winner.steps))
    if outcome.deadline is not None and "patience" in cfg.choices:   # a time budget, and patience left to Auto
        tracker.patience = max(tracker.patience, math.ceil(outcome.epochs * BUDGET_PATIENCE_SHARE))
        if tracker.patience != cfg.patience:
            run.add_choice("patience", f"early stopping after {tracker.patience} epochs without a better validation "
                           "result: with a time budget the schedule is long, and its last, slow epochs are where it "
                           "settles.")
    scale = optim.LR_SCALE[cfg.optimizer]
    plan = {"frozen": winner.frozen, "lr": winner.lr * scale, "epochs": outcome.epochs,
            "first_epoch": cfg.head_epochs + 1}
    run.update(epochs=cfg.head_epochs + outcome.epochs, freeze=backbones.apply_freeze(ctx.model, winner.frozen),
               search={"summary": search.summary(outcome, seconds), "seconds": round(seconds, 2),
                       "val_photos": len(finder.val_rows), "plans": [c.record() for c in outcome.tried],
                       "flags": (f"--freeze {winner.frozen} --head-epochs {cfg.head_epochs} "
                                 f"--lr {plan['lr']:g} --epochs {outcome.epochs}")})
    return FineTune(plan, deadline=outcome.deadline)


def _epoch_words(cfg, epochs: int, train_images: int, tried_steps: int) -> str:
    if cfg.epochs:
        return f"{epochs} fine-tuning epochs (your choice)" + (
            "." if epochs == cfg.epochs else ": fewer fit in the time budget.")
    if budgets.wall_seconds(cfg.budget) is None:
        recipe_epochs, words = recipe.fine_tune_epochs(train_images)
        if epochs == recipe_epochs:
            return words
        return (f"{epochs} fine-tuning epochs: the recipe's {recipe_epochs} for {train_images:,} training photos, "
                f"less what the winning plan already trained in the search ({tried_steps} steps); early stopping "
                "ends sooner when validation stops improving.")
    return (f"{epochs} fine-tuning epochs: as many as fit in what is left of the time budget "
            "(early stopping ends sooner when validation stops improving).")
