"""Step 1, Data: upload a .zip or use the built-in example; see what is in it."""
from __future__ import annotations

import html
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components import views
from studio import paths
from studio.data import DatasetError, check_trainable, open_dataset
from studio.imaging import ImageDecodeError, open_rgb

SAMPLES_PER_CLASS = 6


def describe(source: str) -> tuple:
    """(dataset root or None, summary markdown, counts for the chart, gallery items, skipped table)."""
    try:
        dataset = open_dataset(source)
        check_trainable(dataset)
    except DatasetError as exc:
        return None, f"### This data can't be used yet\n{html.escape(str(exc))}", None, [], _skipped(None)
    counts = dataset.counts()
    lines = [f"### {len(dataset.classes)} classes, {len(dataset.samples):,} images",
             "| class | " + " | ".join(counts.columns) + " |", "|---|" + "---|" * len(counts.columns)]
    for name, row in counts.iterrows():
        lines.append(f"| {html.escape(name)} | " + " | ".join(str(int(v)) for v in row) + " |")
    split = ("Using your own train/validation folders." if dataset.split_source.startswith("folders")
             else "No validation folder found: 20% of each class is held out to measure accuracy honestly.")
    lines.append(f"\n{split}")
    if dataset.skipped:
        lines.append(f"\n**{len(dataset.skipped)} file(s) skipped** (listed below, with the reason). "
                     "Your files are not changed.")
    lines.append("\nNext: **2. Model**.")
    return str(dataset.root), "\n".join(lines), views.counts_frame(counts), _gallery(dataset), _skipped(dataset.skipped)


def _gallery(dataset) -> list:
    items = []
    train = dataset.split("train")
    for name in dataset.classes:
        for path in train[train.label == name].path.head(SAMPLES_PER_CLASS):
            try:
                image = open_rgb(path, draft=256)
            except ImageDecodeError:
                continue
            image.thumbnail((256, 256))
            items.append((image, name))
    return items


def _skipped(rows) -> pd.DataFrame:
    return pd.DataFrame(rows or [], columns=["path", "reason"])


def use_example() -> tuple:
    return describe(str(paths.EXAMPLE_DATASET))


def use_upload(file) -> tuple:
    if not file:
        return None, "Choose a .zip file first.", None, [], _skipped(None)
    path = file if isinstance(file, str) else getattr(file, "name", str(file))
    if not path.lower().endswith(".zip"):
        return None, ("### Please upload a .zip file\nZip a folder that holds one folder per class "
                      "(or train/ and val/ folders that hold class folders)."), None, [], _skipped(None)
    return describe(path)


def render() -> SimpleNamespace:
    gr.Markdown("Give the studio some labelled photos: one folder per class, zipped. "
                "No data at hand? The example has photos of **ants and bees**.")
    with gr.Row():
        with gr.Column(scale=1):
            example = gr.Button("Use the example: ants vs bees", variant="primary")
            gr.Markdown("398 photos from ImageNet, already split into train and val.")
        upload = gr.File(label="…or upload a .zip of class folders", file_types=[".zip"], scale=2, height=140)
    summary = gr.Markdown("No data chosen yet.", elem_id="data-summary")
    with gr.Row():
        chart = gr.BarPlot(None, x="class", y="images", color="split", label="Images per class",
                           height=260, scale=1)
        gallery = gr.Gallery(label="Sample images per class", columns=6, height=260, scale=2,
                             allow_preview=True, object_fit="cover")
    skipped = gr.Dataframe(_skipped(None), label="Files not used, and why", interactive=False,
                           wrap=True, max_height=200)
    next_button = gr.Button("Next: choose a model →")
    return SimpleNamespace(example=example, upload=upload, summary=summary, chart=chart, gallery=gallery,
                           skipped=skipped, next=next_button)


def bind(ui: SimpleNamespace, data_source: gr.State) -> None:
    outputs = [data_source, ui.summary, ui.chart, ui.gallery, ui.skipped]
    ui.example.click(use_example, None, outputs, api_name="use_example")
    ui.upload.upload(use_upload, ui.upload, outputs, api_name="use_upload")
