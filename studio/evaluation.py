"""Confusion matrix and per-class metrics: what the model gets right and wrong, per class."""
from __future__ import annotations

import torch

from studio.runs.folder import LATEST_PREDICTIONS_FILE, PREDICTIONS_FILE  # noqa: F401 - read here


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


# PREDICTIONS_FILE: the best epoch's (the kept model's) answers; LATEST_PREDICTIONS_FILE: the last
# finished epoch's, for the live view (both named in studio.runs.folder)


# Columns of a run's CSV files that hold numbers; every other column (paths, class names, splits) is text.
NUMERIC_COLUMNS = ("confidence", "true_class_probability")


def read_run_table(path):
    """A run's CSV file (samples.csv, predictions.csv) with class names kept exactly as written.

    pandas would turn a class called `0`, `007` or `2019` into a number, `True` into a boolean and
    `NaN` or `null` into a missing value, and then "0" != 0 breaks every lookup by class. So every
    column is read as text and only the known numeric columns are converted back.
    """
    import pandas as pd
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in NUMERIC_COLUMNS:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def predictions_table(files: list[str], true: torch.Tensor, logits: torch.Tensor, classes: list[str],
                      temperature: float = 1.0):
    """One row per validation photo: its true class, what the model said, and how sure it was
    (calibrated with `temperature` once the finished model has one: see studio.calibration).

    Kept beside the model of the best epoch, so any cell of the confusion matrix can be opened
    to the very photos it counts, and the most confident mistakes can be shown first.
    """
    import pandas as pd
    from studio.calibration import probabilities as calibrated
    probabilities = calibrated(logits, temperature).cpu()
    predicted = probabilities.argmax(1)
    true = true.cpu()
    return pd.DataFrame({
        "path": files,
        "label": [classes[i] for i in true.tolist()],
        "predicted": [classes[i] for i in predicted.tolist()],
        "confidence": probabilities.gather(1, predicted[:, None]).squeeze(1).round(decimals=4).tolist(),
        "true_class_probability": probabilities.gather(1, true[:, None]).squeeze(1).round(decimals=4).tolist(),
    })


def cell_photos(table, label: str, predicted: str, limit: int = 48):
    """The photos counted in one confusion-matrix cell, most confident first."""
    rows = table[(table.label == label) & (table.predicted == predicted)]
    return rows.sort_values("confidence", ascending=False).head(limit)


def confident_mistakes(table, limit: int = 12):
    """Wrongly classified photos, the ones the model was surest about first (often label errors)."""
    wrong = table[table.label != table.predicted]
    return wrong.sort_values("confidence", ascending=False).head(limit)
