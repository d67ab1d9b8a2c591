"""An optional TensorBoard event log per run: losses, accuracies and the learning rate, epoch by epoch.

Why optional: many engineers already watch their experiments in TensorBoard (`tensorboard --logdir
~/.transfer_studio/runs`), but the studio's own page and metrics.csv need nothing of it. When the
`tensorboard` package is installed (`pip install -e ".[logs]"`), every run writes its events to
`tensorboard/` in its run folder; without it, nothing is written and nothing is said.
"""
from __future__ import annotations

from pathlib import Path

from studio.runs.folder import EVENTS_FOLDER as FOLDER
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/validation", "train_accuracy": "accuracy/train",
           "val_accuracy": "accuracy/validation", "val_balanced_accuracy": "accuracy/validation balanced",
           "val_macro_f1": "f1/validation macro", "lr": "learning rate"}


def available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class EpochLog:
    """Writes each finished epoch's metrics as TensorBoard scalars (one event file per run folder)."""

    def __init__(self, run_dir: Path):
        self._writer = None
        if available():
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / FOLDER))

    def epoch(self, metrics: dict) -> None:
        if self._writer is None:
            return
        for key, tag in SCALARS.items():
            if metrics.get(key) is not None:
                self._writer.add_scalar(tag, metrics[key], global_step=metrics["epoch"])
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
