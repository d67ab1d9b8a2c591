"""Confidence a person can trust: one temperature fitted on the validation photos (Guo et al., 2017).

Why a temperature: fine-tuned networks are usually over-confident (a "97% sure" that is right 85%
of the time); dividing the logits by one number T fitted on held-out photos fixes most of it
without changing any answer (the top class stays the same). T is stored in the model file's
description, so every export and every runtime shows the same calibrated probabilities.

The fit is the maximum of the validation likelihood with a weak prior that keeps T near 1 (a small
or perfectly classified validation set would otherwise push T towards 0 and make the model
over-confident); with fewer than MIN_PHOTOS validation photos T stays 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_PHOTOS = 20          # fewer validation photos than this: too few to fit a temperature
ECE_BINS = 15            # equal-width confidence bins of the calibration error (as in Guo et al.)
LOG_T_PRIOR = 1.0        # std of the prior on log T: T = e (2.7) or 1/e costs as much as one photo's loss
T_RANGE = (0.05, 20.0)   # the temperatures a fit may reach


def temperature_of(meta: dict | None) -> float:
    """The model's temperature from its description (1.0 for a model trained before calibration)."""
    value = ((meta or {}).get("calibration") or {}).get("temperature", 1.0)
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def probabilities(logits: torch.Tensor, temperature: float = 1.0, multilabel: bool = False) -> torch.Tensor:
    """Calibrated probabilities: softmax(logits / T) over the classes, or for a multi-label model each label's
    own sigmoid(logits / T)."""
    scaled = logits.float() / temperature
    return torch.sigmoid(scaled) if multilabel else torch.softmax(scaled, dim=1)


def is_multilabel(labels: torch.Tensor) -> bool:
    """Multi-label targets are 0/1 rows, one column per label; single-label ones are class indices."""
    return labels.dim() == 2


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising the validation negative log-likelihood (plus the prior on log T); for multi-label
    targets, the summed binary likelihood of every label."""
    # clone: tensors made in inference mode cannot take part in the fit's autograd
    multilabel = is_multilabel(labels)
    logits = logits.detach().float().cpu().clone()
    labels = labels.detach().cpu().clone().float() if multilabel else labels.detach().long().cpu().clone()
    if len(labels) < MIN_PHOTOS:
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")
    low, high = math.log(T_RANGE[0]), math.log(T_RANGE[1])

    def closure():
        optimizer.zero_grad()
        t = log_t.clamp(low, high).exp()
        likelihood = (F.binary_cross_entropy_with_logits(logits / t, labels, reduction="sum") if multilabel else
                      F.cross_entropy(logits / t, labels, reduction="sum"))
        loss = likelihood + 0.5 * (log_t / LOG_T_PRIOR).pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    value = float(log_t.detach().clamp(low, high).exp())
    return value if math.isfinite(value) else 1.0


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over confidence bins
    weighted by their photos (0 = "80% sure" is right 80% of the time)."""
    if len(labels) == 0:
        return 0.0
    if is_multilabel(labels):   # every yes/no decision (at 0.5) is one answer, sure by max(p, 1 - p)
        probs = probs.float().flatten()
        said = probs >= 0.5
        return confidence_error(torch.where(said, probs, 1 - probs), said == labels.flatten().to(said.device).bool(),
                                bins)
    confidence, predicted = probs.float().max(1)
    return confidence_error(confidence, predicted == labels.to(predicted.device), bins)


def confidence_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """The same error from each answer's confidence and whether it was right (what a benchmark has)."""
    if len(confidence) == 0:
        return 0.0
    confidence, correct = confidence.float(), correct.float()
    index = (confidence * bins).long().clamp(max=bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.float().sum().item() * abs(confidence[members].mean().item() -
                                                        correct[members].mean().item())
    return total / len(confidence)


def calibrate(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """The temperature and the calibration error before and after it, on the photos given."""
    temperature = fit_temperature(logits, labels)
    multilabel = is_multilabel(labels)
    return {"temperature": round(temperature, 4), "photos": len(labels),
            "error_before": round(calibration_error(probabilities(logits, multilabel=multilabel), labels), 4),
            "error_after": round(calibration_error(probabilities(logits, temperature, multilabel), labels), 4)}


def words(calibration: dict | None) -> str:
    """What the calibration did, in one sentence."""
    if not calibration:
        return "The confidence shown is the model's own (this model was trained before calibration existed)."
    if calibration["photos"] < MIN_PHOTOS:
        return (f"The confidence shown is the model's own: {calibration['photos']} validation photos are too "
                f"few to calibrate it (at least {MIN_PHOTOS} are needed).")
    t = calibration["temperature"]
    how = ("less sure" if t > 1.02 else "more sure" if t < 0.98 else "about as sure")
    return (f"Confidence calibrated on {calibration['photos']} validation photos (temperature {t:.2f}: the "
            f"model is made {how} than it was). Calibration error {calibration['error_before']:.1%} before, "
            f"{calibration['error_after']:.1%} after (0% means \"80% sure\" is right 80% of the time).")
