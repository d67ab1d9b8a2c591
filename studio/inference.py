"""Classify images with any model the studio exported, with the studio's own preprocessing.

Many photos go through the engine's fast pass (see `fastpath`): decoded on threads a
chunk ahead of the model, in the engine's batches, and for the studio's own model file
also channels_last, bf16 where the CPU or GPU has it, and one traced graph when there
are enough photos to pay for tracing. The answers are the plain fp32 ones within
FP32_TOLERANCE (bf16: BF16_TOLERANCE); see `Predictor.predict_each`.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from studio import augment, calibration, fastpath, modelfile
from studio.familiarity import Familiarity
from studio.models.features import LogitsAndFeatures
from studio.data.imaging import ImageDecodeError, decode_square
from studio.data.pixels import cache_side, decode_all
from studio.export import runtimes

# Largest probability difference from the plain fp32 path (one photo at a time, eager, NCHW):
# the fast fp32 path only reorders sums (measured 2e-7); bf16 keeps 8 bits of mantissa (measured on
# the 153 example validation photos: median 0.001, largest 0.076, every top class the same), so
# two classes closer than that can swap.
FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 0.1
TRACE_FROM = 200       # photos in one call from which tracing (about 2 s on 2 cores) pays for itself
CHUNK = 64             # photos decoded ahead of the model on a CPU (on a GPU: two of its batches)


UNSURE_BELOW = 0.6     # a calibrated top probability below this is an "unsure" answer


@dataclass
class Prediction:
    """One image's answer: its top (class, probability) pairs (calibrated probabilities), or why it could
    not be read; with familiarity asked for, how like the training photos it is (see `familiarity`)."""
    image: object                                   # what was given: a path, a file object or a PIL image
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    familiarity: dict | None = None                 # {shift, percentile, unfamiliar}, when known
    labels: list[tuple[str, float]] | None = None   # a multi-label model: every label at or above its threshold
    near: list[tuple[str, float]] | None = None     # ... and the likeliest labels just below theirs (near-misses)

    @property
    def unfamiliar(self) -> bool:
        return bool(self.familiarity and self.familiarity["unfamiliar"])

    @property
    def unsure(self) -> bool:
        """The answer should not be trusted: low calibrated confidence (a multi-label model: no label reached its
        threshold), or a photo unlike the training photos."""
        if self.labels is not None:
            return not self.labels or self.unfamiliar
        return bool(self.top) and (self.top[0][1] < UNSURE_BELOW or self.unfamiliar)


class Predictor:
    """Load a model once (.safetensors, TorchScript, ONNX, int8 ONNX, or an export's folder or zip);
    classify many images. Each format runs with its own runtime (see `runtimes`)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        if not Path(path).exists():
            raise modelfile.ModelFileError(f"{path} does not exist.")
        self.path = runtimes.resolve(path)
        self.model, self.meta, self.format, self.runtime = runtimes.open_model(self.path, device)
        self.device = device if self.format == runtimes.SAFETENSORS else "cpu"
        self.classes: list[str] = self.meta["classes"]
        self.prep: dict = self.meta["preprocessing"]
        torch_module = self.format == runtimes.SAFETENSORS   # TorchScript and ONNX run as exported
        # float32 unless STUDIO_BF16=1: bf16 moves probabilities by ~1e-3, which is outside the parity the
        # exports promise (export.parity), so the studio file and its exports would disagree on screen
        self.amp = torch_module and os.environ.get("STUDIO_BF16") == "1"
        self.channels_last = torch_module
        if torch_module:
            self.model.to(memory_format=torch.channels_last)
        self.batch_size = fastpath.eval_batch_size(torch.device(self.device))
        self._graph = None   # the traced model, made once on the first call with TRACE_FROM photos
        self._both = None    # the traced model that also gives features (familiarity), made the same way
        self.temperature = calibration.temperature_of(self.meta)   # 1.0 for a model without calibration
        self.multilabel = modelfile.is_multilabel(self.meta)       # a sigmoid per label, decided at its threshold
        self.thresholds = modelfile.thresholds_of(self.meta)
        self._familiarity: Familiarity | None | bool = False       # False: not looked for yet

    def tensor(self, images: list) -> torch.Tensor:
        """Images (paths, file objects, PIL images) to the model's input batch."""
        side = cache_side(self.prep)
        batch = torch.stack([torch.from_numpy(decode_square(image, side)).permute(2, 0, 1) for image in images])
        return augment.eval_batch(batch, self.prep)

    def probabilities(self, images: list) -> torch.Tensor:
        """[N, classes] probabilities through the fast pass; an unreadable image raises ImageDecodeError."""
        rows = []
        for result in self._passes(images):
            if isinstance(result, str):
                raise ImageDecodeError(result)
            rows.append(result)
        return torch.stack(rows) if rows else torch.empty(0, len(self.classes))

    def predict(self, images: list, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, its top-k (class, probability) pairs, most likely first."""
        return [self._top(row, top_k) for row in self.probabilities(images)]

    def predict_each(self, images: Sequence, top_k: int = 5, familiarity: bool = False) -> Iterator[Prediction]:
        """One Prediction per image, in the order given, as soon as its chunk is done; an unreadable
        image gets its reason in `error` and the others are still classified. With `familiarity`
        (and a reference beside the model file: see `familiarity_reference`), each also says how like
        the training photos it is.

        Same top class as the plain path (fp32, eager, one photo at a time) and probabilities
        within FP32_TOLERANCE (BF16_TOLERANCE when `self.amp`: bf16 rounds each layer's inputs,
        so two classes closer than that can swap).
        """
        reference = self.familiarity_reference() if familiarity else None
        for image, result in zip(images, self._passes(images, reference is not None)):
            if isinstance(result, str):
                yield Prediction(image, error=result)
            elif reference is not None:
                probabilities, features = result
                assessed = reference.assess(features[None])[0]
                yield Prediction(image, self._top(probabilities, top_k), familiarity=assessed,
                                 **self._decided(probabilities))
            else:
                yield Prediction(image, self._top(result, top_k), **self._decided(result))

    NEAR_MISSES = 3   # labels below their threshold shown beside a multi-label answer

    def decide(self, probabilities: torch.Tensor) -> list[list[str]]:
        """A multi-label model's labels for each row of probabilities: those at or above their thresholds."""
        said = probabilities >= torch.tensor(self.thresholds, dtype=probabilities.dtype)
        return [[self.classes[j] for j in torch.nonzero(row).flatten().tolist()] for row in said]

    def _decided(self, row: torch.Tensor) -> dict:
        """Prediction's `labels` and `near` for a multi-label model (nothing for a single-label one)."""
        if not self.multilabel:
            return {}
        order = row.argsort(descending=True).tolist()
        above = [(self.classes[j], float(row[j])) for j in order if row[j] >= self.thresholds[j]]
        below = [(self.classes[j], float(row[j])) for j in order if row[j] < self.thresholds[j]]
        return {"labels": above, "near": below[:self.NEAR_MISSES]}

    def features_of(self, images: Sequence) -> torch.Tensor:
        """Pooled features [n, D] of the images that can be read (the others left out), in order: what
        the model's head sees, for building a familiarity reference (studio.shift)."""
        rows = [result[1] for result in self._passes(images, True) if not isinstance(result, str)]
        return torch.stack(rows) if rows else torch.empty(0)

    def familiarity_reference(self) -> Familiarity | None:
        """The training photos' reference kept beside the studio model file (a run folder, or an export
        that carries it), or None: exports without it and other formats cannot tell familiarity."""
        if self._familiarity is False:
            from studio.runs.folder import FAMILIARITY_FILE
            beside = Path(self.path).with_name(FAMILIARITY_FILE)
            usable = self.format == runtimes.SAFETENSORS and beside.is_file()
            self._familiarity = Familiarity.load(beside) if usable else None
        return self._familiarity

    def use_familiarity(self, reference: Familiarity) -> None:
        """Tell familiarity with this reference from now on (one just made for an older run)."""
        self._familiarity = reference

    # ------------------------------------------------------------------ the fast pass
    def _top(self, row: torch.Tensor, top_k: int) -> list[tuple[str, float]]:
        values, indices = row.topk(max(1, min(top_k, len(self.classes))))
        return [(self.classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

    def _passes(self, images: Sequence, with_features: bool = False) -> Iterator[torch.Tensor | tuple | str]:
        """Per image in order: its probabilities (with `with_features`, (probabilities, features)), or the
        reason it could not be decoded.

        The next chunk decodes on the studio's decoder threads (`pixels.decode_all`) while the
        model runs on this one, so decoding and the forward pass overlap.
        """
        images = list(images)
        side, chunk = cache_side(self.prep), max(CHUNK, 2 * self.batch_size)
        with ThreadPoolExecutor(1, thread_name_prefix="studio-decode") as ahead:
            pending = ahead.submit(decode_all, images[:chunk], side) if images else None
            if len(images) >= TRACE_FROM:
                self._trace(with_features)   # while the first chunk decodes
            for start in range(0, len(images), chunk):
                pixels, failures = pending.result()
                if start + chunk < len(images):
                    pending = ahead.submit(decode_all, images[start + chunk:start + 2 * chunk], side)
                result = self._forward(pixels, with_features)
                probs = iter(zip(*result) if with_features else result)
                reasons = {f["index"]: f["reason"] for f in failures}
                for index in range(min(chunk, len(images) - start)):
                    yield reasons[index] if index in reasons else next(probs)

    @torch.inference_mode()
    def _forward(self, pixels: torch.Tensor, with_features: bool = False):
        """Decoded squares [N, 3, S, S] uint8 to calibrated probabilities [N, classes] in the engine's
        batches; with `with_features`, (probabilities, pooled features [N, D]) (studio model file only)."""
        out, pooled = [], []
        device = torch.device(self.device)
        for start in range(0, len(pixels), self.batch_size):
            x = augment.eval_batch(pixels[start:start + self.batch_size].to(device, non_blocking=True), self.prep)
            count = len(x)
            model = (self._both or LogitsAndFeatures(self.model)) if with_features else (self._graph or self.model)
            if model is self._graph or model is self._both:
                if count < self.batch_size:   # one batch shape: a new shape makes the graph re-optimise
                    x = torch.cat([x, x.new_zeros(self.batch_size - count, *x.shape[1:])])
            if self.channels_last:
                x = fastpath.channels_last(x)
            with fastpath.autocast(device, self.amp):
                result = model(x)
            logits, features = result if with_features else (result, None)
            out.append(calibration.probabilities(logits[:count], self.temperature, self.multilabel).cpu())
            if features is not None:
                pooled.append(features[:count].float().cpu())
        probabilities = torch.cat(out) if out else torch.empty(0, len(self.classes))
        if not with_features:
            return probabilities
        return probabilities, (torch.cat(pooled) if pooled else torch.empty(0))

    def _trace(self, with_features: bool = False) -> None:
        """The model as one traced, frozen graph (CPU, studio model file only), as training's passes run;
        with `with_features`, the graph that also gives the pooled features."""
        if (self._both if with_features else self._graph) is not None or not self.channels_last or self.device != "cpu":
            return
        side = self.prep["input_size"]
        example = fastpath.channels_last(torch.zeros(self.batch_size, 3, side, side))
        stat = os.stat(self.path)
        key = ("predictor", str(self.path), stat.st_mtime_ns, stat.st_size, self.amp, self.batch_size, with_features)
        module = LogitsAndFeatures(self.model) if with_features else self.model
        graph = fastpath.traced(key, module, example, self.amp)
        if with_features:
            self._both = graph if graph is not module else None
        else:
            self._graph = graph if graph is not module else None


class WarmPredictor:
    """The one model a page keeps loaded: loading takes a second or more, a photo a few milliseconds.

    Reloaded when another model file is asked for, or the same file changed (a run's best model is
    rewritten as it improves). Made by whoever serves the page, so two studios never share one."""

    def __init__(self):
        self._key: tuple[str, float] | None = None
        self._predictor: Predictor | None = None
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> Predictor:
        key = (str(path), Path(path).stat().st_mtime)
        with self._lock:
            if key != self._key:
                self._predictor, self._key = Predictor(path), key
            return self._predictor
