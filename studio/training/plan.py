"""The config's training plan as stages, with the decisions in between in words.

- "all" (feature extraction): the head alone on frozen features.
- a number of frozen groups: fine-tune that deep from the start, or, with head epochs, the
  head alone first.
- Auto: the head alone first; how deep to fine-tune, how long and how fast is then decided
  from how well the head did (`recipe`).

`stages()` yields one stage at a time because a later stage can depend on how an earlier one
went; the trainer runs each with `run_stage`.
"""
from __future__ import annotations

from typing import Iterator

from studio import backbones, optim, recipe
from studio.training.best import BestTracker
from studio.training.config import HEAD_LR
from studio.training.context import TrainContext
from studio.training.finetune import FineTune
from studio.training.head import HeadOnFeatures
from studio.training.loop import Stage


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
    ft_epochs, epochs_words = ((cfg.epochs, f"{cfg.epochs} fine-tuning epochs (your choice).") if cfg.epochs
                               else recipe.fine_tune_epochs(len(ctx.train_y)))
    run.update(epochs=cfg.head_epochs + ft_epochs)
    if checkpoint and checkpoint["stage"] == "fine_tune":  # the head stage and its decisions are behind us
        plan = checkpoint["plan"]
        run.update(freeze=backbones.apply_freeze(ctx.model, plan["frozen"]))
        yield FineTune(plan)
        return
    yield HeadOnFeatures(cfg.head_epochs, HEAD_LR * optim.LR_SCALE[cfg.optimizer], early_stop=False)
    tracker.restore(ctx.model)  # the fine-tuning starts from the best head
    frozen, lr = _fine_tune_choices(ctx, run.snapshot()["best_val_accuracy"], epochs_words)
    run.update(freeze=backbones.apply_freeze(ctx.model, frozen))
    yield FineTune({"frozen": frozen, "lr": lr, "epochs": ft_epochs, "first_epoch": cfg.head_epochs + 1})


def _fine_tune_choices(ctx: TrainContext, head_accuracy: float, epochs_words: str) -> tuple:
    """Auto: depth from how well the head alone did, rate from the dataset's size; manual: the config's."""
    cfg, run = ctx.cfg, ctx.run
    if cfg.freeze != "auto":
        return cfg.freeze, cfg.lr
    scale = optim.LR_SCALE[cfg.optimizer]
    frozen, depth_words = recipe.fine_tune_depth(head_accuracy, len(ctx.classes),
                                                 len(backbones.layer_groups(ctx.model)))
    if cfg.lr:
        lr, lr_words = cfg.lr, f"learning rate {cfg.lr:g} (your choice)"
    else:
        lr, lr_words = recipe.fine_tune_lr(len(ctx.train_y))
        lr *= scale
        if scale != 1:
            lr_words += f" Times {scale:g} for SGD, which takes smaller effective steps than AdamW."
    run.add_choice("depth", depth_words)
    run.add_choice("epochs", epochs_words)
    run.add_choice("lr", lr_words)
    return frozen, lr
