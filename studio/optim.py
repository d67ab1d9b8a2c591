"""Optimizers and learning-rate schedules a run can be given, by name.

The defaults (AdamW, warm-up then cosine decay) are what the Auto recipe uses;
the others are there for people who want to compare, as fastai's one-cycle and
the tutorial's plain SGD are the usual points of reference. Every schedule is a
multiplier on each parameter group's own rate, so the lower rates of deeper
layers stay lower whatever the schedule.
"""
from __future__ import annotations

import math
import warnings

import torch

from studio.choices import LR_SCALE, OPTIMIZERS, SCHEDULES  # noqa: F401 - named here too

WARMUP_FRACTION = 0.1
ONE_CYCLE_RISE = 0.3
ONE_CYCLE_START, ONE_CYCLE_END = 1 / 25, 1 / 1e4   # fractions of the peak rate (fastai's defaults)


def check(optimizer: str, schedule: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}.")


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """`params`: parameters or param-group dicts (each group keeps its own 'lr')."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def multiplier(name: str, total_steps: int):
    """step -> factor on each group's base rate, for `total_steps` optimizer steps."""
    total = max(1, total_steps)
    if name == "constant":
        return lambda step: 1.0
    if name == "one-cycle":
        rise = max(1, int(total * ONE_CYCLE_RISE))

        def one_cycle(step: int) -> float:
            if step < rise:  # cosine rise from START to 1
                t = step / rise
                return ONE_CYCLE_START + (1 - ONE_CYCLE_START) * 0.5 * (1 - math.cos(math.pi * t))
            t = min(1.0, (step - rise) / max(1, total - rise))
            return ONE_CYCLE_END + (1 - ONE_CYCLE_END) * 0.5 * (1 + math.cos(math.pi * t))
        return one_cycle
    warmup = max(1, int(total * WARMUP_FRACTION))

    def warmup_cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return warmup_cosine


def make_schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier(name, total_steps))



def resumed_schedule(name: str, optimizer: torch.optim.Optimizer, steps_done: int, remaining: int):
    """The same schedule shape stretched over the steps now left, positioned where the run is
    (after a resume, or after a smaller batch changed the steps per epoch)."""
    schedule = make_schedule(name, optimizer, steps_done + remaining)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping a scheduler before the optimizer: on purpose here
        for _ in range(steps_done):
            schedule.step()
    return schedule
