"""Confusion matrix and per-class metrics: what the model gets right and wrong, per class."""
from __future__ import annotations

import torch

from studio.runs.folder import LATEST_PREDICTIONS_FILE, PREDICTIONS_FILE, RANKING_FILE  # noqa: F401 - read here


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


def balanced_accuracy(matrix: list[list[int]]) -> float:
    """The mean of the classes' recalls (classes with photos): every class counts the same, however many photos."""
    recalls = [matrix[i][i] / sum(row) for i, row in enumerate(matrix) if sum(row)]
    return sum(recalls) / len(recalls) if recalls else 0.0


def macro_f1(matrix: list[list[int]]) -> float:
    """The mean of the classes' F1 (classes with photos)."""
    rows = [r for r, row in zip(per_class_metrics(matrix, [""] * len(matrix)), matrix) if sum(row)]
    return sum(r["f1"] for r in rows) / len(rows) if rows else 0.0


def imbalance(matrix: list[list[int]]) -> float:
    """Largest class's photos over the smallest's (1.0: balanced)."""
    counts = [sum(row) for row in matrix if sum(row)]
    return max(counts) / min(counts) if counts else 1.0


IMBALANCED_FROM = 1.5   # largest/smallest class from which plain accuracy misleads (and the loss is weighted)


def balance_words(matrix: list[list[int]]) -> str:
    """Balanced accuracy and macro-F1 in words, with why they matter when the classes are imbalanced."""
    words = f"balanced accuracy {balanced_accuracy(matrix):.1%}, macro-F1 {macro_f1(matrix):.2f}"
    ratio = imbalance(matrix)
    if ratio >= IMBALANCED_FROM:
        words += (f" (each class counts the same: the largest class has {ratio:.1f}x the photos of the smallest, "
                  "so plain accuracy mostly measures the big classes)")
    return words


def two_class_words(matrix: list[list[int]], classes: list[str]) -> str | None:
    """Sensitivity and specificity for a two-class problem, the second class taken as the positive one."""
    if len(matrix) != 2 or not sum(matrix[0]) or not sum(matrix[1]):
        return None
    sensitivity = matrix[1][1] / sum(matrix[1])
    specificity = matrix[0][0] / sum(matrix[0])
    return (f"taking **{classes[1]}** as the positive class: sensitivity {sensitivity:.1%} (the {classes[1]} photos "
            f"it found), specificity {specificity:.1%} (the {classes[0]} photos it left alone)")


CURVE_POINTS = 60   # points kept of each class's precision-recall curve (enough to draw it; the file stays small)


def ranking(probabilities: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Per class, one against the rest: ROC AUC (the chance that a photo of the class scores above one that is
    not), average precision, and the precision-recall curve as [recall, precision, threshold] points, from
    the finished model's calibrated probabilities on the validation photos. A class with no validation photo
    (or only those) has None: there is nothing to rank. `macro_auc`: the mean over classes that have one."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
    scores, labels = probabilities.float().cpu().numpy(), labels.cpu().numpy()
    per_class = {}
    for i, name in enumerate(classes):
        positive = labels[:, i] > 0.5 if labels.ndim == 2 else labels == i   # multi-label: the 0/1 column
        if positive.all() or not positive.any():
            per_class[name] = {"auc": None, "ap": None, "curve": []}
            continue
        precision, recall, thresholds = precision_recall_curve(positive, scores[:, i])
        keep = sorted(set(torch.linspace(0, len(thresholds) - 1, min(CURVE_POINTS, len(thresholds))).round()
                          .long().tolist()))
        per_class[name] = {"auc": round(float(roc_auc_score(positive, scores[:, i])), 4),
                           "ap": round(float(average_precision_score(positive, scores[:, i])), 4),
                           "curve": [[round(float(recall[k]), 4), round(float(precision[k]), 4),
                                      round(float(thresholds[k]), 4)] for k in keep]}
    aucs = [c["auc"] for c in per_class.values() if c["auc"] is not None]
    return {"classes": per_class, "macro_auc": round(sum(aucs) / len(aucs), 4) if aucs else None}


def with_ranking(per_class: list[dict] | None, ranked: dict | None) -> list[dict] | None:
    """The per-class rows with each class's ROC AUC and average precision added (when the run has them)."""
    if per_class is None or not ranked:
        return per_class
    classes = ranked.get("classes") or {}
    return [{**row, "auc": (classes.get(row["class"]) or {}).get("auc"),
             "ap": (classes.get(row["class"]) or {}).get("ap")} for row in per_class]


def read_ranking(run_dir) -> dict | None:
    """The run's ranking (see `ranking`), or None for a run from before it was kept."""
    import json
    from pathlib import Path
    try:
        return json.loads((Path(run_dir) / RANKING_FILE).read_text())
    except (OSError, ValueError):
        return None


# PREDICTIONS_FILE: the best epoch's (the kept model's) answers; LATEST_PREDICTIONS_FILE: the last
# finished epoch's, for the live view (both named in studio.runs.folder)


# Columns of a run's CSV files that hold numbers; every other column (paths, class names, splits) is text.
NUMERIC_COLUMNS = ("confidence", "true_class_probability", "label_probability", "suggested_probability")


def read_run_table(path):
    """A run's CSV file (samples.csv, predictions.csv) with class names kept exactly as written.

    pandas would turn a class called `0`, `007` or `2019` into a number, `True` into a boolean and
    `NaN` or `null` into a missing value, and then "0" != 0 breaks every lookup by class. So every
    column is read as text and only the known numeric columns are converted back.
    """
    import pandas as pd
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in table.columns:
        if column in NUMERIC_COLUMNS or column.startswith(SCORE_PREFIX):
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def predictions_table(files: list[str], true: torch.Tensor, logits: torch.Tensor, classes: list[str],
                      temperature: float = 1.0, task: str = "single-label", thresholds=None):
    """One row per validation photo: its true class, what the model said, and how sure it was
    (calibrated with `temperature` once the finished model has one: see studio.calibration).

    Kept beside the model of the best epoch, so any cell of the confusion matrix can be opened
    to the very photos it counts, and the most confident mistakes can be shown first.
    A multi-label model's table is `multilabel_table`'s.
    """
    import pandas as pd
    from studio.calibration import probabilities as calibrated
    if task == "multi-label":
        return multilabel_table(files, true, calibrated(logits, temperature, multilabel=True).cpu(), classes,
                                thresholds)
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


SCORE_PREFIX = "p:"   # a multi-label table's column of one label's probability is "p:" + the label


def multilabel_table(files: list[str], targets: torch.Tensor, probabilities: torch.Tensor, classes: list[str],
                     thresholds=None):
    """One row per photo: its labels, the labels the model gives it (each at or above its threshold, 0.5
    until the thresholds are tuned), whether all of them are right, and every label's probability (the
    columns a click on a label reads its false positives and negatives from)."""
    import pandas as pd
    from studio.data.samples import LABEL_JOIN
    from studio.multilabel.metrics import DEFAULT_THRESHOLD, decisions
    cuts = torch.full((len(classes),), DEFAULT_THRESHOLD) if thresholds is None else torch.as_tensor(thresholds)
    said = decisions(probabilities, cuts).bool()
    truth = targets.cpu().bool()

    def names(row: torch.Tensor) -> str:
        return LABEL_JOIN.join(classes[j] for j in torch.nonzero(row).flatten().tolist())
    table = pd.DataFrame({"path": files, "label": [names(r) for r in truth], "predicted": [names(r) for r in said],
                          "all_right": (said == truth).all(1).tolist()})
    scores = pd.DataFrame(probabilities.numpy().round(4), columns=[SCORE_PREFIX + c for c in classes])
    return pd.concat([table, scores], axis=1)


def multilabel_mistakes(table, classes: list[str], thresholds: dict, label: str, limit: int = 24) -> dict:
    """One label's false positives and false negatives in a `multilabel_table` read back (its `p:` columns
    and `label` cells), at `thresholds` ({label: threshold}), the surest first (`metrics.mistakes`)."""
    from studio.multilabel.dataset import label_matrix
    from studio.multilabel.metrics import mistakes
    scores = torch.tensor(table[[SCORE_PREFIX + c for c in classes]].to_numpy(dtype="float32"))
    cuts = torch.tensor([float(thresholds[c]) for c in classes])
    return mistakes(scores, label_matrix(table.label, classes), cuts, classes.index(label), table.path.tolist(),
                    limit)


def cell_photos(table, label: str, predicted: str, limit: int = 48):
    """The photos counted in one confusion-matrix cell, most confident first."""
    rows = table[(table.label == label) & (table.predicted == predicted)]
    return rows.sort_values("confidence", ascending=False).head(limit)


def confident_mistakes(table, limit: int = 12):
    """Wrongly classified photos, the ones the model was surest about first (often label errors)."""
    wrong = table[table.label != table.predicted]
    return wrong.sort_values("confidence", ascending=False).head(limit)
