"""After the last epoch: make the finished model's confidence honest and keep what tells unfamiliar photos.

One clean pass over the validation photos (their logits fit the temperature, their features calibrate
familiarity) and one over a sample of the training photos (the familiarity reference), with the best
epoch's model; when that model is the new head on the unchanged backbone, the features the head stage
computed are reused instead (a third of a 2,000-photo head-only run's time on a 2-core CPU).
The temperature goes into the model file's description, so the page, `studio predict` and every
export show the same calibrated probabilities; predictions.csv is rewritten with them.
The test split is not touched here (final_test measures it afterwards, with the temperature).
"""
from __future__ import annotations

import torch

from studio import calibration, evaluation, familiarity, modelfile
from studio.familiarity import Familiarity
from studio.multilabel import decide
from studio.runs.folder import RANKING_FILE, write_json_atomic
from studio.models.features import logits_and_features


def run(ctx) -> dict:
    """Calibrate `ctx.model` (the best epoch's, restored); returns the calibration for status.json."""
    ctx.run.update(phase="Calibrating the model's confidence on the validation photos")
    multilabel = ctx.task.name == modelfile.MULTI_LABEL
    if multilabel and ctx.loss_weights is not None:
        decide.undo_weighting(ctx)
    rows = familiarity.reference_sample(len(ctx.train_px), ctx.cfg.seed)
    kept = ctx.kept_features
    # a multi-label threshold decides yes or no at a line, so it is tuned on the fp32 scores that the model file
    # and every export compute, not on training's bf16 ones (they differ by up to 0.07 in a score)
    fp32 = multilabel and ctx.amp
    if kept is not None and kept.fit(ctx.model, rows):   # a head-only model: its backbone's features are known
        val_features, train_features = kept.val.float().cpu(), kept.train.float().cpu()
        val_logits = (_pass(ctx, ctx.val_px, torch.arange(len(ctx.val_px)), amp=False)[0] if fp32 else
                      _classify(ctx, val_features))
    else:
        val_logits, val_features = _pass(ctx, ctx.val_px, torch.arange(len(ctx.val_px)),
                                         amp=False if fp32 else None)
        _, train_features = _pass(ctx, ctx.train_px, torch.tensor(rows, dtype=torch.long))
    labels = ctx.val_y.cpu()
    result = calibration.calibrate(val_logits, labels)
    Familiarity.build(train_features, val_features).save(ctx.run.folder.familiarity)
    probabilities = calibration.probabilities(val_logits, result["temperature"], multilabel)
    thresholds = decide.tune(ctx, probabilities, labels) if multilabel else None
    modelfile.update_metadata(ctx.run.folder.model, calibration=result,
                              **({"thresholds": thresholds} if multilabel else {}))
    evaluation.predictions_table(ctx.val_files, labels, val_logits, ctx.classes, result["temperature"],
                                 ctx.task.name, thresholds).to_csv(ctx.run.folder.predictions, index=False)
    ranked = evaluation.ranking(probabilities, labels, ctx.classes)
    write_json_atomic(ctx.run.folder.path / RANKING_FILE, ranked)
    ctx.run.update(ranking={"macro_auc": ranked["macro_auc"],
                            "auc": {name: c["auc"] for name, c in ranked["classes"].items()}})
    ctx.run.add_choice("calibration", calibration.words(result))
    return result


@torch.inference_mode()
def _classify(ctx, features: torch.Tensor) -> torch.Tensor:
    classifier = ctx.model.get_classifier().eval()
    weight = next(classifier.parameters())
    return classifier(features.to(weight.device, weight.dtype)).float().cpu()


def _pass(ctx, source, indices: torch.Tensor, amp: bool | None = None):
    return logits_and_features(ctx.model, source, indices, lambda batch: ctx.input(batch, False), ctx.device,
                               ctx.eval_batch_size, ctx.amp if amp is None else amp, ctx.check_stop)
