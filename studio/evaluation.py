"""Confusion matrix and per-class metrics: what the model gets right and wrong, per class."""
from __future__ import annotations

import torch


def confusion_matrix(true: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Rows are the true class, columns the predicted class, in class order."""
    index = true.long() * num_classes + predicted.long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).tolist()


def per_class_metrics(matrix: list[list[int]], classes: list[str]) -> list[dict]:
    """Precision, recall, F1 and support per class, from a confusion matrix."""
    rows = []
    for i, name in enumerate(classes):
        true_positive = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": round(precision, 4), "recall": round(recall, 4),
                     "f1": round(f1, 4), "support": support})
    return rows


def accuracy(matrix: list[list[int]]) -> float:
    total = sum(sum(row) for row in matrix)
    return sum(matrix[i][i] for i in range(len(matrix))) / total if total else 0.0
