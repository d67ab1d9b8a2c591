"""The converters: the run's model file to the files people deploy (what each format is: `formats`).

Every exported file describes itself (class names, preprocessing, backbone) the
way the studio model file does: TorchScript as an extra file in its archive,
ONNX in its metadata_props, so a file that travels alone can still be used
(see `runtimes`, which opens them, and `bundle`, which packs and checks them).
Each is written beside its target as `.partial` and renamed into place when complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from studio import calibration, modelfile
from studio.export.formats import OPSET, export_description
from studio.export.runtimes import ONNX_META, TORCHSCRIPT_META

ONNX_INPUT, ONNX_OUTPUT = "image", "logits"


def _atomic(out_path: Path) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path.with_name(out_path.name + ".partial")


def copy_model_file(model_path: Path, out_path: Path) -> Path:
    """The studio model file as it is (safetensors weights, JSON description in its header)."""
    modelfile.read_metadata(model_path)
    partial = _atomic(out_path)
    shutil.copyfile(model_path, partial)
    os.replace(partial, out_path)
    return Path(out_path)


def export_torchscript(model_path: Path, out_path: Path) -> Path:
    """Trace the model on CPU and save it with its description as an extra file."""
    model, meta = modelfile.load(model_path, "cpu")
    size = meta["preprocessing"]["input_size"]
    partial = _atomic(out_path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's notice that torch.export exists
        traced = torch.jit.trace(model, torch.zeros(1, 3, size, size))
        torch.jit.save(traced, str(partial),
                       _extra_files={TORCHSCRIPT_META: json.dumps(export_description(meta, "torchscript"))})
    os.replace(partial, out_path)
    return Path(out_path)


class PixelsIn(torch.nn.Module):
    """The model taking uint8 pixels [N, 3, size, size] (the photo resized and centre-cropped, nothing else):
    the scaling to 0-1 and the mean/std normalisation happen inside the graph, so an app need not do them."""

    def __init__(self, model: torch.nn.Module, mean, std):
        super().__init__()
        self.model = model
        mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std))
        self.register_buffer("shift", mean / std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels.float() * self.scale - self.shift)


def export_onnx(model_path: Path, out_path: Path, fmt: str = "onnx", pixels_in: bool = False) -> Path:
    """ONNX with the batch size left free, through torch's current (torch.export-based) exporter, or the
    TorchScript-based one where that cannot take the model; the description says which. With `pixels_in`,
    the input is uint8 pixels and the normalisation is inside the graph (`PixelsIn`)."""
    model, meta = modelfile.load(model_path, "cpu")
    size = meta["preprocessing"]["input_size"]
    partial = _atomic(out_path)
    example = torch.zeros(1, 3, size, size)
    if pixels_in:
        model = PixelsIn(model, meta["preprocessing"]["mean"], meta["preprocessing"]["std"]).eval()
        example = example.to(torch.uint8)
    exporter = _export_graph(model, example, partial)
    description = export_description(meta, fmt)
    describe_onnx(partial, {**description, "export": {**description["export"], "exporter": exporter,
                                                      "input": "uint8 pixels" if pixels_in else "float"}})
    os.replace(partial, out_path)
    return Path(out_path)


def _export_graph(model: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Write `model` as ONNX to `path`; returns the exporter used, in words."""
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=True, opset_version=OPSET, verbose=False,
                          external_data=False,   # one self-contained file (the weights inside)
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
        return "torch.export-based (torch.onnx.export, dynamo=True)"
    except Exception as exc:  # onnxscript missing, or an operator torch.export cannot trace: the older exporter
        reason = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else exc.__class__.__name__
    Path(path).unlink(missing_ok=True)
    with warnings.catch_warnings():
        # only the notice that this is the legacy exporter: chosen here on purpose, as the fallback
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="The feature will be removed")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT], do_constant_folding=True,
                          dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}})
    return f"TorchScript-based (torch.export could not take the model: {reason})"


def describe_onnx(path: Path, meta: dict) -> None:
    """Write the description into the ONNX file's metadata_props and check the result is valid ONNX.

    Besides the studio's own key, the keys other tools read: `names` ({index: class}) and `imgsz`
    ([height, width]) with `task` "classify", as Ultralytics' exports carry them, and plain
    `class_names` / `input_size` / `mean` / `std` for anything else; a multi-label model adds `multi_label`,
    `activation` "sigmoid", `temperature` and `thresholds`, since no tool would guess a yes/no per label."""
    import onnx
    proto = onnx.load(str(path))
    prep = meta["preprocessing"]
    size = int(prep["input_size"])
    conventions = {ONNX_META: json.dumps(meta),
                   "names": json.dumps({str(i): c for i, c in enumerate(meta["classes"])}),
                   "imgsz": json.dumps([size, size]), "task": "classify",
                   "class_names": json.dumps(meta["classes"]), "input_size": json.dumps([1, 3, size, size]),
                   "mean": json.dumps(list(prep["mean"])), "std": json.dumps(list(prep["std"]))}
    if modelfile.is_multilabel(meta):
        conventions.update({"multi_label": "true", "activation": "sigmoid",
                            "temperature": json.dumps(calibration.temperature_of(meta)),
                            "thresholds": json.dumps(modelfile.thresholds_of(meta))})
    kept = [p for p in proto.metadata_props if p.key not in conventions]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in conventions.items():
        proto.metadata_props.add(key=key, value=value)
    named = "multi-label, labels" if modelfile.is_multilabel(meta) else "classes"
    proto.doc_string = f"Transfer Studio export: {meta['backbone']}, {named} {', '.join(meta['classes'])}"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


class _Calibration:
    """Feeds calibration batches to onnxruntime's quantizer (its CalibrationDataReader protocol)."""

    def __init__(self, batch: np.ndarray, size: int = 8):
        self._chunks = iter([{ONNX_INPUT: batch[i:i + size]} for i in range(0, len(batch), size)])

    def get_next(self):
        return next(self._chunks, None)

    def rewind(self):  # pragma: no cover - called by some calibrators only
        pass


def quantize_onnx(onnx_path: Path, out_path: Path, calibration: np.ndarray, fmt: str) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) with ranges measured on `calibration`, described as `fmt`.

    Static beats dynamic quantization for convolutional networks: dynamic leaves
    convolutions' activations in float (or quantizes them per batch at run time),
    while static calibrates every activation once on real photos (see the README
    for the numbers on the example run).

    Weights use 7 bits (`reduce_range`) and activations are signed: the file runs on whatever
    CPU the user deploys to, and on x86 CPUs without VNNI (most AVX2 machines, e.g. AMD EPYC
    before Zen 4) onnxruntime's 8-bit integer products saturate. There, full-range weights with
    uint8 activations gave 17/20 of the trained model's answers; this setting gives 20/20, and
    costs nothing measurable on CPUs with VNNI.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    import onnx
    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}[ONNX_META])
    partial = _atomic(out_path)
    with tempfile.TemporaryDirectory(prefix="studio-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(partial), _Calibration(calibration.astype(np.float32)),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    describe_onnx(partial, {**meta, "export": {**meta.get("export", {}), "format": fmt,
                                               "quantization": "static int8, QDQ, per-channel 7-bit weights, "
                                                               "signed activations, "
                                                               f"{len(calibration)} calibration photos"}})
    os.replace(partial, out_path)
    return Path(out_path)
