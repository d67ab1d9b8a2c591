"""Adapt a trained model to a new site from its unlabeled photos: a new run whose model works better there.

    run = start_adaptation("runs/catalogue-run", ["phone-photos/"], runner=JobRunner())
    run.wait(); run.snapshot()["adaptation"]     # photos used, pseudo-labelled, shift and accuracy before/after

What the page's *Adapt to new photos*, `studio adapt RUN PHOTOS --out DIR` and `studio.adapt_model` share.
The new run folder is a run like any other (model.safetensors, config.json, status.json, samples.csv,
familiarity.safetensors), so Try it, `studio predict`, `studio shift`, the exports and `studio runs`
take it as it is; `adaptation.csv` lists each new photo with the label it was given.

It says no, and writes no model, when adapting would make things worse:
- the labelled validation photos lose more than TOLERANCE of accuracy (the labelled photos stay in
  the loss, so this means the new photos pulled the model somewhere wrong);
- the new photos seem to hold a very different mix of classes, or other things (class_mix): the
  pseudo-labels assume the same classes in similar shares (a known failure of self-training).
The recipe is in studio.adapt.selftrain; the checks and their words in studio.adapt.report.
"""
from __future__ import annotations

import csv
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch

from studio import backbones, calibration, modelfile, paths
from studio.adapt import report
from studio.adapt import views as site_views
from studio.adapt.selftrain import Schedule, choose_confident, logits_of, teacher_of, train_round
from studio.data.imaging import image_files
from studio.data.pixels import cache_side, decode_all
from studio.familiarity import Familiarity, reference_sample
from studio.runs import JobRunner, Run, RunFolder, Status, history
from studio.runs.live import new_run_id

TOLERANCE = 0.02          # the most validation accuracy adapting may cost (never less than one photo's worth)
MIN_NEW_PHOTOS = 20       # fewer new photos than this teach too little to be worth the risk
MAX_NEW_PHOTOS = 3000     # a random sample beyond this (the work grows with the photos)
MAX_LABELLED = 2000       # labelled training photos kept in the loss (a random sample beyond this)
ADAPTATION_FILE = "adaptation.csv"


class AdaptError(ValueError):
    """This run cannot be adapted (as asked); the message says why and what to do."""


def start_adaptation(source: str | Path, photos: Sequence[str | Path], *, runner: JobRunner,
                     out: str | Path | None = None, owner: str | None = None,
                     schedule: Schedule = Schedule(), tolerance: float = TOLERANCE, seed: int = 0,
                     check_with: str | Path | None = None) -> Run:
    """Check what can be checked at once (AdaptError), then adapt in a background thread of `runner`;
    returns the live Run (its snapshot's "adaptation" holds the report once it ends).

    `check_with`: a few labelled photos from the new site (one folder per class). Without labels nothing
    can tell whether the new photos were learnt right, so with them the adapted model must do at least
    as well on them as the original, or it is refused. They are never trained on."""
    source_folder = RunFolder(source)
    if not source_folder.has_model():
        raise AdaptError(f"{source} holds no trained model (model.safetensors). Adapt a finished run.")
    labelled = history.run_samples(source_folder.path, "train")
    validation = history.run_samples(source_folder.path, "val")
    if not labelled or not validation:
        raise AdaptError(f"{source} has no list of its training and validation photos (samples.csv), and "
                         "adapting needs both: the labelled photos stay in the training, and the validation "
                         "photos tell whether the model got worse.")
    site_check = _labelled_folder(check_with, source_folder) if check_with else []
    checked = {path for path, _ in site_check}
    new = [p for p in image_files(photos) if str(p) not in checked]
    if not new:
        raise AdaptError("No photos were found among the new photos (jpg, png, webp, bmp, tiff, gif...).")
    if out is not None and Path(out).resolve() == source_folder.path.resolve():
        raise AdaptError("--out is the run being adapted: give a new folder, so the original run stays as it is.")
    meta = modelfile.read_metadata(source_folder.model)
    if modelfile.is_multilabel(meta):
        raise AdaptError("Adapting to a new site works for models that give one class per photo; this one gives "
                         "several labels per photo. Add labelled photos from the new site and train again instead.")
    config = {"adapted_from": str(source_folder.path), "new_photos": [str(p) for p in photos],
              "backbone": meta["backbone"], "owner": owner, "seed": seed, "tolerance": tolerance,
              "schedule": asdict(schedule), "data": _source_config(source_folder).get("data"),
              "check_with": str(check_with) if check_with else None}
    run_dir = Path(out) if out else paths.runs_dir() / new_run_id(f"{meta['backbone']}-adapted")
    return runner.start(config, lambda run: _adapt(run, source_folder, labelled, validation, new, schedule,
                                                   tolerance, seed, site_check), run_dir=run_dir)


def _labelled_folder(folder: str | Path, source: RunFolder) -> list[tuple[str, str]]:
    """(path, class) of the labelled new-site photos: one folder per class, named as the model's classes."""
    classes = modelfile.read_metadata(source.model)["classes"]
    root = Path(folder)
    if not root.is_dir():
        raise AdaptError(f"{folder} is not a folder: give the labelled new-site photos as one folder per class.")
    pairs = [(str(p), p.parent.name) for p in image_files([root]) if p.parent != root]
    unknown = sorted({label for _, label in pairs} - set(classes))
    if unknown:
        raise AdaptError(f"The labelled new-site photos have classes the model does not know ({', '.join(unknown)}); "
                         f"its classes are {', '.join(classes)}.")
    if not pairs:
        raise AdaptError(f"No labelled photos in {folder}: put them in one folder per class.")
    return pairs


def _source_config(folder: RunFolder) -> dict:
    try:
        return folder.read_config()
    except (OSError, ValueError):
        return {}


def _adapt(run: Run, source: RunFolder, labelled: list, validation: list, new: list[Path], schedule: Schedule,
           tolerance: float, seed: int, site_check: list) -> None:
    """The thread's body: every outcome ends the run with a status and, where there is one, its reason."""
    try:
        outcome = _adapt_or_refuse(run, source, labelled, validation, new, schedule, tolerance, seed, site_check)
    except Exception as exc:   # a failure is reported on the run, never lost in a thread
        run.log.exception("Adaptation failed")
        run.update(adaptation=None)
        run.finish(Status.FAILED, f"Adapting failed: {exc}")
        return
    run.update(adaptation=outcome)
    if outcome.get("stopped"):
        run.finish(Status.STOPPED, "Stopped before the adaptation finished; no model was written.")
    elif outcome["refused"]:
        run.finish(Status.FAILED, outcome["words"])
    else:
        run.finish(Status.FINISHED)


def _adapt_or_refuse(run: Run, source: RunFolder, labelled: list, validation: list, new: list[Path],
                     schedule: Schedule, tolerance: float, seed: int, site_check: list) -> dict:
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    model, meta = modelfile.load(source.model)
    model.to(memory_format=torch.channels_last)
    classes, prep = meta["classes"], meta["preprocessing"]
    temperature = calibration.temperature_of(meta)
    side = cache_side(prep)
    run.update(status=Status.PREPARING, phase="Reading the new photos and the labelled ones", classes=classes)
    new_paths = [str(p) for p in new]
    if len(new_paths) > MAX_NEW_PHOTOS:
        new_paths = sorted(new_paths[i] for i in torch.randperm(len(new_paths), generator=generator)[:MAX_NEW_PHOTOS])
    new_pixels, unreadable = decode_all(new_paths, side, should_stop=run.stop_event.is_set)
    unreadable_paths = {f["path"] for f in unreadable}
    new_paths = [p for p in new_paths if p not in unreadable_paths]
    base = {"source_run": str(source.path), "photos_found": len(new), "unreadable": unreadable,
            "photos_used": len(new_paths), "tolerance": tolerance}
    if len(new_paths) < MIN_NEW_PHOTOS:
        return report.refused(base, f"Only {len(new_paths)} new photos could be read; adapting needs at least "
                                    f"{MIN_NEW_PHOTOS} of them to learn from.")
    labelled = [labelled[i] for i in reference_sample(len(labelled), seed)][:MAX_LABELLED]
    known_pixels, known_labels = _decode_labelled(labelled, classes, side)
    val_pixels, val_labels = _decode_labelled(validation, classes, side)
    if not len(val_pixels) or not len(known_pixels):
        return report.refused(base, "The run's labelled photos cannot be read any more (moved or deleted), and "
                                    "adapting needs them.")

    run.update(status=Status.RUNNING, phase="Measuring the model on the new photos before adapting")
    before_val = _accuracy(logits_of(model, val_pixels, prep), val_labels)
    check_pixels, check_labels = _decode_labelled(site_check, classes, side) if site_check else (None, None)
    site_before = _accuracy(logits_of(model, check_pixels, prep), check_labels) if site_check else None
    new_logits, new_features = logits_of(model, new_pixels, prep, with_features=True)
    shift_before = _shift(source, new_features)
    mix = report.class_mix(calibration.probabilities(new_logits, temperature), known_labels, classes)
    base.update(val_accuracy_before=before_val, shift_before=shift_before, class_mix=mix)
    if mix["different"]:
        return report.refused(base, mix["words"] + " Adapting to them would teach the model wrong answers, so "
                                    "the model was left as it is.")

    trained = _source_status(source)
    backbones.apply_freeze(model, (trained.get("freeze") or {}).get("frozen_groups", 0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=schedule.lr,  # the student's
                                  weight_decay=schedule.weight_decay)
    source_config = _source_config(source)
    size = _train_size(trained, source_config, prep)
    views = site_views.for_source(schedule.views, source_config)
    base.update(views={"views": views.name, "words": views.words})
    student, model = model, teacher_of(model)   # the teacher (the students' running average) is what is kept
    rounds = []
    for number, share in enumerate(schedule.shares, start=1):
        probabilities = calibration.probabilities(new_logits, temperature)
        chosen, pseudo = choose_confident(probabilities, share)
        phase = (f"Round {number} of {len(schedule.shares)}: learning from {len(chosen)} new photos the model "
                 "is surest of")
        run.update(phase=phase, epoch=number, epochs=len(schedule.shares))
        finished = train_round(student, optimizer, (known_pixels, known_labels), new_pixels, chosen, pseudo, prep,
                               size, schedule, generator,
                               on_step=lambda step, total, done=number - 1: run.update(
                                   step=step, steps=total, progress=(done + step / total) / len(schedule.shares)),
                               should_stop=run.stop_event.is_set, teacher=model, views=views)
        if not finished:
            return {**base, "refused": False, "stopped": True, "words": "Stopped."}
        # one pass each, kept for the next round's choice and, after the last round, for the checks and the reference
        new_logits, new_features = logits_of(model, new_pixels, prep, with_features=True)
        val_logits, val_features = logits_of(model, val_pixels, prep, with_features=True)
        val_accuracy = _accuracy(val_logits, val_labels)
        rounds.append({"round": number, "pseudo_labelled": len(chosen), "val_accuracy": val_accuracy})
        run.note(f"Round {number}: {len(chosen)} new photos pseudo-labelled; validation accuracy {val_accuracy:.1%}.")

    run.update(phase="Measuring the adapted model")
    after_val = rounds[-1]["val_accuracy"]
    allowed = max(tolerance, 1.0 / len(val_labels))
    base.update(rounds=rounds, pseudo_labelled=rounds[-1]["pseudo_labelled"], val_accuracy_after=after_val,
                allowed_drop=allowed)
    if after_val < before_val - allowed - 1e-9:
        return report.refused(base, report.worse_words(before_val, after_val, allowed))
    if site_check:
        site_after = _accuracy(logits_of(model, check_pixels, prep), check_labels)
        base.update(site_check={"photos": len(check_labels), "before": site_before, "after": site_after})
        if site_after < site_before:
            return report.refused(base, report.site_worse_words(len(check_labels), site_before, site_after))

    fitted = calibration.calibrate(val_logits, val_labels)
    probabilities = calibration.probabilities(new_logits, fitted["temperature"])
    known_features = logits_of(model, known_pixels, prep, with_features=True)[1]
    reference = Familiarity.build(known_features, val_features)
    shift_after = _folder_shift(reference, new_features)
    base.update(shift_after=shift_after, calibration=fitted, seconds=round(time.perf_counter() - started, 1))
    outcome = report.accepted(base)
    _write_run(run, source, trained, model, meta, fitted, reference, new_paths, probabilities, outcome)
    return outcome


def _decode_labelled(pairs: list, classes: list[str], side: int) -> tuple[torch.Tensor, torch.Tensor]:
    known = [(path, label) for path, label in pairs if label in classes]
    pixels, failures = decode_all([path for path, _ in known], side)
    failed = {f["path"] for f in failures}
    labels = torch.tensor([classes.index(label) for path, label in known if path not in failed], dtype=torch.long)
    return pixels, labels


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((logits.argmax(1) == labels).float().mean()), 4) if len(labels) else 0.0


def _source_status(source: RunFolder) -> dict:
    try:
        return source.read_status()
    except (OSError, ValueError):
        return {}


def _train_size(status: dict, config: dict, prep: dict) -> int:
    """The crop size the run fine-tuned on (Auto's choice for a CPU, in status.json), else the size it was
    asked for, else the model's input size."""
    size = (status.get("engine") or {}).get("train_size") or config.get("train_size")
    return int(size) if isinstance(size, int) or (isinstance(size, str) and size.isdigit()) else prep["input_size"]


def _shift(source: RunFolder, features: torch.Tensor) -> float | None:
    """The new photos' shift (the median photo's) against the source run's familiarity reference."""
    if not source.familiarity.is_file():
        return None
    return _folder_shift(Familiarity.load(source.familiarity), features)


def _folder_shift(reference: Familiarity, features: torch.Tensor) -> float:
    distances = reference.distances(features)
    return round(float(distances.median()) / reference.typical, 3)


def _write_run(run: Run, source: RunFolder, trained: dict, model, meta: dict, fitted: dict,
               reference: Familiarity, new_paths: list[str], probabilities: torch.Tensor, outcome: dict) -> None:
    folder = run.folder
    summary = {**(meta.get("summary") or {}), "val_accuracy": outcome["val_accuracy_after"],
               "adapted_from": str(source.path)}
    modelfile.save(model, folder.model, meta["backbone"], meta["classes"], meta["preprocessing"], summary)
    modelfile.update_metadata(folder.model, calibration=fitted)
    reference.save(folder.familiarity)
    if source.samples.is_file():
        shutil.copyfile(source.samples, folder.samples)
    confidence, answer = probabilities.max(1)
    with open(folder.path / ADAPTATION_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "answer", "confidence"])
        for path, k, p in zip(new_paths, answer.tolist(), confidence.tolist()):
            writer.writerow([path, meta["classes"][k], round(p, 4)])
    run.update(best_val_accuracy=outcome["val_accuracy_after"], model_path=str(folder.model),
               calibration=fitted, freeze=trained.get("freeze"))
