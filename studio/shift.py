"""Check new photos against a model: how unlike its training photos they are, photo by photo and as a folder.

What the page's *Check new photos*, `studio shift` and `TrainedModel.shift` share. Each photo is also
classified (one pass gives both), so a person sees which answers to doubt. The measure itself is in
studio.familiarity; this module finds or makes the reference and puts the answer together.

A run trained before familiarity existed has no reference beside its model: it is made here once,
from the photos its samples.csv lists (a sample of the training photos, every validation photo),
and kept in the run folder. An export without one cannot be checked, and says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from studio.export.runtimes import SAFETENSORS
from studio.familiarity import Familiarity, folder_summary, folder_words, reference_sample
from studio.runs.folder import FAMILIARITY_FILE, RunFolder


class ShiftUnavailable(ValueError):
    """This model cannot tell familiar photos from unfamiliar ones; the message says why and what to do."""


def reference_for(predictor, progress: Callable[[str], None] | None = None) -> Familiarity:
    """The model's familiarity reference: the one beside its file, or one made now from its run's photos."""
    found = predictor.familiarity_reference()
    if found is not None:
        return found
    model_file = Path(predictor.path)
    if predictor.format != SAFETENSORS:
        raise ShiftUnavailable(f"{model_file.name} is an exported {predictor.format} file, which does not keep "
                               "what its training photos looked like. Check new photos with the run folder or "
                               "the export's model.safetensors instead.")
    from studio.runs import history
    run_dir = model_file.parent
    train = [path for path, _ in history.run_samples(run_dir, "train")]
    val = [path for path, _ in history.run_samples(run_dir, "val")]
    if not train or not val:
        raise ShiftUnavailable(f"{model_file.name} has no list of its training photos beside it (samples.csv), "
                               "so there is nothing to compare new photos with. Check them with the run folder "
                               "the model was trained in.")
    train = [train[i] for i in reference_sample(len(train), _seed_of(run_dir))]
    if progress:
        progress(f"Reading {len(train)} training and {len(val)} validation photos once, to know what they look like")
    train_features, val_features = predictor.features_of(train), predictor.features_of(val)
    if not len(train_features) or not len(val_features):
        raise ShiftUnavailable("The photos this model was trained on cannot be read any more (moved or deleted), "
                               "so new photos cannot be compared with them.")
    made = Familiarity.build(train_features, val_features)
    try:
        made.save(run_dir / FAMILIARITY_FILE)
    except OSError:   # a read-only folder: use it without keeping it
        pass
    predictor.use_familiarity(made)
    return made


def _seed_of(run_dir: Path) -> int:
    """The run's seed (the reference sample is the one its training would have drawn), else 0."""
    try:
        return int(json.loads(RunFolder(run_dir).config.read_text(encoding="utf-8")).get("seed", 0))
    except (OSError, ValueError, TypeError):
        return 0


def check(model, images: Sequence, progress: Callable[[str], None] | None = None) -> dict:
    """How unfamiliar `images` are to `model` (a Predictor, or a model file / run folder / export path).

    Returns {shift, percentile, unfamiliar (count), photos: [{path, shift, percentile, unfamiliar, answer,
    confidence}], unreadable: [{path, reason}], words}; `shift` is the folder's (its median photo's).
    """
    from studio.inference import Predictor
    predictor = model if isinstance(model, Predictor) else Predictor(model)
    reference_for(predictor, progress)
    if progress:
        progress(f"Comparing {len(images)} photos with the training photos")
    photos, unreadable = [], []
    for result in predictor.predict_each(list(images), top_k=1, familiarity=True):
        if result.error is not None:
            unreadable.append({"path": str(result.image), "reason": result.error})
            continue
        answer, confidence = result.top[0]
        photos.append({"path": str(result.image), **result.familiarity, "answer": answer,
                       "confidence": round(confidence, 4)})
    summary = folder_summary(photos)
    return {"shift": summary["shift"], "percentile": summary["percentile"], "unfamiliar": summary["unfamiliar"],
            "photos": photos, "unreadable": unreadable, "words": folder_words(summary)}
