"""The model card: what a model is, what it was trained on, how well it does and where it should not be used.

Written into every export as README.md (after the YAML block the Hub reads, see hub), from the run's own folder (config,
status, metrics, samples) so it states facts the studio recorded, not what
someone remembers. The data check is run again on exactly the files the model
was trained and validated on, so its findings describe this model's data.

A multi-label model (a yes/no per label) gets its own wording where the single-label one does not apply:
what its scores and thresholds mean, photos per label, mAP and F1 instead of accuracy and a confusion matrix.
"""
from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd

import studio
from studio import backbones, calibration, evaluation, modelfile
from studio.inference import UNSURE_BELOW
from studio.runs import RunFolder, history
from studio.data.samples import MULTI_LABEL, SINGLE_LABEL, label_list
from studio.data.sources import Dataset
from studio.export import parity
from studio.export.formats import FORMATS


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval for an accuracy measured on `total` photos: how far the true rate may be from it."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def data_findings(run_dir: Path, classes: list[str], multilabel: bool = False) -> list[str] | None:
    """The data check's findings on the run's training and validation files (None: files gone); for a
    multi-label run, counted per label (a photo's ';'-joined labels each count), with the label check's words."""
    from studio.data.checks import diagnose
    rows = [(p, label, split) for split in ("train", "val") for p, label in history.run_samples(run_dir, split)]
    rows = [r for r in rows if Path(r[0]).is_file()]
    if not rows:
        return None
    samples = pd.DataFrame(rows, columns=["path", "label", "split"])
    report = diagnose(Dataset(root=Path(rows[0][0]).parent, samples=samples, classes=classes,
                              task=MULTI_LABEL if multilabel else SINGLE_LABEL))
    found = [f"**{f.severity}**, {f.kind.replace('_', ' ')}: {f.message}" for f in report.findings]
    return found + (_label_check(rows, classes) if multilabel else [])


def _label_check(rows: list[tuple[str, str, str]], classes: list[str]) -> list[str]:
    """The multi-label check's words on these photos: labels per photo, labels that always occur together (the
    model cannot tell them apart), labels too rare to learn, photos with no label."""
    from studio.multilabel.labels import LabelSets, check
    sets = LabelSets([{"path": p, "labels": label_list(label), "split": split} for p, label, split in rows],
                     list(classes), "separated", ";")
    words = check(sets)["words"]
    return [f"**info**, labels: {words[0]}"] + [f"**warning**, labels: {w}" for w in words[1:]]


def _status(run_dir: Path) -> dict:
    try:
        status = RunFolder(run_dir).read_status()
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def build(run_dir: Path, meta: dict, fmt: str, parity_report: dict | None, check_data: bool = True,
          details: dict | None = None) -> str:
    """The model card (README.md after its YAML block) for an export of the run in `run_dir`; `details`:
    the run as history.load_run gives it, when the caller has it already."""
    run_dir = Path(run_dir)
    details = details or history.load_run(run_dir.name, root=run_dir.parent)
    classes = meta["classes"]
    multilabel = modelfile.is_multilabel(meta)
    title = " / ".join(classes) if len(classes) <= 6 else f"{len(classes)} {'labels' if multilabel else 'classes'}"
    out = [f"# Model card: {title} {'multi-label ' if multilabel else ''}image classifier",
           f"Exported {datetime.now():%Y-%m-%d %H:%M} by Transfer Studio {studio.__version__} "
           f"(model file written by {meta.get('studio_version', '?')}) from run `{run_dir.name}`, "
           f"as **{FORMATS[fmt].title}**.",
           "## What it does"]
    if multilabel:
        out += _labels_meaning(meta)
    else:
        out.append(f"Given a photo, it gives one probability for each of {len(classes)} classes: "
                   f"{', '.join(f'`{c}`' for c in classes)}. The class with the highest probability is its answer.")
    out += _data_section(run_dir, details, classes, check_data, multilabel)
    out += _model_section(meta, details["summary"])
    out += _recipe_section(details)
    out += _labels_results_section(run_dir, details) if multilabel else _results_section(details, classes)
    out += _export_section(fmt, parity_report)
    out += _limits_section(classes, meta)
    out += _licence_section(meta)
    return "\n\n".join(out) + "\n"


def _licence_section(meta: dict) -> list[str]:
    """A fine-tuned model inherits the terms of the pretrained weights it started from."""
    from studio.export.hub import weights_license
    licence, source = weights_license(meta["backbone"])
    return ["## Licence",
            f"`{licence}`: {source}, which a fine-tuned model inherits. The photos it learned from may carry "
            "terms of their own. Transfer Studio itself is Apache-2.0."]


def _labels_meaning(meta: dict) -> list[str]:
    """What a multi-label model's outputs mean: a score per label, a yes/no at the label's tuned threshold."""
    classes, thresholds = meta["classes"], modelfile.thresholds_of(meta)
    return [f"Given a photo, it answers yes or no for each of {len(classes)} labels: "
            f"{', '.join(f'`{c}`' for c in classes)}. A photo may have several of them, or none. Each label has a "
            "score of its own between 0 and 1 (the sigmoid of that label's output; the scores are not shared out "
            "between the labels, so they need not add up to 1), and the label is given when its score is at or "
            "above the label's threshold. The thresholds were tuned on the validation photos, each the one that "
            "gave its label the best F1; they are stored in the model file, so predict.py, `studio predict` and "
            "every format here decide with them:",
            _table(["label", "threshold"], [[c, f"{t:.3f}"] for c, t in zip(classes, thresholds)])]


def _split_counts(run_dir: Path, split: str, multilabel: bool) -> tuple[Counter, int]:
    """(photos per class, photos) of a split; a multi-label photo counts once for each of its labels."""
    cells = [label for _, label in history.run_samples(run_dir, split)]
    if multilabel:
        return Counter(name for cell in cells for name in label_list(cell)), len(cells)
    return Counter(cells), len(cells)


def _data_section(run_dir: Path, details: dict, classes: list[str], check_data: bool,
                  multilabel: bool = False) -> list[str]:
    """The photos per class (per label), what was left out, and the data check's findings on exactly these files."""
    config, summary = details["config"], details["summary"]
    status_dataset = _status(run_dir).get("dataset") or {}
    out = ["## Data"]
    (train, train_photos), (val, val_photos) = (_split_counts(run_dir, split, multilabel) for split in ("train", "val"))
    if multilabel:
        out.append(f"Dataset: **{summary['data']}**. Photos with each label the model trained and was validated on "
                   "(a photo counts once for each of its labels, so the labels add up to more than the photos):")
        out.append(_table(["label", "training photos with it", "validation photos with it"],
                          [[c, train.get(c, 0), val.get(c, 0)] for c in classes] +
                          [["**photos**", train_photos, val_photos]]))
    else:
        out.append(f"Dataset: **{summary['data']}**. Photos per class the model trained and was validated on:")
        out.append(_table(["class", "training", "validation"],
                          [[c, train.get(c, 0), val.get(c, 0)] for c in classes] +
                          [["**total**", train_photos, val_photos]]))
    left_out = ", ".join(k.replace("_", " ") for k in config.get("exclude") or []) or "nothing by kind"
    by_hand = len(config.get("exclude_files") or {})
    if by_hand:
        left_out += f", plus {by_hand} file(s) chosen by hand"
    if config.get("leave_out_list"):
        left_out += f", plus the photos listed in {Path(config['leave_out_list']).name}"
    # a grouped line (a test split, a __MACOSX folder) stands for every file listed under its members
    skipped = sum(len(entry.get("members") or []) or 1 for entry in status_dataset.get("skipped") or [])
    out.append(f"Left out before training: {left_out}; {skipped} file(s) in the data were not used (not images, "
               "unreadable, refused for safety, or kept aside as a test split).")
    findings = data_findings(run_dir, classes, multilabel) if check_data else None
    if findings is None:
        out.append("The data check was not run again for this card (the photos are no longer where they were, "
                   "or it was skipped).")
    elif findings:
        out.append("What the data check finds on exactly these files:\n\n" + "\n".join(f"- {f}" for f in findings))
    else:
        out.append("The data check finds nothing to report on these files.")
    wrong = _status(run_dir).get("wrong_folder")
    if wrong:
        out.append(f"Labels: {wrong['words']}")
    return out


def _model_section(meta: dict, summary: dict) -> list[str]:
    """The backbone, what was frozen, and the input the model expects."""
    backbone = backbones.lookup(meta["backbone"])
    prep = meta["preprocessing"]
    out = ["## Model"]
    freeze = summary.get("freeze") or "?"
    named = f"{backbone.title} (`{meta['backbone']}`)" if backbone else f"`{meta['backbone']}`"
    own = (meta.get("summary") or {}).get("pretrained_weights")
    facts = [f"Backbone: `{meta['backbone']}` with the maker's own pretrained weights (`{own}`), not ImageNet's."
             if own else f"Backbone: {named}, ImageNet-pretrained"
             + (f", {backbone.params_m:g}M parameters, {backbone.imagenet_top1:g}% ImageNet top-1" if backbone else "")
             + ".", f"Frozen: {freeze}.",
             f"Input: the photo's short side resized to {round(prep['input_size'] / prep['crop_pct'])} px "
             f"(bicubic), the centre {prep['input_size']} x {prep['input_size']} px, RGB scaled to 0-1 and normalised "
             f"with mean {prep['mean']} and std {prep['std']} (predict.py does this for you)."]
    out.append("\n".join(f"- {f}" for f in facts))
    return out


def _recipe_section(details: dict) -> list[str]:
    """The training settings and the studio's reasons."""
    config = details["config"]
    out = ["## Training recipe"]
    recipe = [f"{k.replace('_', ' ')}: {config[k]}" for k in ("epochs", "head_epochs", "lr", "batch_size",
                                                              "optimizer", "schedule", "augment_strength",
                                                              "label_smoothing", "weight_decay", "seed")
              if config.get(k) not in (None, "")]
    out.append("\n".join(f"- {r}" for r in recipe) or "- (not recorded)")
    if details["choices"]:
        out.append("What the studio chose and why:\n\n" + "\n".join(f"- {w}" for w in details["choices"].values()))
    return out


def _results_section(details: dict, classes: list[str]) -> list[str]:
    """Accuracy with its interval, per-class figures and the confusion matrix at the best epoch."""
    summary = details["summary"]
    out = ["## Results on the validation photos (best epoch)"]
    confusion = details["confusion"]
    if confusion:
        total, correct = sum(map(sum, confusion)), sum(confusion[i][i] for i in range(len(confusion)))
        low, high = wilson_interval(correct, total)
        out.append(f"Accuracy **{correct / total:.1%}** ({correct} of {total} photos, "
                   f"epoch {summary.get('best_epoch')}). "
                   f"On so few photos the accuracy on new photos of the same kind is likely between "
                   f"{low:.0%} and {high:.0%} (95% interval). Also {evaluation.balance_words(confusion)}.")
        both = evaluation.two_class_words(confusion, classes)
        if both:
            out.append(f"As a two-class test, {both}.")
        rows = details["per_class"] or []
        ranked = any(r.get("auc") is not None for r in rows)
        out.append(_table(["class", "precision", "recall", "F1", "photos"] + (["ROC AUC", "AP"] if ranked else []),
                          [[r["class"], f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"{r['f1']:.2f}", r["support"]]
                           + ([_two_places(r.get("auc")), _two_places(r.get("ap"))] if ranked else [])
                           for r in rows]))
        if ranked:
            out.append("ROC AUC: the chance that a photo of the class scores higher for it than a photo of another "
                       "class (1.0 perfect, 0.5 a coin). AP (average precision): the area under the class's "
                       "precision-recall curve, as the threshold goes down. Both from the finished model's "
                       "calibrated probabilities on the validation photos, one class against the rest.")
        out.append("Confusion matrix (rows: true class, columns: the model's answer):\n\n" +
                   _table(["true \\ answer", *classes], [[c, *row] for c, row in zip(classes, confusion)]))
    else:
        out.append("No finished epoch was recorded.")
    test = details.get("test")
    if test:
        low, high = wilson_interval(round(test["accuracy"] * test["images"]), test["images"])
        out.append("## Results on the test photos (measured once, at the end)")
        out.append(f"Test accuracy **{test['accuracy']:.1%}** on {test['images']} photos kept apart: never trained on "
                   f"and never used for a choice, so this is the honest figure (95% interval {low:.0%} to "
                   f"{high:.0%}). The validation figure above chose the best epoch and is somewhat optimistic.")
        out.append(_table(["class", "precision", "recall", "F1", "photos"],
                          [[r["class"], f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"{r['f1']:.2f}", r["support"]]
                           for r in test["per_class"]]))
    elif confusion:
        out.append("There was no test split: the validation figure guided the choices (the best epoch, early "
                   "stopping), so it is somewhat optimistic.")
    return out


def _two_places(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


LABEL_COLUMNS_WORDS = ("Precision: of the photos given the label, the share that have it. Recall: of the photos that "
                       "have it, the share given it. F1: the balance of the two. ROC AUC: the chance that a photo with "
                       "the label scores higher for it than a photo without it (1.0 perfect, 0.5 a coin). AP (average "
                       "precision): the area under the label's precision-recall curve as its threshold goes down.")


def _label_rows(rows: list[dict], thresholds: dict | None = None) -> str:
    """The per-label figures as a table (`label` or `class` names the label; thresholds: {label: threshold})."""
    head = ["label"] + (["threshold"] if thresholds else []) + ["precision", "recall", "F1", "photos with it",
                                                               "ROC AUC", "AP"]
    body = []
    for r in rows:
        name = r.get("label", r.get("class"))
        body.append([name] + ([f"{thresholds[name]:.3f}"] if thresholds else []) +
                    [f"{r['precision']:.2f}", f"{r['recall']:.2f}", f"{r['f1']:.2f}", r["support"],
                     _two_places(r.get("auc")), _two_places(r.get("ap"))])
    return _table(head, body)


def _labels_results_section(run_dir: Path, details: dict) -> list[str]:
    """A multi-label model's validation figures (multilabel.json: mAP, micro and macro F1, every label right, per
    label) and its test figures, instead of accuracy and a confusion matrix."""
    from studio.multilabel import decide
    figures = decide.read(run_dir)
    out = ["## Results on the validation photos (best epoch, at the tuned thresholds)"]
    if not figures:
        out.append("No multi-label figures were recorded (the run did not reach its final calibration).")
    else:
        photos = figures.get("photos") or 0
        right = figures["exact_match"]
        low, high = wilson_interval(round(right * photos), photos)
        plain = figures.get("at_half") or {}
        out.append(f"mAP **{figures['map'] or 0:.3f}**: the mean over the labels of each label's average precision "
                   "(it ranks the photos by score, so it needs no threshold). At the tuned thresholds: micro-F1 "
                   f"**{figures['micro_f1']:.3f}** (every yes/no decision counts once), macro-F1 "
                   f"**{figures['macro_f1']:.3f}** (every label counts once, so rare labels weigh as much as common "
                   f"ones), and every label right on **{right:.1%}** of the {photos} validation photos (on new photos "
                   f"of the same kind likely between {low:.0%} and {high:.0%}, 95% interval).")
        if plain:
            out.append(f"With 0.5 as every label's threshold instead: micro-F1 {plain['micro_f1']:.3f}, macro-F1 "
                       f"{plain['macro_f1']:.3f}, every label right on {plain['exact_match']:.1%}.")
        out.append(_label_rows(figures["per_label"], figures.get("thresholds")))
        out.append(LABEL_COLUMNS_WORDS + " All from the finished model's calibrated scores on the validation photos.")
    test = details.get("test")
    if test and test.get("map") is not None:
        low, high = wilson_interval(round(test["accuracy"] * test["images"]), test["images"])
        out.append("## Results on the test photos (measured once, at the end)")
        out.append(f"On {test['images']} photos kept apart (never trained on, never used for a choice or a threshold, "
                   f"so this is the honest figure): mAP **{test['map'] or 0:.3f}**, micro-F1 "
                   f"**{test['micro_f1']:.3f}**, macro-F1 **{test['macro_f1']:.3f}**, every label right on "
                   f"**{test['accuracy']:.1%}** of them (95% interval {low:.0%} to {high:.0%}). The validation "
                   "figures above chose the best epoch and the thresholds, and are somewhat optimistic.")
        out.append(_label_rows(test["per_class"]))
    elif figures:
        out.append("There was no test split: the validation photos chose the best epoch and tuned the thresholds, "
                   "so the figures above are somewhat optimistic.")
    return out


def _export_section(fmt: str, parity_report: dict | None) -> list[str]:
    """What runs this format, where to use it, and the parity figures."""
    out = ["## This export"]
    fmt_info = FORMATS[fmt]
    out.append(f"What runs it: {fmt_info.runs_with}. Use it for: {fmt_info.use_it}.")
    if parity_report:
        checked = parity_report["images"]
        tolerance = parity_report.get("tolerance") or parity.TOLERANCE_WORDS
        out.append(f"Checked before download on {checked} validation photos ({tolerance}):\n\n" +
                   parity.table_markdown(parity_report) + "\n\n" +
                   "\n".join(f"- {row['file']}: {row['verdict']}." for row in parity_report["exports"]))
    return out


def _confidence_line(meta: dict) -> str:
    """What its probabilities mean: calibrated (with the temperature and the error it fixed) or not."""
    found = meta.get("calibration") or {}
    temperature = calibration.temperature_of(meta)
    if not found or temperature == 1.0:
        return ("Its probabilities are the network's own, not calibrated: \"90% sure\" need not be right 9 times "
                "in 10.")
    return (f"Its probabilities are calibrated on {found.get('photos', '?')} validation photos (logits divided by "
            f"{temperature:.2f}; calibration error {found['error_before']:.1%} before, {found['error_after']:.1%} "
            "after), so \"80% sure\" is right about 8 times in 10 on photos like those. Every format here does the "
            "same.")


def _labels_confidence_line(meta: dict) -> str:
    """What a multi-label model's scores mean: calibrated (each label's output divided by the temperature before
    its sigmoid) or the network's own."""
    found = meta.get("calibration") or {}
    temperature = calibration.temperature_of(meta)
    if not found or temperature == 1.0:
        return ("Its scores are the network's own, not calibrated: a label scored 90% need not be there 9 times in "
                "10.")
    return (f"Its scores are calibrated on {found.get('photos', '?')} validation photos (each label's output divided "
            f"by {temperature:.2f} before its sigmoid; calibration error {found['error_before']:.1%} before, "
            f"{found['error_after']:.1%} after), so a label scored 80% is there about 8 times in 10 on photos like "
            "those. Every format here does the same.")


def _limits_lines(classes: list[str], meta: dict) -> tuple[str, ...]:
    """The limits in words: one class per photo, or a yes/no per label."""
    if modelfile.is_multilabel(meta):
        return (f"Made to tell which of {', '.join(classes)} a photo like the ones it was trained on shows: any "
                "number of them, or none.",
                "A photo of something else entirely still gets a score for every label, and may be given some of "
                "them. The studio's own tools (Try it, `studio predict`, `studio shift` with this folder's "
                "model.safetensors and familiarity.safetensors) flag such photos as unfamiliar.",
                _labels_confidence_line(meta),
                "A score close to its label's threshold is a close call either way: have a person look at those "
                "photos.",
                "Photos unlike the training photos (other cameras, lighting, backgrounds, image sizes) may be labelled "
                "worse than the figures above say; check a batch of your new photos with `studio shift` (or *Check "
                "new photos* on the Try step) before relying on it.")
    return (f"Made to sort photos like the ones it was trained on into {', '.join(classes)}.",
            "It always answers with one of these classes, even for a photo of something else entirely. The studio's "
            "own tools (Try it, `studio predict`, `studio shift` with this folder's model.safetensors and "
            "familiarity.safetensors) flag such photos as unfamiliar: \"maybe none of these\".",
            _confidence_line(meta),
            f"Treat answers below {UNSURE_BELOW:.0%} probability as unsure and have a person look at them.",
            "Photos unlike the training photos (other cameras, lighting, backgrounds, image sizes) may be classified "
            "worse than the accuracy above says; check a batch of your new photos with `studio shift` (or *Check new "
            "photos* on the Try step) before relying on it.")


def _limits_section(classes: list[str], meta: dict) -> list[str]:
    """Intended use, limits, and how to run it."""
    out = ["## Intended use and limits"]
    out.append("\n".join(f"- {line}" for line in (
        *_limits_lines(classes, meta),
        "It learned only from the photos listed above: whatever they over- or under-represent, it does too.",
        "Do not use it alone for decisions about people, health or safety.")))

    out.append("## How to use it")
    out.append("```bash\npip install -r requirements.txt\npython predict.py photo.jpg more-photos/ --json\n```")
    return out
