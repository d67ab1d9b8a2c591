"""Step 5, Export: download the trained model in a format to use elsewhere."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components.session import user_of
from components.try_step import model_path
from studio import export
from studio.modelfile import ModelFileError

FORMATS = {"Model file (.safetensors: weights + class names + preprocessing)": "model",
           "TorchScript (.pt: runs with PyTorch alone)": "torchscript"}

LOAD_SNIPPET = """```python
import json, timm
from safetensors import safe_open
from safetensors.torch import load_file

path = "model.safetensors"
with safe_open(path, "pt") as f:
    meta = json.loads(f.metadata()["transfer_studio"])
model = timm.create_model(meta["backbone"], num_classes=len(meta["classes"]))
model.load_state_dict(load_file(path))
model.eval()   # meta["preprocessing"] has input size, crop, mean and std
```"""


def export_model(choice: str, run_dir: str | None, user: str | None = None):
    """(file to download or None, message)."""
    source = model_path(run_dir, user)
    if source is None:
        return None, "**No trained model yet.** Train one in step 3 first."
    fmt = FORMATS.get(choice, "model")
    folder = Path(tempfile.mkdtemp(prefix="studio-export-"))
    try:
        if fmt == "model":
            target = folder / "model.safetensors"
            shutil.copyfile(source, target)
        else:
            target = export.export_torchscript(source, folder / "model.torchscript.pt")
    except ModelFileError as exc:
        return None, f"**Export failed:** {exc}"
    size = target.stat().st_size / 1e6
    return str(target), f"Ready: **{target.name}** ({size:.1f} MB). Load it like this:\n\n{LOAD_SNIPPET}"


def render() -> SimpleNamespace:
    gr.Markdown("Download the trained model to use it in your own code or service.")
    fmt = gr.Radio(list(FORMATS), value=list(FORMATS)[0], label="Format")
    button = gr.Button("Export", variant="primary")
    file = gr.File(label="Download", interactive=False)
    message = gr.Markdown("", elem_id="export-message")
    return SimpleNamespace(format=fmt, button=button, file=file, message=message)


def bind(ui: SimpleNamespace, run_dir: gr.State) -> None:
    def export_as_user(request: gr.Request, choice, folder):
        return export_model(choice, folder, user_of(request))

    ui.button.click(export_as_user, [ui.format, run_dir], [ui.file, ui.message], api_name="export_model")
