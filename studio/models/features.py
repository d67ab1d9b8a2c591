"""Pooled features of a frozen backbone: the pass that feature extraction, Auto's first stage and
every other frozen-backbone consumer make over the photos.

Why one place: the speed of this pass (small batches on a CPU, channels_last, bf16 where the
hardware has it, one traced and frozen oneDNN graph) was tuned once, and a second copy of it
drifts. The traced graph is kept for the next run of the same weights (see `fastpath.traced`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from studio import backbones, fastpath


class PooledFeatures(torch.nn.Module):
    """Input to pooled features (no classifier): what a new head learns from."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return backbones.pooled_features(self.model, x)


class FeatureExtractor:
    """A frozen backbone as one function from a batch of model inputs to pooled features."""

    def __init__(self, model: torch.nn.Module, backbone: str, prep: dict, device: torch.device, amp: bool,
                 batch_size: int | None = None):
        self.model, self.backbone, self.prep = model, backbone, prep
        self.device, self.amp = torch.device(device), amp
        self.batch_size = batch_size or fastpath.eval_batch_size(self.device)
        self._forward = None

    @property
    def forward(self):
        """Traced into one oneDNN graph on a CPU (about 2x the eager pass for ~1.3 s of tracing);
        eager on a GPU, or wherever the model cannot be traced."""
        if self._forward is None:
            eager = PooledFeatures(self.model).eval()
            self._forward = eager
            if self.device.type == "cpu":
                side = self.prep["input_size"]
                key = (self.backbone, side, self.amp, fastpath.weights_fingerprint(self.model))
                example = fastpath.channels_last(torch.zeros(self.batch_size, 3, side, side))
                self._forward = fastpath.traced(key, eager, example, self.amp)
        return self._forward

    @torch.inference_mode()
    def extract(self, source, to_input: Callable[[torch.Tensor], torch.Tensor],
                check_stop: Callable[[], None] | None = None,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Features of every photo of a pixel source, in order. `to_input` turns a uint8 batch into
        model input (clean or augmented); `check_stop()` raises to end the pass early;
        `progress(done, total)` hears of each batch."""
        self.model.eval()
        forward = self.forward
        order = torch.arange(len(source))
        batches = [order[i:i + self.batch_size] for i in range(0, len(source), self.batch_size)]
        out = []
        for i, batch in enumerate(source.batches(batches, self.device), start=1):
            if check_stop is not None:
                check_stop()
            with fastpath.autocast(self.device, self.amp):
                out.append(forward(to_input(batch)).float())
            if progress is not None:
                progress(i, len(batches))
        return torch.cat(out).clone()  # clone: leave inference mode so a head can train on them


def backbone_fingerprint(model: torch.nn.Module) -> tuple:
    """A cheap identity of everything but the classifier (weights and BatchNorm statistics): equal
    fingerprints give equal features."""
    head = {id(p) for p in model.get_classifier().parameters()}
    tensors = [p for p in model.parameters() if id(p) not in head]
    tensors += [b for b in model.buffers() if b.is_floating_point()]
    return tuple(round(float(t.detach().double().sum()), 6) for t in tensors)


@dataclass
class KeptFeatures:
    """Clean-view features a frozen-backbone stage already computed (the validation photos and some training
    photos, by index), with the backbone they came from: the calibration pass after training reuses
    them instead of running the backbone again while the backbone is unchanged (a head-only model), and
    the wrong-folder check judges the training photos from the pretrained backbone's view of them."""
    val: torch.Tensor
    train_rows: list[int]
    train: torch.Tensor
    fingerprint: tuple
    every_train: torch.Tensor | None = None   # every training photo's, in order (the wrong-folder check)

    def fit(self, model: torch.nn.Module, train_rows: list[int]) -> bool:
        return self.train_rows == train_rows and backbone_fingerprint(model) == self.fingerprint


class LogitsAndFeatures(torch.nn.Module):
    """One pass giving both the answer (logits) and the pooled features it came from: what calibration
    and familiarity need, at the price of the plain forward pass."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.classifier = model.get_classifier()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = backbones.pooled_features(self.model, x)
        return self.classifier(features), features


@torch.inference_mode()
def logits_and_features(model: torch.nn.Module, source, indices: torch.Tensor, to_input: Callable,
                        device: torch.device, batch_size: int, amp: bool = False,
                        check_stop: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [n, classes] and features [n, D] of the photos `indices` of a pixel source, clean views."""
    model.eval()
    both = LogitsAndFeatures(model)
    logits, features = [], []
    for batch in source.batches([indices[i:i + batch_size] for i in range(0, len(indices), batch_size)], device):
        if check_stop is not None:
            check_stop()
        with fastpath.autocast(device, amp):
            scores, pooled = both(to_input(batch))
        logits.append(scores.float().cpu())
        features.append(pooled.float().cpu())
    if not logits:
        return torch.empty(0), torch.empty(0)
    return torch.cat(logits).clone(), torch.cat(features).clone()
