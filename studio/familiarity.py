"""How familiar photos look to a model: their distance to its training photos, calibrated on validation.

Why this measure: a photo far from every training photo in the model's own feature space is one the
model has no experience with, and its answer deserves less trust (deep nearest neighbours, Sun et al.,
ICML 2022: the distance to the k-th nearest training photo, on L2-normalised features). A distance
means nothing to a person, so it is read against the validation photos (photos the model never trained
on, but of the same kind): a photo farther than 95% of them is called unfamiliar.

Two numbers per photo:
- `shift`: its distance over the median validation photo's distance (about 1 for a photo like the
  validation photos; 2 = twice as far);
- `percentile`: the share of validation photos that are closer than it (0.95 = farther than 95%).
For a folder, the same two numbers for its median photo, so one odd photo does not move them.

The reference (at most REFERENCE_PHOTOS training photos, fp16) and the validation distances are kept
in the run folder as `familiarity.safetensors`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

REFERENCE_PHOTOS = 2000     # training photos kept as the reference (a random sample beyond that)
NEIGHBOUR = 5               # the k of the k-th nearest training photo (fewer when the reference is tiny)
UNFAMILIAR_ABOVE = 0.95     # a photo farther than this share of validation photos is unfamiliar
CHUNK = 1024                # photos compared with the reference at once (bounds the distance matrix)


def reference_sample(count: int, seed: int = 0) -> list[int]:
    """Which of `count` training photos make the reference (all, or REFERENCE_PHOTOS of them at random),
    sorted; the one rule for a reference made after training and one made later for an older run."""
    if count <= REFERENCE_PHOTOS:
        return list(range(count))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[:REFERENCE_PHOTOS].sort().values.tolist()


@dataclass
class Familiarity:
    reference: torch.Tensor        # [N, D] L2-normalised training features (fp16 as kept on disk)
    val_distances: torch.Tensor    # [M] sorted k-th neighbour distances of the validation photos

    def __post_init__(self):
        self._reference = self.reference.float()   # what the distances are computed with, made once

    @classmethod
    def build(cls, train_features: torch.Tensor, val_features: torch.Tensor) -> "Familiarity":
        reference = F.normalize(train_features.float(), dim=1)
        made = cls(reference.half(), torch.empty(0))
        made.val_distances = made.distances(val_features).sort().values
        return made

    @property
    def k(self) -> int:
        return max(1, min(NEIGHBOUR, len(self.reference) // 10))

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """[n] cosine distance of each photo to its k-th nearest reference photo."""
        reference = self._reference
        out = []
        for start in range(0, len(features), CHUNK):
            chunk = F.normalize(features[start:start + CHUNK].float().cpu(), dim=1)
            similarity = chunk @ reference.T
            out.append(1 - similarity.topk(min(self.k, len(reference)), dim=1).values[:, -1])
        return torch.cat(out) if out else torch.empty(0)

    @property
    def typical(self) -> float:
        """The median validation photo's distance: what `shift` is measured in."""
        return max(float(self.val_distances.median()), 1e-6) if len(self.val_distances) else 1.0

    def percentiles(self, distances: torch.Tensor) -> torch.Tensor:
        """Share of validation photos closer than each distance."""
        if not len(self.val_distances):
            return torch.full_like(distances, 0.5)
        closer = torch.searchsorted(self.val_distances.contiguous(), distances.contiguous())
        return closer.float() / len(self.val_distances)

    def assess(self, features: torch.Tensor) -> list[dict]:
        """Per photo: shift, percentile and whether it is unfamiliar."""
        distances = self.distances(features)
        return [{"shift": round(d / self.typical, 3), "percentile": round(p, 3), "unfamiliar": p > UNFAMILIAR_ABOVE}
                for d, p in zip(distances.tolist(), self.percentiles(distances).tolist())]

    def save(self, path: Path) -> Path:
        partial = Path(path).with_name(Path(path).name + ".partial")
        save_file({"reference": self.reference.contiguous(), "val_distances": self.val_distances.contiguous()},
                  str(partial), metadata={"about": json.dumps({"neighbour": NEIGHBOUR,
                                                               "unfamiliar_above": UNFAMILIAR_ABOVE})})
        partial.replace(path)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "Familiarity":
        tensors = load_file(str(path))
        return cls(tensors["reference"], tensors["val_distances"])


def folder_summary(photos: list[dict]) -> dict:
    """The folder's shift and percentile (its median photo's) and how many photos are unfamiliar."""
    if not photos:
        return {"shift": None, "percentile": None, "unfamiliar": 0, "photos": 0}
    middle = len(photos) // 2
    shift = sorted(p["shift"] for p in photos)[middle]
    percentile = sorted(p["percentile"] for p in photos)[middle]
    return {"shift": shift, "percentile": percentile, "unfamiliar": sum(p["unfamiliar"] for p in photos),
            "photos": len(photos)}


def than_validation(share: float) -> str:
    """"farther than <this>": a share of the validation photos, in words."""
    return "any of your validation photos" if share >= 0.995 else f"{share:.0%} of your validation photos"


def folder_words(summary: dict) -> str:
    """The folder's familiarity in plain words, with what to expect."""
    if not summary["photos"]:
        return "No photos could be read."
    share, unfamiliar, n = summary["percentile"], summary["unfamiliar"], summary["photos"]
    odd = (f" {unfamiliar} of {n} photos are unfamiliar (farther than {UNFAMILIAR_ABOVE:.0%} of the validation "
           "photos): their answers may be wrong." if unfamiliar else " None of them looks unfamiliar.")
    if share > UNFAMILIAR_ABOVE:
        return (f"**These photos are unlike your training photos:** the typical one is farther from them than "
                f"{than_validation(share)} (shift {summary['shift']:.2f}; about 1 is normal). Expect "
                f"lower accuracy than on the validation photos.{odd} Adding some of them, labelled, to the "
                "training photos is the surest fix.")
    if share > 0.75:
        return (f"**These photos are somewhat unlike your training photos:** the typical one is farther from them "
                f"than {than_validation(share)} (shift {summary['shift']:.2f}; about 1 is normal). "
                f"Accuracy may be a little lower than on the validation photos.{odd}")
    return (f"**These photos look like your training photos** (shift {summary['shift']:.2f}; about 1 is normal): "
            f"expect accuracy like the validation accuracy.{odd}")


def photo_words(assessment: dict) -> str:
    """One photo's familiarity in words."""
    if assessment["unfamiliar"]:
        return (f"This photo is unlike your training photos (farther from them than "
                f"{than_validation(assessment['percentile'])}), so the answer may be wrong.")
    return "This photo looks like your training photos."
