"""Which epoch is best, when to stop early, and when to warn about memorising.

One tracker lives through every stage of a run, so the model kept is the best of all epochs
(Auto's head stage included), and a resumed run carries on with the score it had.
"""
from __future__ import annotations

from pathlib import Path

import torch

OVERFIT_GAP = 0.15     # training accuracy this far above validation accuracy is worth a word


class BestTracker:
    """Better = higher validation accuracy, or the same accuracy with a lower loss (small
    validation sets tie often)."""

    def __init__(self, patience: int = 0):
        self.patience = patience or 0
        self.key: tuple | None = None
        self.best_state: dict | None = None
        self.epochs_without_gain = 0

    def start_stage(self, checkpoint: dict | None) -> None:
        """Each stage gets its own patience; a resumed stage its count so far."""
        self.epochs_without_gain = checkpoint["epochs_without_gain"] if checkpoint else 0

    def offer(self, val_accuracy: float, val_loss: float, model: torch.nn.Module) -> bool:
        """True (and a copy of the weights kept) when this epoch is the best so far."""
        key = (round(val_accuracy, 6), -val_loss)
        if self.key is not None and key <= self.key:
            self.epochs_without_gain += 1
            return False
        self.key, self.epochs_without_gain = key, 0
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True

    def should_stop(self, last: bool) -> bool:
        return bool(self.patience) and self.epochs_without_gain >= self.patience and not last

    def state(self) -> dict:
        """What a checkpoint keeps of the tracker."""
        return {"best_key": list(self.key) if self.key else None, "epochs_without_gain": self.epochs_without_gain}

    def take_back(self, checkpoint: dict, model_file: Path) -> None:
        """The best model and its score so far, so a resumed run still keeps the best of all epochs."""
        from safetensors.torch import load_file
        if checkpoint.get("best_key") is not None and model_file.is_file():
            self.best_state = load_file(str(model_file))
            self.key = tuple(checkpoint["best_key"])

    def restore(self, model: torch.nn.Module) -> None:
        """Leave the in-memory model at the best epoch, as the saved model file is."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def overfitting_advice(history: list[dict]) -> str | None:
    """Plain words when training accuracy races ahead of validation while validation loss rises."""
    if len(history) < 2:
        return None
    last = history[-1]
    gap = last["train_accuracy"] - last["val_accuracy"]
    rising = last["val_loss"] > min(h["val_loss"] for h in history[:-1])
    if gap < OVERFIT_GAP or not rising:
        return None
    return (f"The model is starting to memorise your training photos: {last['train_accuracy']:.0%} right on "
            f"them, {last['val_accuracy']:.0%} on photos it has not seen, and the validation loss is rising. "
            "More photos per class, freezing more layers or fewer epochs usually help; the best epoch is "
            "kept either way.")
