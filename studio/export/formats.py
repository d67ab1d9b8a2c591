"""The export formats: one entry each, carrying everything the rest of the studio asks about a format.

The Export page (its choices, sizes and code snippets), the model card, `studio export`,
the bundle (which files, predict.py's requirements), the parity check (which tolerance)
and `runtimes` (which file names an export folder may hold) all read this table, so a
new format is one `Format` entry here plus its writer in `writers`.

This module imports nothing heavy: the command line builds its `--format` choices from
it without loading torch, timm or onnx; the writers are imported when one is called.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

OPSET = 18  # ONNX opset: torch.export's exporter's first; read by onnxruntime >= 1.14, OpenVINO, TensorRT 8.6+
SAFETENSORS, TORCHSCRIPT, ONNX, TFLITE = "safetensors", "torchscript", "onnx", "tflite"  # runtimes' kinds
FLOAT, INT8 = "float", "int8"  # parity tolerances (see parity)
DEFAULT = "bundle"


@dataclass(frozen=True)
class WriteJob:
    """What a writer gets: the trained model file, the export folder and the run (for calibration photos)."""
    format: Format
    model_path: Path
    folder: Path
    run_dir: Path
    progress: Callable[[float, str], None]

    @property
    def targets(self) -> list[Path]:
        """The format's model files in the export folder, in `Format.files` order."""
        return [self.folder / name for name in self.format.files]


@dataclass(frozen=True)
class Format:
    key: str
    title: str
    label: str                     # the choice on the Export page
    files: tuple[str, ...]         # model files this export holds
    runtimes: tuple[str, ...]      # the kind of runtime that opens each of `files` (runtimes.open_model)
    writer: Callable[[WriteJob], list[Path]]  # writes `files` into the folder, returns their paths
    tolerance: str                 # parity bounds: FLOAT (same answers) or INT8 (a small accuracy change)
    opset: int | None              # ONNX opset recorded in the file's description (None: not ONNX)
    size: str                      # how big it is, in words
    runs_with: str                 # what runs it, in plain words
    use_it: str                    # where it is the right choice
    usage: str                     # a few lines of code that load it (the Export page)
    requirements: tuple[str, ...]  # what predict.py needs for it


def _writer(name: str) -> Callable[[WriteJob], list[Path]]:
    """`writers.<name>`, imported on the first call (the converters load torch, timm and onnx)."""
    def write(job: WriteJob) -> list[Path]:
        from studio.export import writers
        return getattr(writers, name)(job)
    write.__name__ = write.__qualname__ = name
    return write


ONNX_REQUIREMENTS = ("onnxruntime>=1.16", "numpy>=1.24", "pillow>=10")
TFLITE_REQUIREMENTS = ("ai-edge-litert>=2.3", "numpy>=1.24", "pillow>=10")
TFLITE_USAGE = '''```python
from ai_edge_litert.interpreter import Interpreter   # pip install ai-edge-litert (Android/iOS: the LiteRT runtime)
model = Interpreter(model_path="{file}")
model.allocate_tensors()
image, logits = model.get_input_details()[0]["index"], model.get_output_details()[0]["index"]
model.set_tensor(image, photo)   # photo: float32 [1, 3, size, size], preprocessed as predict.py does
model.invoke()
scores = model.get_tensor(logits)   # the class names and preprocessing: the file's "transfer_studio" metadata
```'''

BUNDLE_USAGE = '''```python
import json, timm
from safetensors import safe_open
from safetensors.torch import load_file

with safe_open("model.safetensors", "pt") as f:
    meta = json.loads(f.metadata()["transfer_studio"])
model = timm.create_model(meta["backbone"], num_classes=len(meta["classes"]))
model.load_state_dict(load_file("model.safetensors"))
model.eval()   # meta["preprocessing"] has input size, crop, mean and std
```'''

FORMATS: dict[str, Format] = {f.key: f for f in (
    Format("bundle", "Studio bundle", "Studio bundle (everything: weights, ONNX copy, model card, predict.py)",
           ("model.safetensors", "model.onnx"), (SAFETENSORS, ONNX), _writer("write_bundle"), FLOAT, OPSET,
           "about twice the model file (the weights plus an ONNX copy)",
           "the weights load with timm + PyTorch (or back into the studio); predict.py runs the ONNX copy "
           "with onnxruntime",
           "the master copy to keep: reload it in Python, fine-tune it further, or run it anywhere",
           BUNDLE_USAGE, ONNX_REQUIREMENTS),
    Format("torchscript", "TorchScript", "TorchScript (.pt: PyTorch alone)",
           ("model.torchscript.pt",), (TORCHSCRIPT,), _writer("write_torchscript"), FLOAT, None,
           "about the size of the model file",
           "PyTorch alone (torch.jit.load, no timm, no studio), in Python or C++ (LibTorch)",
           "services that already run PyTorch",
           '''```python
import torch
model = torch.jit.load("model.torchscript.pt")   # no timm, no studio
logits = model(batch)   # batch: float [N, 3, size, size], preprocessed as predict.py does
```''',
           ("torch>=2.0", "numpy>=1.24", "pillow>=10")),
    Format("onnx", "ONNX", "ONNX (.onnx: any language, no PyTorch)",
           ("model.onnx",), (ONNX,), _writer("write_onnx"), FLOAT, OPSET,
           "about the size of the model file",
           f"onnxruntime (Python, C++, C#, Java, JavaScript), OpenVINO or TensorRT; opset {OPSET}, any batch size",
           "web services and apps without PyTorch, in any language",
           '''```python
import onnxruntime as ort
session = ort.InferenceSession("model.onnx")
logits = session.run(None, {"image": batch})[0]   # batch: float32 [N, 3, size, size], any N
```''',
           ONNX_REQUIREMENTS),
    Format("onnx-uint8", "ONNX, pixels in", "ONNX with pixels in (.onnx: uint8 photo in, the normalisation inside)",
           ("model.uint8.onnx",), (ONNX,), _writer("write_onnx_pixels"), FLOAT, OPSET,
           "about the size of the model file",
           f"onnxruntime, OpenVINO, TensorRT (opset {OPSET}, any batch size), like ONNX; its input is the photo's "
           "pixels as uint8 [N, 3, size, size], resized and centre-cropped: the scaling and mean/std are inside",
           "apps that should not re-implement the normalisation (mobile, browser, C++)",
           '''```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("model.uint8.onnx")
logits = session.run(None, {"image": pixels})[0]   # pixels: uint8 [N, 3, size, size], resized + centre-cropped
```''',
           ONNX_REQUIREMENTS),
    Format("onnx-int8", "ONNX int8 (quantized)", "ONNX int8 (.onnx: about 4x smaller, for small devices)",
           ("model.int8.onnx",), (ONNX,), _writer("write_onnx_int8"), INT8, OPSET,
           "about a quarter of the model file",
           f"onnxruntime, like ONNX; weights and activations in 8-bit integers (opset {OPSET})",
           "small devices (Raspberry Pi, phones, edge boxes): about 4x smaller, and its accuracy change is "
           "shown before you download",
           '''```python
import onnxruntime as ort
session = ort.InferenceSession("model.int8.onnx")   # takes and gives float32, like model.onnx
logits = session.run(None, {"image": batch})[0]
```''',
           ONNX_REQUIREMENTS),
    Format("tflite", "TFLite (LiteRT)", "TFLite (.tflite: Android, iOS, microcontrollers with LiteRT)",
           ("model.tflite",), (TFLITE,), _writer("write_tflite"), FLOAT, None,
           "about the size of the model file",
           "the LiteRT runtime (formerly TensorFlow Lite): Android, iOS, Linux boards, Python (ai-edge-litert); "
           "one photo per call",
           "phone and embedded apps",
           TFLITE_USAGE.format(file="model.tflite"), TFLITE_REQUIREMENTS),
    Format("tflite-int8", "TFLite int8 (quantized)",
           "TFLite int8 (.tflite: about 4x smaller, 8-bit weights, for phones and small boards)",
           ("model.int8.tflite",), (TFLITE,), _writer("write_tflite_int8"), INT8, None,
           "about a quarter of the model file",
           "the LiteRT runtime, like TFLite; weights in 8-bit integers, activations float (dynamic-range "
           "quantization), so it takes and gives float32",
           "phones and small boards where size matters; its accuracy change is shown before you download",
           TFLITE_USAGE.format(file="model.int8.tflite"), TFLITE_REQUIREMENTS),
)}


def export_description(meta: dict, fmt: str) -> dict:
    """The model's own description plus how this file was made."""
    return {**meta, "export": {"format": fmt, "opset": FORMATS[fmt].opset}}


def model_files() -> tuple[str, ...]:
    """Every model file name an export may hold, in the order a folder is searched: the studio model file
    (the weights as they are) first, then ONNX before TorchScript as predict.py looks (registry order within)."""
    preference = (SAFETENSORS, ONNX, TORCHSCRIPT, TFLITE)
    pairs = sorted((pair for f in FORMATS.values() for pair in zip(f.files, f.runtimes)),
                   key=lambda pair: preference.index(pair[1]) if pair[1] in preference else len(preference))
    return tuple(dict.fromkeys(name for name, _ in pairs))
