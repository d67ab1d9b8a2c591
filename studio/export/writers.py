"""One writer per format (named by its `formats` entry): the steps, with progress, that make its model files.

Each takes a `formats.WriteJob` and returns the paths of `job.targets`, written
atomically by the converters.
"""
from __future__ import annotations

from pathlib import Path

from studio import modelfile
from studio.runs import history
from studio.export import converters, parity
from studio.export.formats import WriteJob

CALIBRATION_IMAGES = 64  # training photos that set the int8 ranges


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why and what to do."""


def write_bundle(job: WriteJob) -> list[Path]:
    weights, onnx_copy = job.targets
    job.progress(0.05, "Copying the model file")
    files = [converters.copy_model_file(job.model_path, weights)]
    job.progress(0.15, "Converting to ONNX (for predict.py)")
    return files + [converters.export_onnx(job.model_path, onnx_copy, fmt=job.format.key)]


def write_torchscript(job: WriteJob) -> list[Path]:
    job.progress(0.1, "Converting to TorchScript")
    return [converters.export_torchscript(job.model_path, job.targets[0])]


def write_onnx(job: WriteJob) -> list[Path]:
    job.progress(0.1, "Converting to ONNX")
    return [converters.export_onnx(job.model_path, job.targets[0], fmt=job.format.key)]


def _write_tflite(job: WriteJob, int8: bool) -> list[Path]:
    from studio.export import litert
    from studio.export.formats import export_description
    job.progress(0.1, "Converting to TFLite with LiteRT's converter" + (" (int8 weights)" if int8 else ""))
    meta = modelfile.read_metadata(job.model_path)
    try:
        versions = litert.convert(job.model_path, job.targets[0], int8, export_description(meta, job.format.key))
    except litert.ConverterMissing as exc:
        raise ExportError(str(exc)) from None
    except RuntimeError as exc:
        raise ExportError(f"{exc}. ONNX exports of this model still work.") from None
    job.progress(0.6, f"Converted (litert-torch {versions.get('litert-torch', '?')})")
    return [job.targets[0]]


def write_tflite(job: WriteJob) -> list[Path]:
    return _write_tflite(job, int8=False)


def write_tflite_int8(job: WriteJob) -> list[Path]:
    return _write_tflite(job, int8=True)


def write_onnx_pixels(job: WriteJob) -> list[Path]:
    job.progress(0.1, "Converting to ONNX (uint8 pixels in, the normalisation inside)")
    return [converters.export_onnx(job.model_path, job.targets[0], fmt=job.format.key, pixels_in=True)]


def calibration_photos(run_dir: Path, meta: dict, count: int = CALIBRATION_IMAGES) -> parity.Photos:
    """Up to `count` training photos, spread evenly over the run's list (so over every class; for a multi-label
    model over every photo, whatever its labels)."""
    rows = parity.known_rows(history.run_samples(run_dir, "train"), meta)
    step = max(1, len(rows) // count)
    return parity.photos_for(rows[::step][:count], meta)


def write_onnx_int8(job: WriteJob) -> list[Path]:
    job.progress(0.05, "Reading training photos to calibrate the int8 ranges")
    calibration = calibration_photos(job.run_dir, modelfile.read_metadata(job.model_path))
    if len(calibration.labels) == 0:
        raise ExportError("The int8 export measures its value ranges on the run's training photos, and none of "
                          "them can be read any more (moved or deleted). Choose ONNX instead, or train again.")
    job.progress(0.15, "Converting to ONNX")
    scratch = job.folder / "model.float.onnx.partial"
    try:
        converters.export_onnx(job.model_path, scratch, fmt=job.format.key)
        job.progress(0.25, f"Quantizing to int8 ({len(calibration.labels)} calibration photos)")
        return [converters.quantize_onnx(scratch, job.targets[0], calibration.batch.numpy(),
                                          job.format.key)]
    finally:
        scratch.unlink(missing_ok=True)
