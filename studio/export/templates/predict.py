#!/usr/bin/env python3
"""Classify photos with a model exported by Transfer Studio, without the studio.

Needs numpy, Pillow and one runtime: onnxruntime for a .onnx file, torch for a
TorchScript .pt file, ai-edge-litert for a .tflite file (see requirements.txt beside this script). The model file
describes itself (class names, input size, crop, mean and std), and the
preprocessing below is the studio's own, step for step, so the answers are the
ones the studio gives:

    python predict.py photo.jpg                  # one photo
    python predict.py photos/ --top-k 2          # every photo in a folder (and its subfolders)
    python predict.py photos/ --json             # one JSON line per photo
    python predict.py photo.jpg --model other.onnx

A multi-label model (its description says "task": "multi-label") answers yes or no for each label:
each label's score is a sigmoid of its output, and the label is given when the score reaches that
label's threshold (tuned on the validation photos and stored in the file). For each photo it prints
every label given, with its score, then the likeliest labels that fell below their thresholds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

METADATA_KEY = "transfer_studio"
TORCHSCRIPT_META = "transfer_studio.json"
MODEL_NAMES = ("model.onnx", "model.uint8.onnx", "model.int8.onnx", "model.torchscript.pt", "model.tflite",
               "model.int8.tflite")  # looked for beside this script
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif",
                    ".ppm", ".pgm", ".pbm", ".pnm"}
try:  # iPhone photos (HEIC), when pillow-heif is installed
    import pillow_heif
    pillow_heif.register_heif_opener()
except ImportError:
    pass
BACKGROUND = (255, 255, 255)  # transparent pixels become white, as in the studio
BATCH = 16
MULTI_LABEL = "multi-label"
NEAR_MISSES = 3   # a multi-label answer also shows this many of the likeliest labels below their thresholds


class ModelError(Exception):
    """The model file cannot be used; the message says why."""


# ------------------------------------------------------------------ preprocessing

def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: EXIF rotation applied, 16-bit scaled, transparency on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        image = Image.fromarray((array * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, BACKGROUND)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image


def open_rgb(path: Path, draft: int) -> Image.Image:
    """Open an image file; JPEGs decode at reduced size when the resize would discard the detail anyway."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (draft, draft))
        image.seek(0)  # first frame of a GIF or multi-page TIFF
        image.load()
        return to_rgb(image)


def square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is `size` (bicubic), then take the centred square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def preprocess(path: Path, prep: dict) -> np.ndarray:
    """One image file to the model's input [3, size, size] float32: square, centre crop, normalise."""
    size = int(prep["input_size"])
    side = int(round(size / prep["crop_pct"]))
    pixels = np.array(square(open_rgb(path, side), side), dtype=np.uint8)
    top = left = (side - size) // 2
    crop = pixels[top:top + size, left:left + size].transpose(2, 0, 1).astype(np.float32)
    mean = np.asarray(prep["mean"], dtype=np.float32).reshape(3, 1, 1) * np.float32(255.0)
    std = np.asarray(prep["std"], dtype=np.float32).reshape(3, 1, 1) * np.float32(255.0)
    return (crop - mean) / std


# ------------------------------------------------------------------ models

class OnnxModel:
    """An .onnx file run by onnxruntime."""

    def __init__(self, path: Path):
        try:
            import onnxruntime
        except ImportError:
            raise ModelError("this is an ONNX model: install onnxruntime (pip install onnxruntime)") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path.name} is not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.meta = _parse_meta(text, path)
        self.input = self.session.get_inputs()[0].name
        self.pixels_in = self.session.get_inputs()[0].type == "tensor(uint8)"   # normalisation inside the model

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.pixels_in:   # back to the uint8 crop the normalised batch was made from (exactly)
            prep = self.meta["preprocessing"]
            mean = np.asarray(prep["mean"], dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
            std = np.asarray(prep["std"], dtype=np.float32).reshape(1, 3, 1, 1) * 255.0
            batch = np.clip(np.rint(batch * std + mean), 0, 255).astype(np.uint8)
        return self.session.run(None, {self.input: batch})[0]


class TorchScriptModel:
    """A TorchScript .pt file run by torch."""

    def __init__(self, path: Path):
        try:
            import torch
        except ImportError:
            raise ModelError("this is a TorchScript model: install torch (pip install torch)") from None
        self.torch = torch
        extra = {TORCHSCRIPT_META: ""}
        try:
            self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra).eval()
        except Exception as exc:  # torch raises RuntimeError or its own error types
            raise ModelError(f"{path.name} is not a readable TorchScript file ({str(exc).splitlines()[0][:200]})") from None
        self.meta = _parse_meta(extra[TORCHSCRIPT_META], path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.module(self.torch.from_numpy(batch)).float().numpy()


class TfliteModel:
    """A .tflite file run by the LiteRT interpreter, one photo per call (its batch is fixed at one)."""

    def __init__(self, path: Path):
        try:
            from ai_edge_litert import schema_py_generated as schema
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError("this is a TFLite model: install its runtime (pip install ai-edge-litert)") from None
        try:
            self.interpreter = Interpreter(model_path=str(path))
            self.interpreter.allocate_tensors()
            flat = schema.Model.GetRootAs(path.read_bytes(), 0)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path.name} is not a readable TFLite model ({str(exc).splitlines()[0][:200]})") from None
        entries = [flat.Metadata(i) for i in range(flat.MetadataLength())]
        text = next((bytes(flat.Buffers(e.Buffer()).DataAsNumpy()).decode() for e in entries
                     if e.Name() == METADATA_KEY.encode()), None)
        self.meta = _parse_meta(text, path)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        rows = []
        for photo in batch:
            self.interpreter.set_tensor(self.input, np.ascontiguousarray(photo[None], dtype=np.float32))
            self.interpreter.invoke()
            rows.append(self.interpreter.get_tensor(self.output).copy())
        return np.concatenate(rows)


def _parse_meta(text, path: Path) -> dict:
    if not text:
        raise ModelError(f"{path.name} carries no class names: it was not exported by Transfer Studio")
    try:
        meta = json.loads(text)
        usable = isinstance(meta["classes"], list) and int(meta["preprocessing"]["input_size"]) > 0
    except (ValueError, KeyError, TypeError):
        usable = False
    if not usable:
        raise ModelError(f"{path.name} has a damaged description (class names or preprocessing)")
    return meta


def load(path: Path):
    """The model in `path`, by its content: a zip archive is TorchScript, a TFL3 flatbuffer TFLite, anything
    else ONNX."""
    if not path.is_file():
        raise ModelError(f"{path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:4] == b"PK\x03\x04":
        model = TorchScriptModel(path)
    else:
        model = TfliteModel(path) if head[4:8] == b"TFL3" else OnnxModel(path)
    probe = np.zeros((1, 3, model.meta["preprocessing"]["input_size"],
                      model.meta["preprocessing"]["input_size"]), dtype=np.float32)
    try:
        outputs = model(probe).shape[-1]
    except Exception as exc:  # the runtime's own error for a wrong input shape
        raise ModelError(f"{path.name} does not accept the input its description states ({exc})") from None
    if outputs != len(model.meta["classes"]):
        raise ModelError(f"{path.name} gives {outputs} scores but its description names "
                         f"{len(model.meta['classes'])} classes: the file does not match its description")
    if multilabel(model.meta) and len(thresholds(model.meta)) != len(model.meta["classes"]):
        raise ModelError(f"{path.name} has a damaged description: {len(thresholds(model.meta))} thresholds for "
                         f"{len(model.meta['classes'])} labels")
    return model


def default_model() -> Path:
    here = Path(__file__).resolve().parent
    for name in MODEL_NAMES:
        if (here / name).is_file():
            return here / name
    raise ModelError(f"no model file beside predict.py (looked for {', '.join(MODEL_NAMES)}); use --model")


# ------------------------------------------------------------------ command line

def image_files(items: list[str]) -> list[Path]:
    files = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            files.append(path)
    return files


def temperature(meta: dict) -> float:
    """The temperature fitted on the validation photos when the model was trained (1 if none): dividing
    the scores by it makes the probabilities honest, the same as the studio shows."""
    value = (meta.get("calibration") or {}).get("temperature", 1.0)
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def multilabel(meta: dict) -> bool:
    """A model that says yes or no for each label (any number of them per photo), not one class per photo."""
    return meta.get("task") == MULTI_LABEL


def thresholds(meta: dict) -> list[float]:
    """A multi-label model's decision threshold per label, in class order (0.5 each if it has none)."""
    return [float(t) for t in meta.get("thresholds") or [0.5] * len(meta["classes"])]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits.astype(np.float64) / temperature
    shifted = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Each label's own score, as a multi-label model is trained: 1 / (1 + e^(-logit / T)), without overflow."""
    return np.exp(-np.logaddexp(0.0, -logits.astype(np.float64) / temperature))


def scores(model, logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities: softmax over the classes, or for a multi-label model each label's sigmoid."""
    return (sigmoid if multilabel(model.meta) else softmax)(logits, temperature(model.meta))


def answer(meta: dict, row: np.ndarray, top_k: int) -> dict:
    """One photo's answer: its `top` (class, probability) pairs; for a multi-label model also `labels` (every
    label at or above its threshold, likeliest first) and `near` (the likeliest labels below theirs)."""
    classes = meta["classes"]
    order = np.argsort(-row, kind="stable")
    out = {"top": [(classes[i], float(row[i])) for i in order[:top_k]]}
    if multilabel(meta):
        cut = thresholds(meta)
        out["labels"] = [(classes[i], float(row[i])) for i in order if row[i] >= cut[i]]
        out["near"] = [(classes[i], float(row[i])) for i in order if row[i] < cut[i]][:NEAR_MISSES]
    return out


def classify(model, files: list[Path], top_k: int):
    """Yield (file, answer or None, error or None) for each file, in order (answer: see `answer`)."""
    prep = model.meta["preprocessing"]
    for start in range(0, len(files), BATCH):
        ready, inputs = [], []
        for file in files[start:start + BATCH]:
            try:
                inputs.append(preprocess(file, prep))
                ready.append(file)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                yield file, None, f"not a readable image ({exc.__class__.__name__}: {exc})"
        if not inputs:
            continue
        for file, row in zip(ready, scores(model, model(np.stack(inputs)))):
            yield file, answer(model.meta, row, top_k), None


def as_json(file: Path, found: dict) -> str:
    """One JSON line: the top classes as `predictions`; a multi-label model's labels given as `labels`."""
    line = {"image": str(file), "predictions": [{"class": c, "probability": round(p, 5)} for c, p in found["top"]]}
    if "labels" in found:
        line["labels"] = [{"label": c, "probability": round(p, 5)} for c, p in found["labels"]]
    return json.dumps(line)


def as_text(file: Path, found: dict) -> str:
    """One line: the top classes; for a multi-label model the labels given, then those just below threshold."""
    if "labels" not in found:
        return f"{file}: " + ", ".join(f"{c} {p:.1%}" for c, p in found["top"])
    said = ", ".join(f"{c} {p:.1%}" for c, p in found["labels"]) or "none of the labels"
    near = ", ".join(f"{c} {p:.1%}" for c, p in found["near"])
    return f"{file}: {said}" + (f" (below threshold: {near})" if near else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify photos with a Transfer Studio export.")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--model", help="model file (default: the one beside this script)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line per image")
    args = parser.parse_args(argv)
    try:
        model = load(Path(args.model) if args.model else default_model())
    except ModelError as exc:
        print(f"predict.py: error: {exc}", file=sys.stderr)
        return 1
    status = 0
    for file, found, error in classify(model, image_files(args.images), max(1, args.top_k)):
        if error:
            print(f"predict.py: {file}: {error}", file=sys.stderr)
            status = 1
        else:
            print(as_json(file, found) if args.json else as_text(file, found))
    return status


if __name__ == "__main__":
    sys.exit(main())
