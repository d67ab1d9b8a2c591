"""Step 5, Export: one zip with the model in a chosen format, checked against the trained model first.

The engine (`studio.export.bundle`) converts, runs the parity check and writes the model
card and predict.py; this step lets a person choose the format in plain words and
shows the parity figures with a verdict before the download.
"""
from __future__ import annotations

import html
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components.named import of, wire
from components.session import model_path, user_of
from studio.runs import JobRunner
from components.views import classes_if, shown_if
from studio import scratch as studio_scratch
from studio.export import bundle, parity
from studio.export.formats import DEFAULT, FORMATS
from studio.modelfile import ModelFileError

CHOICES = [(f.label, f.key) for f in FORMATS.values()]
DEFAULT_TARGET = "Exports the run chosen under **Runs** (*Export this run*), else the latest run."


def format_key(choice: str | None) -> str:
    """The format key from a choice's value or its label (older clients send the label)."""
    for label, key in CHOICES:
        if choice in (label, key):
            return key
    return DEFAULT


def format_help() -> str:
    """Each format in plain words: what runs it, how big it is, where to use it."""
    rows = ["| Format | What runs it | Size | Use it for |", "|---|---|---|---|"]
    for f in FORMATS.values():
        rows.append(f"| **{f.title}** | {f.runs_with} | {f.size} | {f.use_it} |")
    return ("\n".join(rows) + "\n\nEvery download is one zip with the model, a model card (README.md, with the "
            "details the Hugging Face Hub reads), `predict.py` (classifies a photo or a folder) and its "
            "`requirements.txt`. It also holds timm's `config.json` beside `model.safetensors` (in a `timm/` folder "
            "for the formats other than the bundle): `timm.create_model(\"local-dir:FOLDER\", pretrained=True)` "
            "loads it, and `huggingface-cli upload you/name FOLDER` publishes it as it is.")


NO_MODEL = ("**No trained model yet.** Train one in step 3 (or pick a past run under **Runs** and press "
            "*Export this run*); the formats to download it in appear here then.")


def readiness(run_dir: str | None, user: str | None = None, *, runner: JobRunner):
    """target (words) and ready (the export options): the formats and the Export button only when there is
    a model."""
    ready = model_path(run_dir, user, runner=runner) is not None
    return {"target": target_words(run_dir) if ready else NO_MODEL, "ready": gr.Column(elem_classes=classes_if(ready))}


def target_words(run_dir: str | None) -> str:
    if not run_dir:
        return DEFAULT_TARGET
    return f"Exports run **{html.escape(Path(run_dir).name)}**."


def result_markdown(result: bundle.ExportResult, run_id: str) -> str:
    size = result.zip_path.stat().st_size / 1e6
    head = (f"Ready, **with a warning**: {result.zip_path.name}" if result.flagged or not result.parity["checked"]
            else f"Ready: **{result.zip_path.name}**")
    report = result.parity
    photos = (f"{report['images']} validation photos of run {run_id}" +
              (f" ({report['unreadable']} could not be read)" if report["unreadable"] else ""))
    return (f"{head} ({size:.1f} MB).\n\n**{html.escape(result.verdict())}**\n\n"
            f"Checked on {photos}, each format with its own runtime:\n\n{parity.table_markdown(report)}\n\n"
            f"Tolerance: {report.get('tolerance') or parity.TOLERANCE_WORDS}. Times are for one photo on this "
            f"machine's CPU.\n\n"
            f"In the zip: {', '.join(sorted(p.name for p in result.folder.iterdir()))}. Classify photos with "
            f"`pip install -r requirements.txt` then `python predict.py photo.jpg` (or a folder), or in your own "
            f"code:\n\n{FORMATS[result.format].usage}")


def export_model(choice: str, run_dir: str | None, user: str | None = None, progress=None, *,
                 runner: JobRunner):
    """file (the zip to download, or None) and message (with the parity figures)."""
    source = model_path(run_dir, user, runner=runner)
    if source is None:
        return {"file": None, "message": "**No trained model yet.** Train one in step 3 first."}
    fmt = format_key(choice)
    run = source.parent
    scratch = studio_scratch.new_folder("export-")
    name = f"{run.name}-{fmt}"
    report = (lambda fraction, words: progress(fraction, desc=words)) if progress else None
    try:
        result = bundle.export_run(run, fmt, scratch / name, zip_path=scratch / f"{name}.zip", progress=report)
    except (ModelFileError, bundle.ExportError) as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        return {"file": None, "message": f"**Export failed:** {html.escape(str(exc))}"}
    message = result_markdown(result, run.name)
    shutil.rmtree(result.folder, ignore_errors=True)  # everything is in the zip
    return {"file": str(result.zip_path), "message": message}


def render() -> SimpleNamespace:
    gr.Markdown("Download the model to use it in your own code, service or device. Every export is first "
                "checked against the trained model on your validation photos.")
    target = gr.Markdown(NO_MODEL, elem_id="export-target")
    # shown once a model exists (readiness); the download box once there is a file in it
    with gr.Column(elem_classes=classes_if(False), elem_id="export-ready") as ready:
        fmt = gr.Radio(CHOICES, value=DEFAULT, label="Format", elem_id="export-format")
        gr.Markdown(format_help(), elem_classes="ts-help")
        button = gr.Button("Export", variant="primary")
        message = gr.Markdown("", elem_id="export-message")
        file = gr.File(label="Download (one zip)", interactive=False, elem_id="export-file", visible=False)
    return SimpleNamespace(format=fmt, button=button, file=file, message=message, target=target, ready=ready)


def bind(ui: SimpleNamespace, run_dir: gr.State, runner: JobRunner) -> None:
    def export_as_user(request: gr.Request, choice, folder, progress=gr.Progress()):
        return export_model(choice, folder, user_of(request), progress, runner=runner)

    # the download box shows only with a file in it (a private follow-up: the API returns plain values)
    ui.button.click(**wire(export_as_user, [ui.format, run_dir], **of(ui, "file", "message")),
                    api_name="export_model").then(
        lambda file: gr.File(visible=shown_if(bool(file))), ui.file, ui.file, api_visibility="private",
        show_progress="hidden")
    # readiness (what the step shows before a model exists) is wired in app.py: it follows the tabs too
