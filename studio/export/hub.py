"""The Hugging Face Hub and timm shape of an export: config.json, model.safetensors and README.md.

Why: with these three files, `timm.create_model("local-dir:DIR", pretrained=True)` loads the model with
its class names, `huggingface-cli upload user/name DIR` publishes it unchanged, and the Hub's widgets
read the card's YAML. timm writes its own config.json (`save_config_for_hf`), so the file is exactly
what timm expects; the studio adds its class names, preprocessing and calibration. Nothing here needs
the network.

The studio bundle's folder is itself such a folder (it holds model.safetensors); the other formats
carry the same three files in a `timm/` subfolder, so their own model file stays the one predict.py
and `studio predict` pick.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from studio import backbones, modelfile
from studio.runs import MODEL_FILE

CONFIG_FILE = modelfile.TIMM_CONFIG
CARD_FILE = "README.md"
SUBFOLDER = "timm"      # where formats without model.safetensors keep the timm/Hub files
STUDIO_KEY = modelfile.TIMM_STUDIO_KEY   # config.json's extra key: the studio's own description (temperature, ...)


def weights_license(backbone: str) -> tuple[str, str]:
    """(SPDX-style licence id for the card's YAML, where it comes from in words) of the pretrained weights
    the model was fine-tuned from: a fine-tuned model inherits their terms."""
    known = backbones.lookup(backbone)
    if known is not None and known.weights_license:
        return known.weights_license, f"the licence of the pretrained {known.title} weights ({known.package})"
    import timm
    try:
        licence = getattr(timm.models.get_pretrained_cfg(backbone), "license", None)
    except (RuntimeError, ValueError, KeyError):
        licence = None
    if licence:
        return licence, f"the licence timm records for the pretrained `{backbone}` weights"
    return "other", f"the pretrained `{backbone}` weights' own terms (not recorded here: check them)"


def _accuracy_metrics(details: dict) -> list[dict]:
    """A single-label model's figures for the Hub: validation and test accuracy."""
    summary, test = details.get("summary") or {}, details.get("test") or {}
    metrics = []
    if summary.get("best_val_accuracy") is not None:
        metrics.append({"type": "accuracy", "name": "validation accuracy",
                        "value": round(float(summary["best_val_accuracy"]), 4)})
    if test.get("accuracy") is not None:
        metrics.append({"type": "accuracy", "name": "test accuracy", "value": round(float(test["accuracy"]), 4)})
    return metrics


LABEL_METRICS = (("map", "map", "mAP"), ("f1", "micro_f1", "micro-F1"), ("f1", "macro_f1", "macro-F1"))


def _label_metrics(details: dict) -> list[dict]:
    """A multi-label model's figures for the Hub: mAP, micro- and macro-F1 on the validation photos (at the tuned
    thresholds, from multilabel.json) and on the test photos; accuracy would mean little there."""
    from studio.multilabel import decide
    run_dir = (details.get("summary") or {}).get("run_dir")
    found = {"validation": (decide.read(run_dir) if run_dir else None) or {}, "test": details.get("test") or {}}
    return [{"type": kind, "name": f"{split} {words}", "value": round(float(figures[key]), 4)}
            for split, figures in found.items() for kind, key, words in LABEL_METRICS
            if figures.get(key) is not None]


def front_matter(meta: dict, details: dict) -> dict:
    """The card's YAML: what the Hub and its widgets read (library, task, licence, tags, metrics)."""
    licence, _ = weights_license(meta["backbone"])
    summary = details.get("summary") or {}
    data = summary.get("data") or "photos"
    multilabel = modelfile.is_multilabel(meta)
    metrics = _label_metrics(details) if multilabel else _accuracy_metrics(details)
    card = {"library_name": "timm", "pipeline_tag": "image-classification", "license": licence,
            "tags": ["image-classification", *(["multi-label-classification"] if multilabel else []), "timm",
                     "transfer-studio", meta["backbone"]]}
    if base_model(meta["backbone"]):
        card["base_model"] = base_model(meta["backbone"])
    if metrics:
        card["model-index"] = [{"name": f"{meta['backbone']}-{data}", "results": [{
            "task": {"type": "image-classification",
                     "name": "Multi-label image classification" if multilabel else "Image classification"},
            "dataset": {"name": str(data), "type": "imagefolder"},
            "metrics": metrics}]}]
    return card


def card_text(meta: dict, details: dict, card_markdown: str) -> str:
    """README.md: the YAML block, then the model card."""
    block = yaml.safe_dump(front_matter(meta, details), sort_keys=False, allow_unicode=True)
    return f"---\n{block}---\n\n{card_markdown}"


def write_config(model_path: Path, target: Path) -> Path:
    """timm's own config.json for the studio model file: architecture, num_classes, label_names and the
    preprocessing (`pretrained_cfg`), plus the studio's description under STUDIO_KEY."""
    from timm.models._hub import save_config_for_hf   # what timm's save_for_hf writes, without the weights

    model, meta = modelfile.load(model_path)
    prep = meta["preprocessing"]
    data_config = {"input_size": (3, prep["input_size"], prep["input_size"]), "crop_pct": prep["crop_pct"],
                   "mean": tuple(prep["mean"]), "std": tuple(prep["std"]),
                   "interpolation": prep.get("interpolation", "bicubic")}
    kept = ("classes", "preprocessing", "calibration", "task", "thresholds", "studio_version")
    studio_part = {k: meta[k] for k in kept if k in meta}
    described = {"label_names": list(meta["classes"]), STUDIO_KEY: studio_part}
    try:
        save_config_for_hf(model, str(target), model_config=described, data_config=data_config)
        config = json.loads(target.read_text())
    except TypeError:   # a timm older than data_config: its pretrained_cfg, then the preprocessing set here
        save_config_for_hf(model, str(target), model_config=described)
        config = json.loads(target.read_text())
        config["pretrained_cfg"].update({**data_config, "input_size": list(data_config["input_size"])})
    # timm fills in its own default weights' tag and licence; these weights started elsewhere
    config["pretrained_cfg"]["license"] = weights_license(meta["backbone"])[0]
    if base_model(meta["backbone"]) is None:
        config["pretrained_cfg"].pop("tag", None)
    target.write_text(json.dumps(config, indent=2))
    return target


def base_model(backbone: str) -> str | None:
    """The Hub id of the pretrained weights the model started from, when they came from the Hub (timm's
    default for the architecture); None for the packaged offline weights and a person's own."""
    known = backbones.lookup(backbone)
    if known is None or known.package:
        return None
    import timm
    try:
        return getattr(timm.models.get_pretrained_cfg(backbone), "hf_hub_id", None)
    except (RuntimeError, ValueError, KeyError):
        return None


def write_folder(model_path: Path, folder: Path, meta: dict, details: dict, card_markdown: str) -> Path:
    """The timm/Hub files in `folder` (the export's own when it holds model.safetensors, else its timm/
    subfolder); returns the folder they are in."""
    folder = Path(folder)
    hub = folder if (folder / MODEL_FILE).is_file() else folder / SUBFOLDER
    hub.mkdir(parents=True, exist_ok=True)
    if hub != folder:
        shutil.copyfile(model_path, hub / MODEL_FILE)
    write_config(model_path, hub / CONFIG_FILE)
    text = card_text(meta, details, card_markdown)
    (hub / CARD_FILE).write_text(text)
    if hub != folder:
        (folder / CARD_FILE).write_text(text)
    return hub
