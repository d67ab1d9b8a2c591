"""The studio's model file: one safetensors file that describes itself.

Weights are stored as safetensors (loading never unpickles code) and the
safetensors header carries a JSON description: backbone name, class names,
preprocessing and a training summary. With those, a few lines of timm load it
anywhere, with or without the studio (see the README).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

import studio

METADATA_KEY = "transfer_studio"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be used (missing, damaged, not the studio's)."""


def save(model: torch.nn.Module, path: Path, backbone: str, classes: list[str],
         preprocessing: dict, summary: dict | None = None) -> Path:
    """Write the model atomically: a crash mid-write never leaves a half file behind."""
    meta = {"format_version": FORMAT_VERSION, "studio_version": studio.__version__,
            "backbone": backbone, "classes": list(classes), "preprocessing": preprocessing,
            "summary": summary or {}}
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial), metadata={METADATA_KEY: json.dumps(meta)})
    os.replace(partial, path)
    return path


def update_metadata(path: Path, **fields) -> dict:
    """Add or replace top-level fields of the file's description (the weights stay as they are), atomically."""
    meta = {**read_metadata(path), **fields}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(load_file(str(path)), str(partial), metadata={METADATA_KEY: json.dumps(meta)})
    os.replace(partial, path)
    return meta


def read_metadata(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path.name} is not a readable safetensors model file ({exc}).") from exc
    if METADATA_KEY not in header:
        raise ModelFileError(f"{path.name} is a safetensors file but not a Transfer Studio model "
                             "(it has no class names or preprocessing).")
    return json.loads(header[METADATA_KEY])


def load(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, metadata) from a studio model file."""
    meta = read_metadata(path)
    try:
        model = timm.create_model(meta["backbone"], pretrained=False, num_classes=len(meta["classes"]))
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, SafetensorError) as exc:
        raise ModelFileError(f"{Path(path).name} does not match its own description ({exc}).") from exc
    return model.to(device).eval(), meta
