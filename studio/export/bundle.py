"""One export of a run, ready to hand over: its model file(s), checked, with what it takes to use them.

The folder (and its zip, the page's one download) holds:

    model.safetensors / model.torchscript.pt / model.onnx / model.int8.onnx   as the format asks
    model.json        classes, preprocessing, backbone, training summary, export details, parity figures
    README.md         the model card: YAML for the Hub, then data, model, recipe, results, limits, licence
    config.json       timm's description (architecture, label_names, preprocessing): with model.safetensors,
                      timm.create_model("local-dir:...") and the Hub take the folder as it is (see hub);
                      formats without model.safetensors keep these files in a timm/ subfolder
    predict.py        classifies a photo or a folder with only numpy, Pillow and the format's runtime
    requirements.txt  what predict.py needs for this format

Used by the Export step and `studio export` alike, for the latest run or any past one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from studio import modelfile
from studio.export import hub, modelcard, parity
from studio.export.formats import FORMATS, WriteJob, export_description
from studio.export.writers import ExportError
from studio.runs import MODEL_FILE, history
from studio.runs.folder import FAMILIARITY_FILE

TEMPLATE = Path(__file__).resolve().parent / "templates" / "predict.py"
EARLIER_FILES = {hub.CONFIG_FILE, hub.CARD_FILE, "MODEL_CARD.md"}   # MODEL_CARD.md: the card's name until 2026-12


@dataclass
class ExportResult:
    format: str
    folder: Path
    model_files: list[Path]
    parity: dict
    zip_path: Path | None = None

    @property
    def flagged(self) -> bool:
        """True when a file differs from the trained model beyond the tolerance."""
        return not self.parity["ok"]

    def verdict(self) -> str:
        """One sentence for a person: does this download behave like the trained model?"""
        rows = self.parity["exports"]
        if not self.parity["checked"]:
            return ("Not checked: the run's validation photos can no longer be read (moved or deleted), "
                    "so the export could not be compared with the trained model.")
        if len(rows) > 1 and len({row["verdict"] for row in rows}) == 1:  # the bundle: say it once
            sentence = f"{' and '.join(row['file'] for row in rows)} each {rows[0]['verdict']}"
        else:
            sentence = "; ".join(f"{row['file']} {row['verdict']}" for row in rows)
        return ("⚠ " if self.flagged else "") + sentence + "."


def model_path_of(run_dir: Path) -> Path:
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise ExportError(f"Run {Path(run_dir).name} has no model file: it ended before its first epoch finished.")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path, zip_path: str | Path | None = None,
               progress: Callable[[float, str], None] | None = None, check_data: bool = True) -> ExportResult:
    """Export the run's best model as `fmt` into `out_dir`, check it, and (with `zip_path`) zip it all."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    progress = progress or (lambda fraction, words: None)
    run_dir, folder = Path(run_dir), Path(out_dir)
    model_path = model_path_of(run_dir)
    meta = modelfile.read_metadata(model_path)
    folder.mkdir(parents=True, exist_ok=True)
    for name in {name for f in FORMATS.values() for name in f.files} | EARLIER_FILES:  # an earlier export here
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / hub.SUBFOLDER, ignore_errors=True)
    files = FORMATS[fmt].writer(WriteJob(FORMATS[fmt], model_path, folder, run_dir, progress))
    _copy_familiarity(model_path, folder, files)

    progress(0.4, "Reading the validation photos")
    photos = parity.validation_photos(run_dir, meta)
    report = parity.check(model_path, files, photos, lambda f, words: progress(0.45 + 0.3 * f, words),
                          test=parity.test_photos(run_dir, meta))

    progress(0.8, "Writing the model card")
    description = {**export_description(meta, fmt),
                   "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
                   "parity": report}
    (folder / "model.json").write_text(json.dumps(description, indent=2))
    details = history.load_run(run_dir.name, root=run_dir.parent)
    hub.write_folder(model_path, folder, meta, details,
                     modelcard.build(run_dir, meta, fmt, report, check_data, details=details))
    shutil.copyfile(TEMPLATE, folder / "predict.py")
    (folder / "requirements.txt").write_text("\n".join(FORMATS[fmt].requirements) + "\n")
    result = ExportResult(fmt, folder, files, report)
    if zip_path is not None:
        progress(0.95, "Packing the zip")
        result.zip_path = zip_folder(folder, Path(zip_path))
    progress(1.0, "Done")
    return result


def _copy_familiarity(model_path: Path, folder: Path, files: list[Path]) -> None:
    """The training photos' reference (features, not photos) beside an exported studio model file, so
    `studio predict` and `studio shift` on the export can still tell unfamiliar photos."""
    reference = Path(model_path).with_name(FAMILIARITY_FILE)
    (folder / FAMILIARITY_FILE).unlink(missing_ok=True)
    if reference.is_file() and any(p.name == MODEL_FILE for p in files):
        shutil.copyfile(reference, folder / FAMILIARITY_FILE)


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Every file of the export (and of its timm/ subfolder) in the zip, as laid out in the folder (model files
    are already compressed: stored)."""
    partial = zip_path.with_name(zip_path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                packed = zipfile.ZIP_DEFLATED if path.suffix in (".md", ".json", ".py", ".txt") else zipfile.ZIP_STORED
                archive.write(path, path.relative_to(folder).as_posix(), compress_type=packed)
    os.replace(partial, zip_path)
    return zip_path
