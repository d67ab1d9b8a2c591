"""The final test: the finished model measured once on the test split, which no choice ever saw.

Why apart and last: validation picks the best epoch, stops training early and decides Auto's depth,
so the validation figure is optimistic. The test photos reach nothing before this point: they are
not decoded into the training cache, not in samples.csv's train/val rows, not in any checkpoint.
"""
from __future__ import annotations

import torch

from studio import calibration, evaluation
from studio.data.pixels import StreamedPixels, cache_side

NO_TEST_WORDS = ("The validation accuracy guided the choices (the best epoch, early stopping and, in Auto, how "
                 "deep to fine-tune), so it is somewhat optimistic. For an honest figure, keep some photos in a "
                 "test/ folder (or split=test in the CSV), or hold out a part of the training photos (Advanced: "
                 "Hold out for a test; --test-fraction 0.1): the studio measures the finished model on them "
                 "once, at the end, and uses them for nothing else.")


def measure(ctx, files: list[str], labels: list[str], temperature: float = 1.0) -> dict | None:
    """Accuracy, confusion, per-class figures and calibration error (with the model's `temperature`) of
    `ctx.model` (the best epoch's, restored) on the test photos, with their per-photo answers written to
    the run folder; None without a test split."""
    if not files:
        return None
    ctx.run.update(phase=f"Measuring the finished model on {len(files)} test photos")
    logits = ctx.predict_pixels(StreamedPixels(files, cache_side(ctx.prep)))
    if ctx.task.name == "multi-label":
        return _measure_multilabel(ctx, files, labels, logits.cpu(), temperature)
    true = torch.tensor([ctx.classes.index(label) for label in labels])
    matrix = evaluation.confusion_matrix(true, logits.argmax(1).cpu(), len(ctx.classes))
    evaluation.predictions_table(files, true, logits, ctx.classes, temperature).to_csv(
        ctx.run.folder.test_predictions, index=False)
    logits = logits.cpu()
    return {"accuracy": evaluation.accuracy(matrix), "images": len(files), "confusion": matrix,
            "per_class": evaluation.per_class_metrics(matrix, ctx.classes),
            "calibration_error": {
                "before": round(calibration.calibration_error(calibration.probabilities(logits), true), 4),
                "after": round(calibration.calibration_error(calibration.probabilities(logits, temperature), true),
                               4)}}


def _measure_multilabel(ctx, files: list[str], labels: list[str], logits: torch.Tensor, temperature: float) -> dict:
    """mAP and F1 at the model's tuned thresholds; "accuracy" is the share of photos with every label right."""
    from studio import modelfile
    from studio.multilabel import metrics
    targets = ctx.task.targets(labels, ctx.classes)
    thresholds = torch.tensor(modelfile.thresholds_of(modelfile.read_metadata(ctx.run.folder.model)))
    probabilities = calibration.probabilities(logits, temperature, multilabel=True)
    figures = metrics.evaluate(probabilities, targets, ctx.classes, thresholds)
    evaluation.predictions_table(files, targets, logits, ctx.classes, temperature, ctx.task.name,
                                 thresholds).to_csv(ctx.run.folder.test_predictions, index=False)
    return {"accuracy": figures["exact_match"], "images": len(files), "confusion": None,
            "map": figures["map"], "micro_f1": figures["micro_f1"], "macro_f1": figures["macro_f1"],
            "per_class": [{"class": r["label"], **{k: v for k, v in r.items() if k != "label"}}
                          for r in figures["per_label"]],
            "calibration_error": {
                "before": round(calibration.calibration_error(calibration.probabilities(logits, multilabel=True),
                                                              targets), 4),
                "after": round(calibration.calibration_error(probabilities, targets), 4)}}


def words(test: dict | None, multilabel: bool = False) -> str:
    """The test result in one sentence, or why the validation figure is all there is."""
    if not test:
        return NO_TEST_WORDS.replace("validation accuracy", "validation mAP") if multilabel else NO_TEST_WORDS
    if test.get("map") is not None:
        return (f"Test mAP {test['map']:.3f}, macro-F1 {test['macro_f1']:.2f}, every label right on "
                f"{test['accuracy']:.1%} of {test['images']} photos kept apart: never trained on and never used "
                "for a choice, so these are the figures to expect on new photos like them.")
    return (f"Test accuracy {test['accuracy']:.1%} on {test['images']} photos kept apart: never trained on and "
            "never used for a choice, so this is the figure to expect on new photos like them.")
