"""What kind of answer the model gives, asked by every stage and the epoch loop: one class per photo, or a yes/no
per label (multi-label). Everything else (the stages, the feature cache, the budget, checkpoints, resuming)
is the same for both, so multi-label is a task here, not a second trainer.

A task says how the samples' `label` cells become targets, the loss, what counts as right during training,
the epoch's validation figures, and the score that picks the best epoch and Auto's plan:
- single-label: softmax cross-entropy (label smoothing, class weights); right = the top class; the score is
  accuracy;
- multi-label: a sigmoid per label with binary cross-entropy, rare labels weighted (`positive_weights`);
  right = every label's yes/no right at 0.5 (exact match, so "accuracy" keeps one honest meaning); the
  score is mAP, which needs no threshold (the per-label thresholds are tuned once, after the last epoch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from studio import evaluation
from studio.data.samples import MULTI_LABEL, SINGLE_LABEL
from studio.multilabel import metrics as ml_metrics
from studio.multilabel.dataset import label_matrix

TRAINING_THRESHOLD = 0.5   # the yes/no cut while training; the tuned per-label thresholds come after


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights (mean 1): each class counts as much as the others in total."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp(min=1).float()
    return counts.sum() / (num_classes * counts)


class SingleLabel:
    name = SINGLE_LABEL
    score_name = "accuracy"

    def targets(self, cells, classes: list[str]) -> torch.Tensor:
        return torch.tensor([classes.index(c) for c in cells], dtype=torch.long)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None,
             smoothing: float) -> torch.Tensor:
        return F.cross_entropy(logits, y, weight=weights, label_smoothing=smoothing)

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == y).sum()

    def score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(what picks the best epoch or plan, the plain validation loss that breaks ties)."""
        return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()

    def loss_weights(self, y: torch.Tensor, classes: list[str], mode: str, from_ratio: float):
        """(weights or None, why in words or None)."""
        counts = torch.bincount(y.cpu(), minlength=len(classes))
        ratio = counts.max().item() / max(1, counts.min().item())
        if not (mode == "on" or (mode == "auto" and ratio >= from_ratio)):
            return None, None
        weights = class_weights(y, len(classes))
        why = (f"the largest class has {ratio:.1f}x the photos of the smallest, so mistakes on small classes "
               "count more in the loss" if mode == "auto" else "asked for")
        return weights, f"class-weighted loss: {why}."

    def epoch(self, logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
        """The validation figures of an epoch: `metrics` (for the history), `score`, `table` (per class),
        `confusion` (None when it does not apply)."""
        val_loss = F.cross_entropy(logits, y).item()
        matrix = evaluation.confusion_matrix(y.cpu(), logits.argmax(1).cpu(), len(classes))
        accuracy = evaluation.accuracy(matrix)
        return {"metrics": {"val_loss": round(val_loss, 5), "val_accuracy": round(accuracy, 5),
                            "val_balanced_accuracy": round(evaluation.balanced_accuracy(matrix), 5),
                            "val_macro_f1": round(evaluation.macro_f1(matrix), 5)},
                "score": accuracy, "loss": val_loss, "accuracy": accuracy, "confusion": matrix,
                "table": evaluation.per_class_metrics(matrix, classes)}


class MultiLabel:
    name = MULTI_LABEL
    score_name = "mAP"

    def targets(self, cells, classes: list[str]) -> torch.Tensor:
        return label_matrix(cells, classes)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None,
             smoothing: float) -> torch.Tensor:
        # label smoothing does not carry over: a yes/no target softened towards 0.5 only blurs rare labels
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), pos_weight=weights)

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        said = torch.sigmoid(logits) >= TRAINING_THRESHOLD
        return (said == y.bool()).all(1).sum()

    def score(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        figures = ml_metrics.evaluate(torch.sigmoid(logits.float()), y, [str(i) for i in range(y.shape[1])])
        return figures["map"] or 0.0, F.binary_cross_entropy_with_logits(logits.float(), y.float()).item()

    def loss_weights(self, y: torch.Tensor, classes: list[str], mode: str, from_ratio: float):
        if mode == "off":
            return None, None
        counts = y.sum(0)
        rarest = int(counts.min().item())
        return (ml_metrics.positive_weights(y.cpu()),
                f"rare labels weighted: each label's photos count as much as the photos without it (up to "
                f"{ml_metrics.MAX_POSITIVE_WEIGHT:g}x; the rarest label has {rarest} training photos).")

    def epoch(self, logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
        probabilities = torch.sigmoid(logits.float()).cpu()
        figures = ml_metrics.evaluate(probabilities, y.cpu(), classes, TRAINING_THRESHOLD)
        val_loss = F.binary_cross_entropy_with_logits(logits.float(), y.float()).item()
        table = [{"class": row["label"], **{k: v for k, v in row.items() if k != "label"}}
                 for row in figures["per_label"]]
        return {"metrics": {"val_loss": round(val_loss, 5), "val_accuracy": figures["exact_match"],
                            "val_map": figures["map"], "val_micro_f1": figures["micro_f1"],
                            "val_macro_f1": figures["macro_f1"]},
                "score": figures["map"] or 0.0, "loss": val_loss, "accuracy": figures["exact_match"],
                "confusion": None, "table": table}


def task_for(name: str):
    return MultiLabel() if name == MULTI_LABEL else SingleLabel()
