"""*Label these next*: which unlabeled photos to label first, so that few labels go far.

The order, and why:
1. the most typical photo of each group that has no label yet, biggest group first: with very few
   labels, a model learns most from typical examples that cover every kind of photo (TypiClust,
   Hacohen et al., ICML 2022, beat uncertainty-first sampling in this low-budget regime);
2. then, once every group is covered and a model exists, the photos that model is least sure of (the
   smallest margin between its first and second answers): with more labels, the uncertain photos
   near the boundaries teach more than yet another typical one;
3. without a model, more typical photos: TypiClust again with one cluster per label wanted, so the
   picks stay spread over the whole set.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from sklearn.cluster import KMeans

from studio.unlabeled.features import PhotoFeatures, copies_of
from studio.unlabeled.grouping import Grouping, _normalised, _reduced, typicality


def label_next(source: Grouping | PhotoFeatures, labelled: Iterable[str] = (), count: int = 20,
               probabilities: dict[str, torch.Tensor] | torch.Tensor | None = None, seed: int = 0) -> list[dict]:
    """Up to `count` photos not in `labelled`, best first: [{path, why}]. `probabilities`: the current
    model's answers, a tensor in the order of the features' paths or {path: probabilities}."""
    features = source.features if isinstance(source, Grouping) else source
    groups = source.groups if isinstance(source, Grouping) else None
    done = set(map(str, labelled))
    picks: list[dict] = []
    if not features.paths or count <= 0:
        return picks
    taken: set[str] = set()

    def take(path: str, why: str) -> None:
        if path not in done and path not in taken and len(picks) < count:
            picks.append({"path": path, "why": why})
            taken.add(path)

    vectors = _normalised(features.features)
    row = {p: i for i, p in enumerate(features.paths)}
    clusters = ([g.photos for g in groups] if groups
                else _clusters(features.paths, vectors, _wanted(len(done) + count, len(features.paths)), seed))
    for members in sorted(clusters, key=len, reverse=True):
        if not done.intersection(members):
            first = next((p for p in members if p not in done), None)   # members are most typical first
            if first:
                take(first, "the most typical photo of a group with no label yet")
    margins = _margins(features.paths, probabilities)
    if margins is not None:
        for i in np.argsort(margins, kind="stable"):
            take(features.paths[i], "the model is least sure of it")
    else:
        for members in _clusters(features.paths, vectors, _wanted(len(done) + count, len(features.paths)), seed):
            if not done.intersection(members):
                take(next((p for p in members if p not in done and p not in taken), members[0]),
                     "typical of photos that no label covers yet")
        rest = [p for p in features.paths if p not in done and p not in taken]
        if rest:   # still short (most clusters already labelled): the most typical of what is left
            order = np.argsort(-typicality(vectors[[row[p] for p in rest]]), kind="stable")
            for i in order:
                take(rest[i], "typical of the photos still unlabelled")
    return picks


def _wanted(clusters: int, photos: int) -> int:
    """How many k-means clusters: at least 2 where there are photos enough, never more than the photos."""
    return min(max(2, clusters), photos)


def _clusters(paths: list[str], vectors: np.ndarray, k: int, seed: int) -> list[list[str]]:
    """k-means clusters, each listed most typical first, biggest first."""
    assignment = KMeans(k, n_init=2, random_state=seed).fit_predict(_reduced(vectors, seed))
    out = []
    for c in range(k):
        rows = np.flatnonzero(assignment == c)
        if len(rows):
            order = rows[np.argsort(-typicality(vectors[rows]), kind="stable")]
            out.append([paths[i] for i in order])
    return sorted(out, key=len, reverse=True)


def _margins(paths: list[str], probabilities) -> np.ndarray | None:
    if probabilities is None:
        return None
    if isinstance(probabilities, dict):
        missing = [p for p in paths if p not in probabilities]
        if missing:
            raise ValueError(f"No model answer for {len(missing)} photos (e.g. {missing[0]}).")
        probabilities = torch.stack([torch.as_tensor(probabilities[p]) for p in paths])
    top = torch.as_tensor(probabilities).float().topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).numpy()


def model_answers(model: str | Path, paths: list[str]) -> dict[str, torch.Tensor]:
    """{path: the model's calibrated probabilities, in its class order} for label_next's least-sure step;
    a photo the model cannot read gets none (label_next then raises, naming it)."""
    from studio.inference import Predictor
    predictor = Predictor(model)
    order = {name: i for i, name in enumerate(predictor.classes)}
    answers = {}
    for path, found in zip(paths, predictor.predict_each(paths, top_k=len(predictor.classes))):
        if found.error is None:
            row = torch.zeros(len(order))
            for name, probability in found.top:
                row[order[name]] = probability
            answers[path] = row
    return answers


def already_labelled(paths: list[str], labelled_folder: str | Path) -> list[str]:
    """The photos among `paths` whose exact bytes are also under `labelled_folder` (copied there when
    the person labelled them), so label_next does not suggest them again."""
    from studio.data.imaging import image_files
    copies = copies_of(paths, [str(p) for p in image_files([Path(labelled_folder)])])
    return [p for p in paths if p in copies]
