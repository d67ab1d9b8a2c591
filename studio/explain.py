"""Where the model looked: Grad-CAM heatmaps over a photo, with the `grad-cam` package.

Used by Try it, the photos behind a confusion-matrix cell, the confident mistakes and `studio explain`.
The target layer is found from the model, never named per architecture: the last layer (in the
order the forward pass runs them, outside the classifier) whose output still has a spatial map,
[N, C, H, W] for a convolutional network. A vision transformer has no such map; its last block's
tokens, minus the class token(s), are laid back out on their patch grid instead.

Why Grad-CAM: it costs one forward and one backward pass (instant on a CPU for one photo), and the
heatmap is of the class asked about, so a mistake can be shown as "it looked here and saw a bee".
"""
from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from studio import augment
from studio.data.imaging import decode_square
from studio.data.pixels import cache_side


@dataclass
class Explanation:
    overlay: Image.Image     # the photo as the model saw it (centre crop), the heatmap over it
    heat: np.ndarray         # [H, W] in 0..1, where the model looked for `class_name`
    class_name: str
    probability: float       # the model's (calibrated) probability of that class


class ExplainError(ValueError):
    """The model cannot be explained (e.g. an ONNX or TorchScript file); the message says why."""


def target_layer(model: torch.nn.Module, input_size: int):
    """(layer, reshape_transform or None) for Grad-CAM: see the module's docstring."""
    head = {id(m) for m in model.get_classifier().modules()} if hasattr(model, "get_classifier") else set()
    seen: list[tuple[torch.nn.Module, tuple]] = []
    hooks = [m.register_forward_hook(lambda module, _, out: seen.append((module, tuple(out.shape))))
             for m in model.modules() if id(m) not in head and m is not model
             and not list(m.children())]   # leaf modules: the ones that compute something
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size))
    finally:
        for hook in hooks:
            hook.remove()
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    # a square probe gives square maps: [N, heads, tokens, dim] inside attention is not one
    spatial = [i for i, (_, shape) in enumerate(seen) if len(shape) == 4 and shape[2] == shape[3] > 1]
    tokens = [i for i, (_, shape) in enumerate(seen) if len(shape) == 3 and _grid(shape[1] - prefix)]
    if not spatial and not tokens:
        raise ExplainError("No layer of this model keeps a spatial map or a grid of patch tokens to explain.")
    # a transformer's patch embedding is a spatial map too, but its tokens run after it
    if spatial and (not tokens or spatial[-1] > tokens[-1]):
        return seen[spatial[-1]][0], None
    layer = _last_token_layer_that_matters(model, [seen[i][0] for i in tokens], prefix, input_size)
    shape = next(shape for m, shape in seen if m is layer)
    side = _grid(shape[1] - prefix)

    def to_map(x: torch.Tensor) -> torch.Tensor:   # [N, prefix + side*side, C] -> [N, C, side, side]
        return x[:, prefix:, :].reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)
    return layer, to_map


def _last_token_layer_that_matters(model: torch.nn.Module, layers: list, prefix: int, input_size: int):
    """The last of `layers` whose patch tokens still move the answer. When the class token alone feeds the
    head, the layers after the last attention pass only carry it: their patch tokens get no gradient
    and a heatmap there is blank."""
    outputs: dict[int, torch.Tensor] = {}

    def keep(module, _, out):
        out.retain_grad()
        outputs[id(module)] = out
    hooks = [m.register_forward_hook(keep) for m in layers]
    probe = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0)).requires_grad_()
    try:
        with torch.enable_grad():
            model(probe).max().backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    for layer in reversed(layers):
        grad = outputs[id(layer)].grad
        if grad is not None and grad[:, prefix:].abs().sum() > 0:
            return layer
    raise ExplainError("No layer's patch tokens move this model's answer, so there is nothing to show.")


def _grid(count: int) -> int:
    side = int(math.isqrt(max(count, 0)))
    return side if side > 1 and side * side == count else 0


class Explainer:
    """Grad-CAM for one studio model (a Predictor's torch model), made once and reused for many photos."""

    def __init__(self, model: torch.nn.Module, classes: list[str], prep: dict, temperature: float = 1.0):
        from pytorch_grad_cam import GradCAM

        if not isinstance(model, torch.nn.Module):
            raise ExplainError("Heatmaps need the trained weights (model.safetensors); this is an exported "
                               "ONNX or TorchScript file. Explain the run, or the export's model.safetensors.")
        # a copy: Grad-CAM hooks a layer, and the Predictor's own model stays as fast as it was
        self.model = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
        self.classes, self.prep, self.temperature = classes, prep, temperature
        layer, reshape = target_layer(self.model, prep["input_size"])
        self.layer_name = next((n for n, m in self.model.named_modules() if m is layer), "?")
        self.cam = GradCAM(model=self.model, target_layers=[layer], reshape_transform=reshape)
        self._lock = threading.Lock()   # Grad-CAM keeps the pass's activations in the object: one photo at a time

    @classmethod
    def of(cls, predictor) -> "Explainer":
        """For a studio Predictor (a run's model, an export folder's model.safetensors)."""
        return cls(predictor.model, predictor.classes, predictor.prep, predictor.temperature)

    def explain(self, image, class_name: str | None = None) -> Explanation:
        """The heatmap of `class_name` (default: the model's answer) over `image` (path, file or PIL image)."""
        from pytorch_grad_cam.utils.image import show_cam_on_image
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        square = decode_square(image, cache_side(self.prep))
        batch = torch.from_numpy(square).permute(2, 0, 1).unsqueeze(0)
        x = augment.eval_batch(batch, self.prep)
        with torch.no_grad():
            probabilities = torch.softmax(self.model(x).float() / self.temperature, dim=1)[0]
        index = int(probabilities.argmax()) if class_name is None else self.classes.index(class_name)
        with self._lock:
            heat = self.cam(input_tensor=x, targets=[ClassifierOutputTarget(index)])[0]
        crop = augment.center_crop(batch, self.prep["input_size"])[0].permute(1, 2, 0).numpy()
        overlay = show_cam_on_image(crop.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=0.55)
        return Explanation(Image.fromarray(overlay), heat, self.classes[index], float(probabilities[index]))


class WarmExplainer:
    """The Explainer of the model a page shows, made again only when the Predictor is (another model file,
    or the same file rewritten)."""

    def __init__(self):
        self._for: object = None
        self._explainer: Explainer | None = None
        self._lock = threading.Lock()

    def __call__(self, predictor) -> Explainer:
        with self._lock:
            if predictor is not self._for:
                self._explainer, self._for = Explainer.of(predictor), predictor
            return self._explainer


def explain_files(model_path: str | Path, images: list, out_dir: str | Path, class_name: str | None = None):
    """`studio explain`: one heatmap PNG per readable photo in `out_dir`; yields {path, class, probability,
    heatmap} or {path, error} for each."""
    from studio.data.imaging import ImageDecodeError
    from studio.inference import Predictor

    predictor = Predictor(model_path)
    explainer = Explainer.of(predictor)
    if class_name is not None and class_name not in predictor.classes:
        raise ExplainError(f"{class_name!r} is not one of the model's classes ({', '.join(predictor.classes)}).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for image in images:
        path = Path(image)
        try:
            found = explainer.explain(path, class_name)
        except (ImageDecodeError, OSError) as exc:
            yield {"path": str(path), "error": str(exc)}
            continue
        name = f"{path.stem}-where-it-looked.png"
        while name in taken:
            name = f"{path.stem}-{len(taken)}-where-it-looked.png"
        taken.add(name)
        found.overlay.save(out_dir / name)
        yield {"path": str(path), "class": found.class_name, "probability": round(found.probability, 4),
               "heatmap": str(out_dir / name)}
