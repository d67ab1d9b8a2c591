"""After a multi-label run's last epoch: each label's decision threshold, tuned on the validation photos, and
the finished model's figures at those thresholds (`multilabel.json` in the run folder, a summary in
status.json), the way the page, the card and `studio train` report a multi-label model."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from studio.multilabel import metrics

FIGURES_FILE = "multilabel.json"


def undo_weighting(ctx) -> None:
    """Take the rare-label weighting back out of the finished model's outputs (in memory and in its file).

    A loss that counts a label's photos w times as much is minimised by scores w times the odds: exactly
    log(w) higher than the unweighted ones. So subtracting log(w) from each label's bias gives scores that
    estimate how likely the label is (what a person is shown), while the weighted training still taught the
    rare labels; the thresholds are tuned afterwards on these scores."""
    classifier = ctx.model.get_classifier()
    with torch.no_grad():
        classifier.bias -= ctx.loss_weights.to(classifier.bias.device, classifier.bias.dtype).log()
    from studio import modelfile
    meta = modelfile.read_metadata(ctx.run.folder.model)
    modelfile.save(ctx.model, ctx.run.folder.model, meta["backbone"], meta["classes"], meta["preprocessing"],
                   meta.get("summary"), task=meta.get("task", modelfile.MULTI_LABEL))
    ctx.run.add_choice("scores", "The scores shown are each label's likelihood: the weighting that helped rare "
                       "labels during training (their photos counted more) is taken back out of them.")


def tune(ctx, probabilities: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """The thresholds (class order), with the figures before and after them written for the run."""
    classes = ctx.classes
    thresholds = metrics.tune_thresholds(probabilities, targets)
    plain = metrics.evaluate(probabilities, targets, classes)
    tuned = metrics.evaluate(probabilities, targets, classes, thresholds)
    cut = [round(float(t), 4) for t in thresholds]
    figures = {**tuned, "thresholds": dict(zip(classes, cut)), "at_half": {k: plain[k] for k in
                                                                          ("micro_f1", "macro_f1", "exact_match")},
               "photos": len(targets)}
    (Path(ctx.run.folder.path) / FIGURES_FILE).write_text(json.dumps(figures))
    ctx.run.update(multilabel={k: tuned[k] for k in ("map", "micro_f1", "macro_f1", "exact_match")})
    ctx.run.add_choice("thresholds", words(figures))
    return cut


def words(figures: dict) -> str:
    return (f"A decision threshold per label, each the one with the best F1 on the {figures['photos']} validation "
            f"photos: macro-F1 {figures['at_half']['macro_f1']:.2f} at 0.5 for every label, {figures['macro_f1']:.2f} "
            f"with them; micro-F1 {figures['at_half']['micro_f1']:.2f} to {figures['micro_f1']:.2f}. mAP "
            f"{figures['map'] or 0:.3f} needs no threshold.")


def read(run_dir) -> dict | None:
    """The run's multi-label figures, or None (a single-label run, or one that did not finish its calibration)."""
    try:
        return json.loads((Path(run_dir) / FIGURES_FILE).read_text())
    except (OSError, ValueError):
        return None
