"""Multi-label evaluation a person can read, the per-label decision thresholds, and the loss weights.

Each label is its own yes/no question, so the confusion matrix does not apply. What does:
- mAP: the mean over labels of the average precision (the area under a label's precision-recall curve);
  it ranks, so it needs no threshold;
- micro F1 (every yes/no decision counts once) and macro F1 (every label counts once, so rare labels weigh
  as much as common ones), at the thresholds in use;
- per label: precision, recall, F1, support (validation photos that have it) and ROC AUC.

Thresholds: one per label, the one that gives that label the best F1 on the validation photos (a label with
no validation photo keeps DEFAULT_THRESHOLD). They are stored with the model so every runtime decides alike.
"""
from __future__ import annotations

import numpy as np
import torch

DEFAULT_THRESHOLD = 0.5
MAX_POSITIVE_WEIGHT = 30.0   # a label in 1 photo of 1,000 would otherwise weigh 1,000x: unstable


def positive_weights(targets: torch.Tensor) -> torch.Tensor:
    """BCE's pos_weight per label: photos without the label over photos with it (clipped to
    [1, MAX_POSITIVE_WEIGHT]), so a rare label's few photos are not drowned by its many absences."""
    positives = targets.float().sum(0)
    negatives = len(targets) - positives
    return (negatives / positives.clamp(min=1)).clamp(1.0, MAX_POSITIVE_WEIGHT)


def tune_thresholds(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per label, the threshold with the best F1 on these (validation) photos: the midpoint between the
    probability that wins and the next one below, so a photo scoring like the winning one is decided alike."""
    probs, truth = probabilities.float().cpu().numpy(), targets.cpu().numpy().astype(bool)
    thresholds = np.full(probs.shape[1], DEFAULT_THRESHOLD, dtype=np.float32)
    for j in range(probs.shape[1]):
        positives = truth[:, j].sum()
        if positives == 0:
            continue
        order = np.argsort(-probs[:, j], kind="stable")
        ranked, hits = probs[order, j], truth[order, j]
        true_pos = np.cumsum(hits)
        f1 = 2 * true_pos / (np.arange(1, len(ranked) + 1) + positives)
        cut = len(ranked) - 1 - int(np.argmax(f1[::-1]))   # of equally good cuts, the lowest threshold
        below = ranked[cut + 1] if cut + 1 < len(ranked) else 0.0
        thresholds[j] = float((ranked[cut] + below) / 2)
    return torch.from_numpy(thresholds)


def decisions(probabilities: torch.Tensor, thresholds: torch.Tensor | float) -> torch.Tensor:
    """0/1 per photo and label: the probability at or above the label's threshold."""
    return (probabilities >= torch.as_tensor(thresholds, dtype=probabilities.dtype)).to(torch.int8)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate(probabilities: torch.Tensor, targets: torch.Tensor, labels: list[str],
             thresholds: torch.Tensor | float = DEFAULT_THRESHOLD) -> dict:
    """mAP, micro and macro F1 and per-label figures (see the module's docstring), at `thresholds`."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    probs, truth = probabilities.float().cpu().numpy(), targets.cpu().numpy().astype(int)
    said = decisions(probabilities.float().cpu(), thresholds).numpy().astype(int)
    per_label, aps = [], []
    for j, name in enumerate(labels):
        support = int(truth[:, j].sum())
        true_pos = int((said[:, j] & truth[:, j]).sum())
        precision = true_pos / said[:, j].sum() if said[:, j].sum() else 0.0
        recall = true_pos / support if support else 0.0
        ranked = 0 < support < len(truth)
        ap = float(average_precision_score(truth[:, j], probs[:, j])) if ranked else None
        if ap is not None:
            aps.append(ap)
        per_label.append({"label": name, "precision": round(precision, 4), "recall": round(recall, 4),
                          "f1": round(_f1(precision, recall), 4), "support": support,
                          "auc": round(float(roc_auc_score(truth[:, j], probs[:, j])), 4) if ranked else None,
                          "ap": round(ap, 4) if ap is not None else None})
    true_pos = int((said & truth).sum())
    micro_p = true_pos / said.sum() if said.sum() else 0.0
    micro_r = true_pos / truth.sum() if truth.sum() else 0.0
    present = [row["f1"] for row in per_label if row["support"]]
    return {"map": round(float(np.mean(aps)), 4) if aps else None,
            "micro_f1": round(float(_f1(micro_p, micro_r)), 4),
            "macro_f1": round(float(np.mean(present)), 4) if present else 0.0,
            "exact_match": round(float((said == truth).all(1).mean()), 4) if len(truth) else 0.0,
            "per_label": per_label}


def mistakes(probabilities: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor, label: int,
             files: list[str], limit: int = 24) -> dict:
    """One label's false positives (said, not there) and false negatives (there, not said), the most
    confident first: what a click on a label in the per-label table shows."""
    probs, truth = probabilities[:, label].float().cpu(), targets[:, label].bool().cpu()
    said = probs >= float(thresholds[label])
    wrong_yes = [(files[i], float(probs[i])) for i in torch.nonzero(said & ~truth).flatten().tolist()]
    wrong_no = [(files[i], float(probs[i])) for i in torch.nonzero(~said & truth).flatten().tolist()]
    return {"false_positives": sorted(wrong_yes, key=lambda x: -x[1])[:limit],
            "false_negatives": sorted(wrong_no, key=lambda x: x[1])[:limit]}
