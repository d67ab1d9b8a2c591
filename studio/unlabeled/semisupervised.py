"""A few labels beside many unlabeled photos, on frozen features: self-training a linear head.

Why this recipe: with ten labels a class, a head learns the direction of each class only roughly; the
unlabeled photos show where the classes really lie. Each round the head answers the unlabeled photos,
the most confident share of each predicted class is kept as pseudo-labels (class-balanced, so no class
swallows the rest; Zou et al., ECCV 2018), and the head is trained again on labels and pseudo-labels
together, the pseudo-labels counting for less. When an augmented view of the unlabeled photos is given,
the pseudo-label comes from the plain view and is learnt on the augmented one (FixMatch's consistency,
Sohn et al., NeurIPS 2020), so the head learns what stays the same under augmentation.
It cannot help when the unlabeled photos are of other things, or when the features do not separate the
classes at all; benchmarks/UNLABELED.md says where it gained and where it did not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SelfTraining:
    shares: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)   # per round: the most confident share of each class
    pseudo_weight: float = 0.5                         # a pseudo-label's weight against a real label's
    steps: int = 300                                   # full-batch AdamW steps per fit
    lr: float = 0.01
    weight_decay: float = 1e-3


def fit_linear(features: torch.Tensor, labels: torch.Tensor, classes: int, weights: torch.Tensor | None = None,
               schedule: SelfTraining = SelfTraining(), seed: int = 0) -> torch.nn.Linear:
    """A linear head on standardised features, full batch (milliseconds on thousands of photos)."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    weights = torch.ones(len(labels)) if weights is None else weights
    for _ in range(schedule.steps):
        loss = (F.cross_entropy(head(features), labels, reduction="none") * weights).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return head


def class_balanced_confident(probabilities: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, labels): in each predicted class, its most confident `share` (at least one photo)."""
    confidence, answers = probabilities.max(1)
    chosen = []
    for k in answers.unique():
        members = (answers == k).nonzero().flatten()
        chosen.append(members[confidence[members].argsort(descending=True)[:max(1, round(share * len(members)))]])
    indices = torch.cat(chosen).sort().values
    return indices, answers[indices]


def self_train(labelled: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor, classes: int,
               augmented: torch.Tensor | None = None, schedule: SelfTraining = SelfTraining(),
               seed: int = 0) -> tuple[torch.nn.Module, list[dict]]:
    """(head, rounds): a head trained on the labelled features and, round by round, on confident
    pseudo-labels of the unlabelled ones. The head takes raw features (standardisation is inside)."""
    mean, std = labelled.mean(0), labelled.std(0) + 1e-6
    x, u = (labelled - mean) / std, (unlabelled - mean) / std
    u_view = u if augmented is None else (augmented - mean) / std
    head = fit_linear(x, labels, classes, schedule=schedule, seed=seed)
    rounds = []
    for share in schedule.shares:
        with torch.no_grad():
            probabilities = head(u).softmax(1)
        chosen, pseudo = class_balanced_confident(probabilities, share)
        features = torch.cat([x, u_view[chosen]])
        targets = torch.cat([labels, pseudo])
        weights = torch.cat([torch.ones(len(labels)), torch.full((len(chosen),), schedule.pseudo_weight)])
        head = fit_linear(features, targets, classes, weights, schedule, seed)
        rounds.append({"share": share, "pseudo_labelled": len(chosen)})
    return _Standardised(head, mean, std), rounds


def labelled_only(labelled: torch.Tensor, labels: torch.Tensor, classes: int,
                  schedule: SelfTraining = SelfTraining(), seed: int = 0) -> torch.nn.Module:
    """The same head on the labelled features alone: what self-training must beat."""
    mean, std = labelled.mean(0), labelled.std(0) + 1e-6
    return _Standardised(fit_linear((labelled - mean) / std, labels, classes, schedule=schedule, seed=seed), mean, std)


class _Standardised(torch.nn.Module):
    def __init__(self, head: torch.nn.Linear, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.head, self.mean, self.std = head, mean, std

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.std)
