"""Open any model file the studio wrote, with the runtime that format is meant for.

The studio model file loads through timm, TorchScript through `torch.jit`, ONNX
(float or int8) through onnxruntime, TFLite through the LiteRT interpreter: the parity check and `studio predict` run
each export the way its users will. The format is read from the file's content,
not its name, and a file that is damaged, foreign or does not match its own
description (class count, input size) is refused with a `ModelFileError` that
says which, instead of failing later on the first image.
"""
from __future__ import annotations

import json
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from studio import modelfile
from studio.export.formats import ONNX, SAFETENSORS, TFLITE, TORCHSCRIPT, model_files

TORCHSCRIPT_META = "transfer_studio.json"   # extra file inside a TorchScript archive
ONNX_META = modelfile.METADATA_KEY          # key in an ONNX file's metadata_props
EXPORT_DESCRIPTION = "model.json"           # marks a folder or zip as a studio export
MODEL_FILES = model_files()                 # every format's files, the studio model file first


def sniff(path: Path) -> str:
    """The format of a model file from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:4] == b"PK\x03\x04":
        return TORCHSCRIPT
    if len(head) >= 9 and head[8:9] == b"{":   # 8-byte header length, then the JSON header
        return SAFETENSORS
    if head[:1] == b"\x08":                     # protobuf field 1 (ir_version): an ONNX ModelProto
        return ONNX
    if head[4:8] == b"TFL3":                    # the TFLite flatbuffer's file identifier
        return TFLITE
    raise modelfile.ModelFileError(f"{Path(path).name} is not a readable model file "
                                   "(not safetensors, TorchScript, ONNX or TFLite).")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else exc.__class__.__name__


def _description(text: str | None, path: Path) -> dict:
    if not text:
        raise modelfile.ModelFileError(f"{path.name} carries no class names or preprocessing "
                                       "(it was not exported by the studio).")
    try:
        meta = json.loads(text)
        usable = isinstance(meta["classes"], list) and int(meta["preprocessing"]["input_size"]) > 0
    except (ValueError, KeyError, TypeError):
        usable = False
    if not usable:
        raise modelfile.ModelFileError(f"{path.name} has a damaged description (class names or preprocessing).")
    return meta


class OnnxModel:
    """An ONNX session that takes and gives torch tensors, like the torch formats."""

    def __init__(self, path: Path):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no optimizer chatter on stderr
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (pybind) exception types
            raise modelfile.ModelFileError(f"{path.name} is not a readable ONNX model ({_first_line(exc)}).") from exc
        self.meta = _description(self.session.get_modelmeta().custom_metadata_map.get(ONNX_META), path)
        self.input = self.session.get_inputs()[0].name
        self.pixels_in = self.session.get_inputs()[0].type == "tensor(uint8)"   # the normalisation is inside
        self.runtime = f"onnxruntime {onnxruntime.__version__}"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().float().numpy())
        if self.pixels_in:
            array = normalised_to_pixels(array, self.meta["preprocessing"])
        return torch.from_numpy(self.session.run(None, {self.input: array})[0])


def normalised_to_pixels(batch: np.ndarray, prep: dict) -> np.ndarray:
    """A normalised float batch back to the uint8 pixels it was made from (exact: the crop was uint8), for a
    model that takes pixels (formats 'onnx-uint8')."""
    mean = np.asarray(prep["mean"], dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
    std = np.asarray(prep["std"], dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
    return np.ascontiguousarray(np.clip(np.rint(batch * std + mean), 0, 255).astype(np.uint8))


def load_torchscript(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    extra = {TORCHSCRIPT_META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's notice that torch.export exists
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # RuntimeError, or torch's own error types for a damaged archive
        raise modelfile.ModelFileError(f"{Path(path).name} is not a readable TorchScript file "
                                       f"({_first_line(exc)}).") from exc
    return module.eval(), _description(extra[TORCHSCRIPT_META], Path(path))


def load_tflite(path: Path):
    """A .tflite file in the LiteRT interpreter, with the description it carries."""
    from studio.export.litert import TfliteModel, read_description, runtime_missing
    if runtime_missing():
        raise modelfile.ModelFileError(f"{path.name} is a TFLite model: its runtime is not installed here "
                                       "(pip install ai-edge-litert).")
    try:
        model, text = TfliteModel(path), read_description(path)
    except (ValueError, RuntimeError) as exc:   # LiteRT's errors for a damaged flatbuffer
        raise modelfile.ModelFileError(f"{path.name} is not a readable TFLite model ({_first_line(exc)}).") from exc
    return model, _description(text, path)


def _check_outputs(model, meta: dict, path: Path) -> None:
    """One forward pass at the stated input size: the scores must be one per named class."""
    size = int(meta["preprocessing"]["input_size"])
    try:
        with torch.no_grad():
            width = model(torch.zeros(1, 3, size, size)).shape[-1]
    except Exception as exc:  # the runtime's own error for a wrong input shape
        raise modelfile.ModelFileError(f"{path.name} does not accept the {size} px input its description "
                                       f"states ({_first_line(exc)}).") from exc
    if width != len(meta["classes"]):
        raise modelfile.ModelFileError(f"{path.name} gives {width} scores but its description names "
                                       f"{len(meta['classes'])} classes: the file does not match its description.")


def open_model(path: str | Path, device: str = "cpu") -> tuple[object, dict, str, str]:
    """(callable on a float batch -> logits, description, format, runtime in words) for a model file."""
    path = Path(path)
    if not path.is_file():
        raise modelfile.ModelFileError(f"{path} does not exist.")
    kind = sniff(path)
    if kind == SAFETENSORS:
        model, meta = modelfile.load(path, device)
        return model, meta, kind, f"timm {_version('timm')} + torch {torch.__version__}"
    if kind == TORCHSCRIPT:
        model, meta = load_torchscript(path)
        runtime = f"torch.jit {torch.__version__}"
    elif kind == TFLITE:
        model, meta = load_tflite(path)
        runtime = model.runtime
    else:
        model = OnnxModel(path)
        meta, runtime = model.meta, model.runtime
    _check_outputs(model, meta, path)
    return model, meta, kind, runtime


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


def resolve(path: str | Path) -> Path:
    """A model file from what a person may point at: the file, an export's folder or its zip.

    An export folder or zip holds `model.json`; its first model file in MODEL_FILES
    order is used (the studio model file when present: the trained weights as they are).
    """
    path = Path(path)
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        raise modelfile.ModelFileError(f"{path} holds no model file (looked for {', '.join(MODEL_FILES)}).")
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if EXPORT_DESCRIPTION in names:
                folder = Path(tempfile.mkdtemp(prefix="studio-export-"))
                wanted = [n for n in names if n in MODEL_FILES or n == EXPORT_DESCRIPTION]
                try:
                    archive.extractall(folder, members=wanted)
                except (zipfile.BadZipFile, OSError, zlib.error) as exc:
                    raise modelfile.ModelFileError(f"{path.name} is a damaged export zip ({exc}).") from exc
                return resolve(folder)
    return path
