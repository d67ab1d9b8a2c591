"""Self-training on a new site's unlabeled photos, keeping the labelled training photos in the loss.

Why this recipe: the model's most confident answers on the new photos are mostly right, so training on
them (as if labelled) teaches the network what the new site looks like, and its answers on the rest
improve. Two known failure modes shape it:
- a few classes swallow the rest (the confident answers are not spread like the classes), so the
  pseudo-labels are picked per predicted class: the most confident share of each class, growing
  round by round (class-balanced self-training, Zou et al., ECCV 2018);
- the network learns its own mistakes back (confirmation bias), so each pseudo-label comes from the
  plain (weak) view of a photo and is learnt on a strongly augmented view of it (FixMatch's
  consistency, Sohn et al., NeurIPS 2020), and the labelled photos stay in every step;
- the answers of a network mid-training jump from step to step, so the pseudo-labels and the model
  kept come from a teacher whose weights are the running average of the student's (mean teacher,
  Tarvainen & Valpola 2017; French et al. 2018 for domain adaptation): worth 4 points on the real
  signs by itself (benchmarks/SHIFT.md).
The labelled photos are shown as in training, never mirrored (studio.adapt.views): a pseudo-label is
unsure enough without turning a left arrow into a right one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from studio import augment, backbones
from studio.adapt import views as site_views


@dataclass(frozen=True)
class Schedule:
    shares: tuple[float, ...] = (0.2, 0.4, 0.6)   # per round: the most confident share of each class
    epochs_per_round: int = 2                      # passes over the chosen photos per round
    lr: float = 3e-4                               # AdamW, the fine-tuning search's usual pick
    weight_decay: float = 0.01
    batch_size: int = 32                           # new photos per step (and as many labelled ones)
    strong_jitter: float = 0.4                     # colour change of the strong view (the weak view: none)
    labelled_only: bool = False                    # a benchmark's control: the same steps without the new photos
    teacher_decay: float = 0.99                    # per step, the teacher keeps this much of its weights
    views: str = "as trained"  # how the labelled photos are shown (studio.adapt.views): site-like views did not
                               # pay in adapt's short retraining (benchmarks/SHIFT.md), only in source training


def choose_confident(probabilities: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, labels): in each predicted class, its most confident `share` of photos (at least one)."""
    confidence, labels = probabilities.max(1)
    chosen = []
    for k in labels.unique():
        members = (labels == k).nonzero().flatten()
        count = max(1, int(round(share * len(members))))
        chosen.append(members[confidence[members].argsort(descending=True)[:count]])
    indices = torch.cat(chosen).sort().values if chosen else torch.empty(0, dtype=torch.long)
    return indices, labels[indices]


@torch.inference_mode()
def logits_of(model: torch.nn.Module, pixels: torch.Tensor, prep: dict, batch: int = 128,
              with_features: bool = False):
    """The plain (evaluation) view's logits for cached squares, and the pooled features if asked."""
    model.eval()
    logits, features = [], []
    for start in range(0, len(pixels), batch):
        x = augment.eval_batch(pixels[start:start + batch], prep).contiguous(memory_format=torch.channels_last)
        pooled = backbones.pooled_features(model, x)
        logits.append(model.get_classifier()(pooled))
        features.append(pooled)
    empty = torch.empty(0)
    out = torch.cat(logits) if logits else empty
    return (out, torch.cat(features) if features else empty) if with_features else out


def teacher_of(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` whose weights follow the student's running average (`follow`)."""
    teacher = copy.deepcopy(model).eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


@torch.no_grad()
def follow(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    for kept, learnt in zip(teacher.parameters(), student.parameters()):
        kept.mul_(decay).add_(learnt.detach(), alpha=1 - decay)


def train_round(model: torch.nn.Module, optimizer: torch.optim.Optimizer, labelled: tuple[torch.Tensor, torch.Tensor],
                new: torch.Tensor, chosen: torch.Tensor, pseudo: torch.Tensor, prep: dict, size: int,
                schedule: Schedule, generator: torch.Generator, on_step: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None, teacher: torch.nn.Module | None = None,
                views: site_views.Views = site_views.AS_TRAINED) -> bool:
    """One round: `epochs_per_round` passes over the chosen new photos (strong views, their pseudo-labels),
    each step beside as many labelled photos (`views`, their labels); the teacher follows each step.
    False if stopped."""
    pixels, labels = labelled
    steps_per_epoch = -(-len(chosen) // schedule.batch_size)
    total, step = steps_per_epoch * schedule.epochs_per_round, 0
    for _ in range(schedule.epochs_per_round):
        order = chosen[torch.randperm(len(chosen), generator=generator)]
        positions = {int(i): p for p, i in enumerate(chosen.tolist())}
        for start in range(0, len(order), schedule.batch_size):
            if should_stop and should_stop():
                return False
            batch = order[start:start + schedule.batch_size]
            targets = pseudo[torch.tensor([positions[int(i)] for i in batch])]
            known = torch.randint(0, len(pixels), (len(batch),), generator=generator)
            model.train()
            backbones.keep_norms_in_eval(model)   # as the run trained: BatchNorm on its pretrained statistics
            loss = F.cross_entropy(model(site_views.show(pixels[known], prep, size, views, generator)), labels[known])
            if not schedule.labelled_only:
                strong = max(schedule.strong_jitter, views.jitter)
                loss = loss + F.cross_entropy(model(site_views.show(new[batch], prep, size, views, generator,
                                                                    jitter=strong)), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if teacher is not None:
                follow(teacher, model, schedule.teacher_decay)
            step += 1
            if on_step:
                on_step(step, total)
    model.eval()
    return True
