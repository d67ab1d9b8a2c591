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
TIMM_CONFIG = "config.json"          # a timm / Hub folder's description, beside its model.safetensors
TIMM_STUDIO_KEY = "transfer_studio"  # the studio's own description inside that config.json (see export.hub)


class ModelFileError(ValueError):
    """A model file that cannot be used (missing, damaged, not the studio's)."""


MULTI_LABEL = "multi-label"


def is_multilabel(meta: dict | None) -> bool:
    """A model that answers yes/no per label (sigmoid outputs, per-label thresholds), not one class per photo."""
    return (meta or {}).get("task") == MULTI_LABEL


def thresholds_of(meta: dict | None) -> list[float] | None:
    """A multi-label model's per-label decision thresholds (tuned on validation), in class order; 0.5 each for
    a model saved before they were tuned; None for a single-label model."""
    if not is_multilabel(meta):
        return None
    values = (meta or {}).get("thresholds")
    return [float(v) for v in values] if values else [0.5] * len(meta["classes"])


def save(model: torch.nn.Module, path: Path, backbone: str, classes: list[str],
         preprocessing: dict, summary: dict | None = None, task: str = "single-label") -> Path:
    """Write the model atomically: a crash mid-write never leaves a half file behind."""
    meta = {"format_version": FORMAT_VERSION, "studio_version": studio.__version__,
            "backbone": backbone, "classes": list(classes), "preprocessing": preprocessing,
            "summary": summary or {}, "task": task}
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
        beside = timm_description(path.with_name(TIMM_CONFIG))
        if beside is not None:
            return beside
        raise ModelFileError(f"{path.name} is a safetensors file but not a Transfer Studio model "
                             "(it has no class names or preprocessing, and no timm config.json beside it).")
    return json.loads(header[METADATA_KEY])


def timm_description(config_path: Path) -> dict | None:
    """The description of a timm / Hugging Face Hub folder's weights, from its config.json (architecture,
    num_classes, label_names, pretrained_cfg), or None when there is no usable one. A studio export writes
    its own description there too (TIMM_STUDIO_KEY); a folder from elsewhere gets its class names (or
    "class 0", ...) and timm's preprocessing, uncalibrated."""
    try:
        config = json.loads(Path(config_path).read_text())
        architecture = config["architecture"]
        cfg = config.get("pretrained_cfg") or {}
        count = int(config.get("num_classes") or cfg["num_classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    labels = config.get("label_names") or cfg.get("label_names")
    if isinstance(labels, dict):
        labels = [labels[k] for k in sorted(labels, key=int)]
    classes = [str(c) for c in labels] if labels and len(labels) == count else [f"class {i}" for i in range(count)]
    own = config.get(TIMM_STUDIO_KEY) or {}
    size = (cfg.get("input_size") or (3, 224, 224))[-1]
    prep = own.get("preprocessing") or {"input_size": int(size), "crop_pct": float(cfg.get("crop_pct", 0.875)),
                                         "mean": list(cfg.get("mean", (0.485, 0.456, 0.406))),
                                         "std": list(cfg.get("std", (0.229, 0.224, 0.225))),
                                         "interpolation": cfg.get("interpolation", "bicubic")}
    meta = {"format_version": FORMAT_VERSION, "backbone": architecture, "classes": classes, "preprocessing": prep,
            "summary": {}, "source": "timm config.json"}
    for key in ("calibration", "task", "thresholds"):
        if own.get(key):
            meta[key] = own[key]
    return meta


def load(path: Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, metadata) from a studio model file."""
    meta = read_metadata(path)
    try:
        model = timm.create_model(meta["backbone"], pretrained=False, num_classes=len(meta["classes"]))
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, SafetensorError) as exc:
        raise ModelFileError(f"{Path(path).name} does not match its own description ({exc}).") from exc
    return model.to(device).eval(), meta
