"""Step 2, Model: which pretrained backbone, and how much of it to retrain."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from components.named import of, wire
from studio import backbones


def backbone_choices() -> list[tuple[str, str]]:
    choices = []
    for row in backbones.catalog():
        top1 = f", ImageNet {row['imagenet_top1']:.1f}%" if row["imagenet_top1"] else ""
        where = {"offline": "offline", "cached": "downloaded", "download": "needs internet",
                 "missing": "not installed"}[row["status"]]
        choices.append((f"{row['title']} ({row['params_m']:.1f}M params{top1}) · {where}", row["name"]))
    return choices


def backbone_details(name: str) -> str:
    entry = backbones.lookup(name)
    status, message = backbones.availability(name)
    blurb = entry.blurb if entry else "A timm model."
    return f"**{entry.title if entry else name}**: {blurb} {message}"


def freeze_explanation(name: str, depth: float) -> str:
    try:
        choices = backbones.freeze_choices(name)
    except backbones.BackboneError as exc:
        return str(exc)
    total = choices["total_groups"]
    depth = int(min(max(depth, 0), total))
    trainable = choices["trainable_params"][depth]
    share = trainable / choices["total_params"]
    return (f"{backbones.describe_depth(depth, total)}\n\n"
            f"Trains **{trainable:,}** of {choices['total_params']:,} parameters ({share:.1%}).")


MODES = [("Auto (recommended): the new last layer first, then as much of the network as your photos need", "auto"),
         ("I choose how many layers stay frozen", "manual")]
AUTO_WORDS = ("**Auto**: the studio first trains only the new last layer on what the frozen network sees "
              "(seconds). Then it looks at how well that worked: photos like everyday ones need only the top "
              "layers retrained; unusual photos (scans, satellite tiles, drawings) get deeper retraining. "
              "It stops when validation stops improving and keeps the best epoch. Every choice is shown on "
              "the Train step.")


def explain(name: str, mode: str, depth: float) -> str:
    return AUTO_WORDS if mode == "auto" else freeze_explanation(name, depth)


def on_mode_change(name: str, mode: str, depth: float):
    """freeze (the slider, shown in manual mode) and explanation."""
    return {"freeze": gr.Slider(visible=mode != "auto"), "explanation": explain(name, mode, depth)}


def on_backbone_change(name: str, mode: str = "manual"):
    """details, freeze (the slider, reset to the new backbone's depth) and explanation."""
    choices = backbones.freeze_choices(name)
    total = choices["total_groups"]
    return {"details": backbone_details(name), "freeze": gr.Slider(minimum=0, maximum=total, value=total, step=1),
            "explanation": explain(name, mode, total)}


def render() -> SimpleNamespace:
    default = backbones.default_backbone()
    total = backbones.freeze_choices(default)["total_groups"]
    gr.Markdown("A **backbone** is a network already trained on millions of everyday photos "
                "(ImageNet). The studio keeps what it learned and adds a new last layer for your classes.")
    backbone = gr.Dropdown(backbone_choices(), value=default, label="Backbone",
                           info="Backbones marked 'offline' work without internet.")
    details = gr.Markdown(backbone_details(default))
    mode = gr.Radio(MODES, value="auto", label="How much of the network to retrain")
    freeze = gr.Slider(0, total, value=total, step=1, label="Layers kept frozen (from the input side)",
                       info="Right end: only the new last layer learns (fast). Left end: every layer learns.",
                       visible=False)
    explanation = gr.Markdown(AUTO_WORDS, elem_id="freeze-explanation")
    next_button = gr.Button("Next: train →")
    return SimpleNamespace(backbone=backbone, details=details, mode=mode, freeze=freeze, explanation=explanation,
                           next=next_button)


def bind(ui: SimpleNamespace) -> None:
    ui.backbone.change(**wire(on_backbone_change, [ui.backbone, ui.mode], **of(ui, "details", "freeze", "explanation")),
                       api_name="choose_backbone")
    ui.freeze.change(freeze_explanation, [ui.backbone, ui.freeze], ui.explanation, api_name="explain_freeze",
                     show_progress="hidden")
    ui.mode.change(**wire(on_mode_change, [ui.backbone, ui.mode, ui.freeze], **of(ui, "freeze", "explanation")),
                   api_visibility="private", show_progress="hidden")
