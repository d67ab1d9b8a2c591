"""Turn a run's model file into other formats people deploy.

The studio's own model file (safetensors + JSON header) is already the primary
export; TorchScript runs with torch alone, without timm or the studio. Each
export carries the class names and preprocessing with it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from studio import modelfile

TORCHSCRIPT_META = "transfer_studio.json"


def export_torchscript(model_path: Path, out_path: Path) -> Path:
    """Trace the model on CPU and save it with its description as an extra file."""
    model, meta = modelfile.load(model_path, "cpu")
    size = meta["preprocessing"]["input_size"]
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 3, size, size))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    torch.jit.save(traced, str(partial), _extra_files={TORCHSCRIPT_META: json.dumps(meta)})
    os.replace(partial, out_path)
    return out_path


def load_torchscript(path: Path) -> tuple[torch.nn.Module, dict]:
    extra = {TORCHSCRIPT_META: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise modelfile.ModelFileError(f"{Path(path).name} is not a readable TorchScript file ({exc}).") from exc
    if not extra[TORCHSCRIPT_META]:
        raise modelfile.ModelFileError(f"{Path(path).name} is TorchScript but carries no class names "
                                       "(it was not exported by the studio).")
    return module.eval(), json.loads(extra[TORCHSCRIPT_META])
