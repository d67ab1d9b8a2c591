"""A run's `resume.pt`: everything needed to carry on after its last finished epoch.

Written whole or not at all (a temporary file, then a rename), so a crash or a full
disk leaves the previous epoch's checkpoint in place. It holds only tensors, numbers
and lists, so it loads with `torch.load(weights_only=True)`: a file planted in a run
folder can never run code when a run is resumed.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from studio.runs.folder import CHECKPOINT_FILE

FORMAT = 1
STAGES = ("head", "fine_tune")   # the new head on cached features; fine-tuning the backbone


class ResumeError(ValueError):
    """A run cannot be resumed; the message says why and what to do instead."""


def write(run_dir: str | Path, state: dict) -> None:
    target = Path(run_dir) / CHECKPOINT_FILE
    partial = target.with_name(target.name + ".partial")
    try:
        torch.save({"format": FORMAT, **state}, partial)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)   # a full disk: the previous epoch's checkpoint stays whole
        raise


def read(run_dir: str | Path) -> dict:
    """The run's checkpoint, loaded without running any code it might hold."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise ResumeError(f"{Path(run_dir).name} has no finished epoch saved to resume from: train it again.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a crafted pickle, a damaged or foreign file: never unpickled
        raise ResumeError(f"{path} is not a checkpoint the studio wrote (it is damaged or holds code), so it "
                          "was not loaded. Train the run again.") from None
    if (not isinstance(state, dict) or state.get("format") != FORMAT or state.get("stage") not in STAGES
            or not isinstance(state.get("epoch"), int)):
        raise ResumeError(f"{path} is not a checkpoint this version of the studio can resume. Train the run again.")
    return state
