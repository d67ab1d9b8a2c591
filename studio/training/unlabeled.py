"""Unlabeled photos beside the labelled ones (`--unlabeled`): the new head also learns from the
unlabeled photos it is surest of.

The recipe (measured in benchmarks/UNLABELED.md), on frozen features so it costs one more feature
pass per unlabeled photo and view, not a fine-tuning epoch:
- the first head epoch learns from the labels alone;
- from then on, at the start of each epoch the head answers every unlabeled photo and the most
  confident share of each predicted class becomes pseudo-labels (class-balanced: no class swallows
  the rest; Zou et al. 2018); the share grows from FIRST_SHARE to LAST_SHARE over the epochs, as the
  head gets better;
- a pseudo-label comes from the plain photo and is learnt on an augmented copy (FixMatch's
  consistency, Sohn et al. 2020); every step takes a batch of labelled photos and a batch of
  pseudo-labelled ones, the latter's loss counting PSEUDO_WEIGHT (so the labels weigh the same however
  many unlabeled photos there are).
The best epoch on the labelled validation photos is kept as always, so pseudo-labels that hurt are
not kept. Photos that are also training, validation or test photos (same file or same bytes) are left
out: learning from a copy of a validation photo would flatter the validation figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.data.imaging import image_files
from studio.data.pixels import cache_side

FIRST_SHARE, LAST_SHARE = 0.2, 0.8   # of each predicted class, from the first epoch with pseudo-labels to the last
PSEUDO_WEIGHT = 0.5                  # the pseudo-labels' part of each step's loss, against the labels' 1
PSEUDO_BATCHES = 2                   # pseudo-labelled photos in a step, in batches of the run's size
SAME_AS_LABELLED = "the same photo is among the labelled photos"


@dataclass
class UnlabeledPhotos:
    files: list[str]                                   # the photos to learn from, in order
    left_out: list[dict] = field(default_factory=list)  # {path, reason}: unreadable, or a labelled photo's copy

    def summary(self) -> dict:
        return {"photos": len(self.files), "left_out": self.left_out}


def find_unlabeled(source: str, labelled_files: list[str]) -> UnlabeledPhotos:
    """The image files under `source` (a folder or a .zip, extracted safely), less the labelled photos."""
    from studio.unlabeled.features import copies_of, unpacked
    files = [str(p) for p in image_files(unpacked([source]))]
    copies = copies_of(files, labelled_files)
    return UnlabeledPhotos([p for p in files if p not in copies],
                           [{"path": p, "reason": SAME_AS_LABELLED} for p in files if p in copies])


def features(ctx, photos: UnlabeledPhotos, progress) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain, augmented) features of the unlabeled photos, decoded a chunk at a time; unreadable
    photos move to `photos.left_out` with the reason."""
    from studio.unlabeled.features import CHUNK, decoded_chunks
    plain, augmented, kept = [], [], []
    total = len(photos.files)
    for start, readable, source in decoded_chunks(photos.files, cache_side(ctx.prep), photos.left_out):
        ctx.check_stop()
        kept += readable
        if source is not None:
            plain.append(ctx.features.extract(source, lambda b: ctx.input(b, False), ctx.check_stop))
            augmented.append(ctx.features.extract(source, lambda b: ctx.input(b, True), ctx.check_stop))
        progress(min(start + CHUNK, total), total)
    photos.files = kept
    if not plain:
        return torch.empty(0), torch.empty(0)
    return torch.cat(plain), torch.cat(augmented)


def share(epoch: int, last_epoch: int) -> float:
    """The confident share of each predicted class used in `epoch` (0 in the first epoch)."""
    if epoch <= 1:
        return 0.0
    if last_epoch <= 2:
        return LAST_SHARE
    return FIRST_SHARE + (LAST_SHARE - FIRST_SHARE) * (epoch - 2) / (last_epoch - 2)


@torch.no_grad()
def pseudo_labels(head: torch.nn.Module, plain: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, labels): the head's answers for the most confident `fraction` of each predicted class."""
    from studio.unlabeled.semisupervised import class_balanced_confident
    was_training = head.training
    head.eval()
    probabilities = head(plain).float().softmax(1)
    head.train(was_training)
    return class_balanced_confident(probabilities, fraction)


def batches(ctx, count: int, steps: int) -> list[torch.Tensor]:
    """`steps` batches of PSEUDO_BATCHES x the run's batch size from `count` pseudo-labelled photos,
    reshuffled each time they run out."""
    size = min(count, ctx.batch_size * PSEUDO_BATCHES)
    made: list[torch.Tensor] = []
    while len(made) < steps:
        made += [b for b in ctx.batches(count, size, shuffle=True) if len(b) == size]
    return made[:steps]


def words(photos: int, left_out: int, fine_tuned_after: bool) -> str:
    """The run's choice, in words."""
    text = (f"{photos:,} unlabeled photos: after its first epoch the new head also learns from the ones it is "
            f"surest of (a share of each class that grows from {FIRST_SHARE:.0%} to {LAST_SHARE:.0%}), beside "
            f"the labelled photos in every step, their loss counting {PSEUDO_WEIGHT:g} of the labels'.")
    if fine_tuned_after:
        text += " The fine-tuning after it learns from the labelled photos alone."
    if left_out:
        text += f" {left_out} were left out (unreadable, or copies of labelled photos; listed in status.json)."
    return text
