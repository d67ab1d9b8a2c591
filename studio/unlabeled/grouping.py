"""Groups of similar photos, chosen without labels, that a person edits into classes.

How the groups are made: the pretrained features are L2-normalised (so distance means a difference of
content, not of brightness or size) and reduced by PCA to at most 64 directions (k-means is steadier
there and much faster), then k-means runs for each candidate number of groups and the number with the
best silhouette score wins (how much nearer photos are to their own group than to the next one). The
person can always change it: the rule finds the coarse structure of a set, and a set of ten kinds of
clothing may honestly look like four kinds to a network (see benchmarks/UNLABELED.md).

"Most typical first": each group's photos are ordered by TypiClust's typicality (Hacohen et al., ICML
2022): the inverse of the mean distance to the photo's 20 nearest neighbours in its group. A typical
photo sits in a dense crowd of its kind; an odd one (a blurred shot, a different object) comes last,
which is where a person looks for photos to move.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from studio.data import workspace
from studio.unlabeled.features import PhotoFeatures, photo_features

MOST_GROUPS = 30          # candidates for the automatic choice: 2 .. this (and no more than photos / 5)
NEIGHBOURS = 20           # TypiClust's k for typicality
DIRECTIONS = 64           # PCA components kept for grouping
MIN_PHOTOS = 6            # fewer photos than this are not worth grouping


class GroupingError(ValueError):
    """The photos cannot be grouped (as asked); the message says why and what to do."""


@dataclass
class Group:
    photos: list[str]                 # most typical first
    name: str | None = None           # a class name once the person gives one

    def to_dict(self) -> dict:
        return {"name": self.name, "photos": list(self.photos)}


@dataclass
class Grouping:
    groups: list[Group]
    features: PhotoFeatures
    chosen_automatically: bool = True
    scores: dict[int, float] = field(default_factory=dict)     # candidate number of groups -> silhouette

    # --- reading ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"groups": [g.to_dict() for g in self.groups], "backbone": self.features.backbone,
                "unreadable": self.features.unreadable, "chosen_automatically": self.chosen_automatically,
                "silhouette": {str(k): round(v, 4) for k, v in self.scores.items()}}

    def labels(self) -> dict[str, int]:
        """photo path -> its group's index."""
        return {path: index for index, group in enumerate(self.groups) for path in group.photos}

    def _vectors(self, photos: list[str]) -> np.ndarray:
        row = {p: i for i, p in enumerate(self.features.paths)}
        return _normalised(self.features.features)[[row[p] for p in photos]]

    def _group(self, index: int) -> Group:
        if not 0 <= index < len(self.groups):
            raise GroupingError(f"There is no group {index + 1}: there are {len(self.groups)} groups.")
        return self.groups[index]

    # --- editing: each returns self, so a page can chain and redraw ------------------------------------
    def name(self, index: int, name: str) -> "Grouping":
        """Make group `index` the class `name` (a class name the workspace accepts; no two groups share one)."""
        others = [g.name for i, g in enumerate(self.groups) if i != index and g.name]
        try:
            self._group(index).name = workspace.clean_name(name, others)
        except workspace.NameProblem as exc:
            raise GroupingError(str(exc)) from exc
        return self

    def merge(self, keep: int, other: int) -> "Grouping":
        """Put group `other`'s photos into group `keep` (re-ordered by typicality); `other` goes away."""
        if keep == other:
            raise GroupingError("Choose two different groups to merge.")
        kept, gone = self._group(keep), self._group(other)
        kept.photos = _most_typical_first(kept.photos + gone.photos, self._vectors(kept.photos + gone.photos))
        kept.name = kept.name or gone.name
        self.groups.remove(gone)
        return self

    def split(self, index: int, parts: int = 2, seed: int = 0) -> "Grouping":
        """Split group `index` into `parts` by k-means on its own photos; the new groups come right after it."""
        group = self._group(index)
        if len(group.photos) < parts * 2:
            raise GroupingError(f"Group {index + 1} has {len(group.photos)} photos: too few to split into {parts}.")
        vectors = self._vectors(group.photos)
        assignment = KMeans(parts, n_init=4, random_state=seed).fit_predict(_reduced(vectors, seed))
        pieces = [[p for p, a in zip(group.photos, assignment) if a == k] for k in range(parts)]
        pieces = sorted((piece for piece in pieces if piece), key=len, reverse=True)
        made = [Group(_most_typical_first(piece, self._vectors(piece))) for piece in pieces]
        made[0].name = group.name
        self.groups[index:index + 1] = made
        return self

    def move(self, photo: str, to: int) -> "Grouping":
        """Move one photo into group `to` (it goes where its typicality puts it); an emptied group goes away."""
        target = self._group(to)
        source = next((g for g in self.groups if photo in g.photos), None)
        if source is None:
            raise GroupingError(f"{Path(photo).name} is not among the sorted photos.")
        if source is target:
            return self
        source.photos.remove(photo)
        target.photos = _most_typical_first(target.photos + [photo], self._vectors(target.photos + [photo]))
        if not source.photos:
            self.groups.remove(source)
        return self

    def carry_names(self, before: "Grouping") -> tuple[list[str], list[str]]:
        """After sorting the same photos again: each name given `before` goes to the new group where most of
        that named group's photos now are, when they are also most of that new group (so a name never lands
        on a group that is mostly something else). Returns (names kept, names dropped)."""
        now = self.labels()
        kept, dropped = [], []
        claims: dict[int, tuple[int, str]] = {}
        for group in (g for g in before.groups if g.name):
            counts = Counter(now[p] for p in group.photos if p in now)
            if not counts:
                dropped.append(group.name)
                continue
            index, shared = counts.most_common(1)[0]
            if shared * 2 > len(self.groups[index].photos) and shared > claims.get(index, (0, ""))[0]:
                if index in claims:
                    dropped.append(claims[index][1])
                claims[index] = (shared, group.name)
            else:
                dropped.append(group.name)
        for index, (_, name) in claims.items():
            self.groups[index].name = name
            kept.append(name)
        return kept, dropped

    # --- the result ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> dict:
        """Copy the photos of every named group into `folder`/<name>/ (a new or empty folder); the
        photos of unnamed groups stay out and are counted; a photo that cannot be copied any more (deleted or
        changed since it was sorted) is listed with the reason. Returns {folder, classes: {name: copied},
        left_out, refused: [{path, reason}]}."""
        named = [g for g in self.groups if g.name]
        if not named:
            raise GroupingError("Name at least one group first: a named group becomes a class of the dataset.")
        target = Path(folder)
        if target.exists() and not target.is_dir():
            raise GroupingError(f"{target} is a file: save into a new folder.")
        if target.exists() and any(target.iterdir()):
            raise GroupingError(f"{target} is not empty: save into a new folder.")
        target.mkdir(parents=True, exist_ok=True)
        copied, refused = {}, []
        for group in named:
            workspace.add_class(target, group.name)
            copied[group.name] = 0
            for photo in group.photos:      # one at a time, so a refusal names its own path
                made = workspace.add_files(target, group.name, [photo])
                copied[group.name] += len(made.added)
                refused += [{"path": photo, "reason": reason} for _, reason in made.refused]
        left_out = sum(len(g.photos) for g in self.groups if not g.name)
        return {"folder": str(target), "classes": copied, "left_out": left_out, "refused": refused}


def sort_photos(photos: Sequence[str | Path] | PhotoFeatures, groups: int | None = None, backbone: str | None = None,
                seed: int = 0, progress=None, should_stop=None) -> Grouping:
    """Group the photos under `photos` (or already computed features); `groups` fixes the number."""
    features = photos if isinstance(photos, PhotoFeatures) else photo_features(
        photos, backbone, progress=progress, should_stop=should_stop)
    count = len(features.paths)
    if count < MIN_PHOTOS:
        found = f"{count} readable photos" + (f" ({len(features.unreadable)} could not be read)"
                                               if features.unreadable else "")
        raise GroupingError(f"Found {found}; sorting needs at least {MIN_PHOTOS}. Add more photos "
                            "(jpg, png, webp, ...) to the folder or zip.")
    if groups is not None and not 1 <= groups <= count:
        raise GroupingError(f"Choose between 1 and {count} groups for {count} photos.")
    vectors = _normalised(features.features)
    reduced = _reduced(vectors, seed)
    scores = {} if groups else _silhouettes(reduced, seed)
    chosen = groups or max(scores, key=scores.get)
    assignment = (np.zeros(count, dtype=int) if chosen == 1
                  else KMeans(chosen, n_init=4, random_state=seed).fit_predict(reduced))
    made = []
    for k in range(chosen):
        members = [p for p, a in zip(features.paths, assignment) if a == k]
        if members:
            rows = np.flatnonzero(assignment == k)
            made.append(Group(_most_typical_first(members, vectors[rows])))
    made.sort(key=lambda g: len(g.photos), reverse=True)
    return Grouping(made, features, chosen_automatically=groups is None, scores=scores)


def candidate_counts(photos: int) -> range:
    return range(2, max(2, min(MOST_GROUPS, photos // 5)) + 1)


def _silhouettes(reduced: np.ndarray, seed: int) -> dict[int, float]:
    sample = min(len(reduced), 2000)
    scores = {}
    for k in candidate_counts(len(reduced)):
        assignment = KMeans(k, n_init=2, random_state=seed).fit_predict(reduced)
        if len(set(assignment)) < 2:
            continue
        scores[k] = float(silhouette_score(reduced, assignment, sample_size=sample, random_state=seed))
    return scores or {1: 0.0}


def _normalised(features: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(features.float(), dim=1).numpy()


def _reduced(vectors: np.ndarray, seed: int) -> np.ndarray:
    directions = min(DIRECTIONS, len(vectors) - 1, vectors.shape[1])
    if directions < 2:
        return vectors
    return PCA(directions, random_state=seed).fit_transform(vectors)


def typicality(vectors: np.ndarray) -> np.ndarray:
    """TypiClust's typicality: 1 / mean distance to the nearest NEIGHBOURS photos (itself left out)."""
    if len(vectors) < 2:
        return np.ones(len(vectors))
    points = torch.from_numpy(vectors)
    k = min(NEIGHBOURS, len(vectors) - 1)
    means = [torch.cdist(points[start:start + 1024], points).topk(k + 1, largest=False).values[:, 1:].mean(1)
             for start in range(0, len(points), 1024)]      # in slices: 10,000 photos need no 400 MB matrix
    return (1.0 / (torch.cat(means) + 1e-8)).numpy()


def _most_typical_first(photos: list[str], vectors: np.ndarray) -> list[str]:
    order = np.argsort(-typicality(vectors), kind="stable")
    return [photos[i] for i in order]
