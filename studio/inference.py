"""Classify images with any model the studio exported, with the studio's own preprocessing."""
from __future__ import annotations

from pathlib import Path

import torch

from studio import augment, modelfile, runtimes
from studio.imaging import decode_square
from studio.pixels import cache_side


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

    def tensor(self, images: list) -> torch.Tensor:
        """Images (paths, file objects, PIL images) to the model's input batch."""
        side = cache_side(self.prep)
        batch = torch.stack([torch.from_numpy(decode_square(image, side)).permute(2, 0, 1) for image in images])
        return augment.eval_batch(batch, self.prep)

    @torch.no_grad()
    def probabilities(self, images: list) -> torch.Tensor:
        return torch.softmax(self.model(self.tensor(images).to(self.device)).float(), dim=1).cpu()

    def predict(self, images: list, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, its top-k (class, probability) pairs, most likely first."""
        probs = self.probabilities(images)
        k = min(top_k, len(self.classes))
        values, indices = probs.topk(k, dim=1)
        return [[(self.classes[i], float(v)) for v, i in zip(vs, ix)] for vs, ix in zip(values.tolist(), indices.tolist())]
