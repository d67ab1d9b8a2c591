"""A person's own pretrained weights, offline: checked once when added, then a backbone like the others.

Accepted: a timm-compatible `.safetensors` or `.pth`/`.pt`/`.bin` state dict (the architecture named, or
recognised among the catalog's), or a folder saved by timm or the Hugging Face Hub (`config.json` with
its `architecture`, beside `model.safetensors` or `pytorch_model.bin`).

The check builds the architecture and compares every tensor: a file that is damaged, holds NaN, or
belongs to another network is refused with words that say what is wrong; the old task's classifier is
dropped (the studio fits a new head). What passes is copied into the workspace as one safetensors file
whose header names the architecture and its preprocessing; the person's file is never changed. It then
shows in the catalog as `own:NAME`, is ranked by the advisor and trains like a packaged backbone.
Trained models name the architecture, so they load anywhere timm does.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from studio import paths

PREFIX = "own:"
META_KEY = "transfer_studio_own_weights"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.pth")
WRAPPER_PREFIXES = ("module.", "model.")    # DataParallel and Lightning checkpoints
PREP_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation")


class OwnWeightsError(ValueError):
    """Weights that cannot be used as a backbone; the message says why and what to do."""


def is_own(name: str) -> bool:
    return str(name).startswith(PREFIX)


def folder() -> Path:
    path = paths.weights_dir() / "own"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file_of(name: str) -> Path:
    return folder() / f"{name[len(PREFIX):]}.safetensors"


# ---------------------------------------------------------------- adding

def add(source: str | Path, architecture: str | None = None, title: str | None = None) -> dict:
    """Check `source` and keep it in the workspace; returns its registry entry (`entries()` lists them)."""
    source = Path(source)
    if not source.exists():
        raise OwnWeightsError(f"{source} does not exist: give a weights file ({', '.join(WEIGHT_SUFFIXES)}) or a "
                              "folder saved by timm or the Hugging Face Hub.")
    config = {}
    if source.is_dir():
        source, config = _from_folder(source)
    architecture = (architecture or config.get("architecture") or "").strip()
    state = _read_state(source)
    if not architecture:
        architecture = _recognise(state, source)
    kept, dropped = _check(state, architecture, source)
    prep = {k: config.get("pretrained_cfg", {})[k] for k in PREP_KEYS if k in config.get("pretrained_cfg", {})}
    name = PREFIX + _slug(title or (source.parent.name if source.name in FOLDER_WEIGHTS else source.stem))
    meta = {"architecture": architecture, "title": title or name[len(PREFIX):], "source": str(source.resolve()),
            "preprocessing": prep, "dropped": dropped,
            "params_m": round(sum(t.numel() for t in kept.values()) / 1e6, 1)}
    target = _file_of(name)
    partial = target.with_suffix(".partial")
    save_file(kept, str(partial), metadata={META_KEY: json.dumps(meta)})
    os.replace(partial, target)
    return {"name": name, **meta}


def _from_folder(path: Path) -> tuple[Path, dict]:
    config_file = path / "config.json"
    weights = next((path / f for f in FOLDER_WEIGHTS if (path / f).is_file()), None)
    if weights is None:
        raise OwnWeightsError(f"{path} holds no {' or '.join(FOLDER_WEIGHTS)}: a timm or Hugging Face Hub folder "
                              "has one beside its config.json.")
    if not config_file.is_file():
        return weights, {}
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise OwnWeightsError(f"{config_file} is not readable JSON ({exc}).") from None
    if "architecture" not in config and config.get("architectures"):
        raise OwnWeightsError(f"{path} was saved by Hugging Face transformers ({config['architectures'][0]}), not "
                              "timm: save the model with timm (`model.save_pretrained` from timm, or "
                              "`timm.models.push_to_hf_hub`), or give its timm architecture name with the file.")
    return weights, config


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise OwnWeightsError(f"{path.name}: use a {', '.join(WEIGHT_SUFFIXES)} file (a state dict of a timm model).")
    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:   # safetensors, pickle and zip each raise their own kind for a damaged file
        raise OwnWeightsError(f"{path.name} could not be read: the file is damaged or not a weights file "
                              f"({exc.__class__.__name__}). Save the weights again and add the new file.") from None
    for key in ("state_dict", "model", "model_state_dict"):   # training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OwnWeightsError(f"{path.name} holds no state dict of tensors (a whole pickled model, or something "
                              "else): save `model.state_dict()` instead.")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _recognise(state: dict, source: Path) -> str:
    """The catalog architecture whose tensors match the file's names and shapes."""
    from studio.backbones import CATALOG
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for backbone in CATALOG:
        reference = timm.create_model(backbone.name, pretrained=False).state_dict()
        body = {k: tuple(v.shape) for k, v in reference.items() if not _is_classifier(k, backbone.name)}
        if all(shapes.get(k) == s for k, s in body.items()):
            return backbone.name
    raise OwnWeightsError(f"{source.name} does not match any catalog backbone: give its timm architecture name "
                          "(for example resnet34 or efficientnet_b0).")


def _is_classifier(key: str, architecture: str) -> bool:
    classifier = timm.models.get_pretrained_cfg(architecture)
    names = classifier.classifier if classifier is not None and classifier.classifier else "classifier"
    names = (names,) if isinstance(names, str) else tuple(names)
    return any(key == n or key.startswith(n + ".") for n in names)


def _check(state: dict, architecture: str, source: Path) -> tuple[dict, list[str]]:
    """The file's tensors without the old classifier, once every one fits `architecture`."""
    try:
        reference = timm.create_model(architecture, pretrained=False).state_dict()
    except RuntimeError:
        raise OwnWeightsError(f"{architecture!r} is not an architecture timm knows.") from None
    body = {k: v for k, v in reference.items() if not _is_classifier(k, architecture)}
    missing = [k for k in body if k not in state]
    wrong = [k for k in body if k in state and tuple(state[k].shape) != tuple(body[k].shape)]
    extra = [k for k in state if k not in reference]
    if missing or wrong or extra:
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors it needs are missing (e.g. {missing[0]})")
        if wrong:
            problems.append(f"{len(wrong)} have another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} "
                            f"instead of {tuple(body[wrong[0]].shape)})")
        if extra:
            problems.append(f"{len(extra)} belong to no layer of it (e.g. {extra[0]})")
        raise OwnWeightsError(f"{source.name} is not a {architecture}: " + "; ".join(problems) +
                              ". Give the architecture these weights were trained with.")
    bad = [k for k in body if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if bad:
        raise OwnWeightsError(f"{source.name} holds NaN or infinite values ({len(bad)} tensors, e.g. {bad[0]}): "
                              "the weights are damaged; save them again from a working model.")
    kept = {k: state[k].to(body[k].dtype).contiguous() for k in body}
    return kept, sorted(k for k in state if k not in body)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:60]
    return slug or "weights"


# ---------------------------------------------------------------- using

def entries() -> list[dict]:
    """Every kept set of own weights: {"name", "architecture", "title", "source", "params_m", ...}."""
    found = []
    for path in sorted(folder().glob("*.safetensors")):
        meta = _meta(path)
        if meta is not None:
            found.append({"name": PREFIX + path.stem, **meta})
    return found


def entry(name: str) -> dict | None:
    path = _file_of(name)
    meta = _meta(path) if path.is_file() else None
    return None if meta is None else {"name": name, **meta}


def _meta(path: Path) -> dict | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return json.loads((handle.metadata() or {})[META_KEY])
    except Exception:   # a damaged or foreign file in the folder is not an entry
        return None


def architecture(name: str) -> str:
    found = entry(name)
    if found is None:
        from studio.backbones import BackboneError
        raise BackboneError(f"Your weights {name[len(PREFIX):]!r} are no longer in the workspace: add them again.")
    return found["architecture"]


def create_model(name: str, num_classes: int) -> torch.nn.Module:
    """The architecture with the kept weights and a new `num_classes` head (zeroed by the caller)."""
    found = entry(name)
    arch = architecture(name)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes,
                              pretrained_cfg_overlay=found["preprocessing"] or None)
    missing, unexpected = model.load_state_dict(load_file(str(_file_of(name))), strict=False)
    if unexpected or any(not _is_classifier(k, arch) for k in missing):
        from studio.backbones import BackboneError
        raise BackboneError(f"Your weights {name!r} no longer fit {arch} (a timm upgrade?): add them again.")
    return model
