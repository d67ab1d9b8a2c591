"""Step 2, Model: which pretrained backbone, and how much of it to retrain."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components.named import of, wire, with_runner
from studio import backbones
from studio.runs import JobRunner


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


MULTILABEL_ADVICE = ("**No ranking for several labels per photo yet:** the backbones are ranked on how well they "
                     "tell one class from another. The default backbone is a good start; train, then compare runs "
                     "by their mAP under **Runs**.")


def suggest_backbone(data_source, progress=gr.Progress(), *, runner: JobRunner):
    """backbone (the dropdown, set to the best), advice (words) and ranking (table and chart data)."""
    from studio.data.sources import DatasetError
    from studio.models.advisor import advise
    if not data_source:
        return {"advice": "**Choose data first** (step 1): the backbones are ranked on your own photos."}
    if runner.busy():
        return {"advice": "A training is running; rank the backbones when it has finished."}
    if isinstance(data_source, str):
        data_source = {"source": data_source}
    if data_source.get("multilabel"):
        return {"advice": MULTILABEL_ADVICE}
    try:
        result = advise(data_source["source"], prefix_separator=data_source.get("prefix_separator"),
                        progress=lambda words: progress(None, desc=words))
    except (DatasetError, backbones.BackboneError) as exc:
        return {"advice": f"**No ranking.** {exc}"}
    rows = result["ranking"]
    table = pd.DataFrame({"backbone": [r["backbone"] for r in rows],
                          "on the chart": [COLOUR_NAMES[i % len(COLOUR_NAMES)] for i in range(len(rows))],
                          "nearest-neighbour accuracy": [f"{r['knn_accuracy']:.1%}" for r in rows],
                          "linear-probe accuracy": [f"{r['probe_accuracy']:.1%}" for r in rows],
                          "LogME": [round(r["logme"], 3) for r in rows],
                          "ms per photo": [r["ms_per_photo"] for r in rows],
                          "parameters (M)": [r["params_millions"] for r in rows]})
    chart = pd.DataFrame({"backbone": [r["backbone"] for r in rows],
                          "ms per photo": [r["ms_per_photo"] for r in rows],
                          "nearest-neighbour accuracy": [r["knn_accuracy"] for r in rows]})
    words = (f"{result['words']}\n\nScored on {result['photos']['train']} training and {result['photos']['val']} "
             f"validation photos in {result['seconds']:.0f} s. The best one is now chosen above.")
    return {"backbone": gr.Dropdown(choices=backbone_choices(), value=rows[0]["backbone"]) if rows else gr.skip(),
            "advice": words,
            "ranking": gr.DataFrame(table, visible=True),
            "chart": gr.ScatterPlot(chart, visible=True, y_lim=_padded(chart["nearest-neighbour accuracy"]),
                                    color_map={r["backbone"]: PALETTE[i % len(PALETTE)] for i, r in enumerate(rows)})}


def add_own_weights(files, architecture: str | None = None, name: str | None = None):
    """Check and keep uploaded weights (one file, or a timm/Hub folder's config.json + model.safetensors);
    returns backbone (the dropdown, set to them) and own_status (words)."""
    from studio.own_weights import FOLDER_WEIGHTS, OwnWeightsError, add
    paths = [Path(f) for f in (files if isinstance(files, list) else [files] if files else [])]
    if not paths:
        return {"backbone": gr.skip(), "own_status": "**Choose a weights file first** (.safetensors, .pth, .pt or "
                ".bin), or a folder's config.json and model.safetensors together."}
    names = {p.name for p in paths}
    if len(paths) > 1 and not ("config.json" in names and names & set(FOLDER_WEIGHTS)):
        return {"backbone": gr.skip(), "own_status": "**Give one weights file**, or a timm / Hugging Face Hub "
                "folder's config.json together with its model.safetensors."}
    source = paths[0]
    if len(paths) > 1:   # a folder's files, uploaded side by side: put them back in one folder
        source = Path(tempfile.mkdtemp(prefix="own-weights-"))
        for path in paths:
            shutil.copyfile(path, source / path.name)
    try:
        added = add(source, (architecture or "").strip() or None,
                    (name or "").strip() or (None if len(paths) > 1 else Path(paths[0]).stem))
    except OwnWeightsError as exc:
        return {"backbone": gr.skip(), "own_status": f"**Not added.** {exc}"}
    return {"backbone": gr.Dropdown(choices=backbone_choices(), value=added["name"]),
            "own_status": (f"**Added {added['name']}**: {added['architecture']}, {added['params_m']:g}M parameters, "
                           "every tensor checked. It is chosen above, listed with the others and ranked by "
                           "\"Which backbone suits my photos?\".")}


# the chart's colours, named in the table: Gradio's scatter plot draws no legend entries for them here
PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777")
COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "teal", "ochre", "pink")


def _padded(values) -> list[float]:
    """The score axis around the scores, with room so no point sits on the frame."""
    low, high = float(min(values)), float(max(values))
    margin = max(0.01, (high - low) * 0.25)
    return [max(0.0, low - margin), min(1.0, high + margin)]


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
    with gr.Accordion("Which backbone suits my photos?", open=False, elem_id="advisor"):
        gr.Markdown("Ranks every backbone at hand on a sample of your photos, in seconds, without training "
                    "any: how well its frozen features already tell your classes apart, and how fast it is here.")
        suggest = gr.Button("Rank the backbones on my photos", size="sm")
        advice = gr.Markdown("", elem_id="advisor-words")
        chart = gr.ScatterPlot(x="ms per photo", y="nearest-neighbour accuracy", color="backbone",
                               label="Score against speed (colour: backbone)", visible=False, height=320)
        ranking = gr.DataFrame(label="Backbones, best first", interactive=False, visible=False)
    with gr.Accordion("Use my own pretrained weights", open=False, elem_id="own-weights"):
        gr.Markdown("Weights you trained or downloaded before, used offline: a timm `.safetensors` or `.pth` file, "
                    "or a folder saved by timm or the Hugging Face Hub (pick its `config.json` and "
                    "`model.safetensors` together). Every tensor is checked; your file is never changed.")
        with gr.Row():
            own_files = gr.File(label="Weights file (or config.json + model.safetensors)", file_count="multiple",
                                file_types=[".safetensors", ".pth", ".pt", ".bin", ".json"], height=120, scale=2)
            with gr.Column(scale=1):
                own_architecture = gr.Textbox(label="Architecture (timm name)", placeholder="e.g. resnet34",
                                              info="Only for a bare file that is not one of the catalog's.")
                own_name = gr.Textbox(label="Name", placeholder="default: the file's name")
        own_add = gr.Button("Check and add", size="sm")
        own_status = gr.Markdown("", elem_id="own-weights-status")
    explanation = gr.Markdown(AUTO_WORDS, elem_id="freeze-explanation")
    next_button = gr.Button("Next: train →")
    return SimpleNamespace(backbone=backbone, details=details, mode=mode, freeze=freeze, explanation=explanation,
                           next=next_button, suggest=suggest, advice=advice, chart=chart, ranking=ranking,
                           own_files=own_files, own_architecture=own_architecture, own_name=own_name,
                           own_add=own_add, own_status=own_status)


def bind(ui: SimpleNamespace, data_source: gr.State, runner: JobRunner) -> None:
    ui.suggest.click(**wire(with_runner(suggest_backbone, runner), [data_source],
                            **of(ui, "backbone", "advice", "ranking", "chart")), api_name="suggest_backbone")
    ui.own_add.click(**wire(add_own_weights, [ui.own_files, ui.own_architecture, ui.own_name],
                            **of(ui, "backbone", "own_status")), api_name="add_own_weights")
    ui.backbone.change(**wire(on_backbone_change, [ui.backbone, ui.mode], **of(ui, "details", "freeze", "explanation")),
                       api_name="choose_backbone")
    ui.freeze.change(freeze_explanation, [ui.backbone, ui.freeze], ui.explanation, api_name="explain_freeze",
                     show_progress="hidden")
    ui.mode.change(**wire(on_mode_change, [ui.backbone, ui.mode, ui.freeze], **of(ui, "freeze", "explanation")),
                   api_visibility="private", show_progress="hidden")
