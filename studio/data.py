"""Read a dataset (folder or .zip) into a table of samples: path, label, split.

Layouts understood: class folders (`ants/`, `bees/`), and split folders
(`train/`, `val`|`valid`|`validation`, `test/`, each holding class folders),
either one possibly wrapped in a single top-level folder. Files that are not
usable images are skipped and listed with the reason; junk that operating
systems leave behind (`__MACOSX`, `.DS_Store`, hidden folders) never becomes a
class. The user's files are only read, never changed.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from studio import paths
from studio.imaging import is_image_name

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
MAX_ZIP_MEMBERS = int(os.environ.get("STUDIO_MAX_ZIP_MEMBERS", 200_000))
MAX_ZIP_BYTES = int(os.environ.get("STUDIO_MAX_ZIP_BYTES", 20 * 1024**3))


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message says what to do."""


@dataclass
class Dataset:
    root: Path
    samples: pd.DataFrame              # columns: path, label, split
    classes: list[str]
    skipped: list[dict] = field(default_factory=list)   # {"path", "reason"}
    split_source: str = "folders"      # "folders" or "auto" (stratified split made here)
    source: str = ""

    def counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns)."""
        table = self.samples.groupby(["label", "split"]).size().unstack(fill_value=0)
        table = table.reindex(index=self.classes, fill_value=0)
        return table[[s for s in ("train", "val", "test") if s in table.columns]]

    def split(self, name: str) -> pd.DataFrame:
        return self.samples[self.samples.split == name].reset_index(drop=True)

    def summary(self) -> dict:
        counts = self.counts()
        return {"root": str(self.root), "source": self.source, "classes": self.classes,
                "counts": {c: {s: int(counts.loc[c, s]) for s in counts.columns} for c in self.classes},
                "images": int(len(self.samples)), "split_source": self.split_source,
                "skipped": self.skipped}


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


# ------------------------------------------------------------------ zip files

def extract_zip(archive: Path, destination: Path | None = None) -> Path:
    """Extract a zip safely into the workspace and return the folder.

    Members that would land outside the folder (`..`, absolute paths), links and
    device files are never written; limits on member count and total size are
    checked before anything is extracted. The same archive is extracted once.
    """
    archive = Path(archive)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    destination = Path(destination or paths.uploads_dir() / f"{archive.stem[:40]}-{digest.hexdigest()[:12]}")
    if (destination / ".complete").exists():
        return destination
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{archive.name} is not a readable .zip file ({exc}).") from exc
    with zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DatasetError(f"The zip holds {len(members):,} entries; the limit is {MAX_ZIP_MEMBERS:,}.")
        total = sum(m.file_size for m in members)
        if total > MAX_ZIP_BYTES:
            raise DatasetError(f"The zip would unpack to {total / 1e9:.1f} GB; the limit is "
                               f"{MAX_ZIP_BYTES / 1e9:.1f} GB (set STUDIO_MAX_ZIP_BYTES to change it).")
        root = destination.resolve()
        partial = destination.with_name(destination.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for member in members:
            name = member.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            mode = member.external_attr >> 16
            if (member.is_dir() or not parts or name.startswith("/") or ".." in parts
                    or stat.S_IFMT(mode) not in (0, stat.S_IFREG)):  # links, devices, fifos
                continue
            target = (partial / Path(*parts)).resolve()
            if not str(target).startswith(str(partial.resolve()) + os.sep):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(partial, root)
    (destination / ".complete").touch()
    return destination


# ------------------------------------------------------------------ layout

def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _is_junk(p.name))


def _unwrap(folder: Path, flat: bool = False) -> Path:
    """Step into a single wrapping folder (`dataset/` inside the zip) if that is all there is.

    A folder of class folders is only a wrapper if it holds folders itself; for a
    flat layout (`flat`, class in the file name) any single folder is one.
    """
    while True:
        dirs = _visible_dirs(folder)
        files = [p for p in folder.iterdir() if p.is_file() and not _is_junk(p.name)]
        if (len(dirs) == 1 and not files and dirs[0].name.lower() not in SPLIT_NAMES
                and (flat or _visible_dirs(dirs[0]))):
            folder = dirs[0]
        else:
            return folder


def _scan_class_folders(folder: Path, split: str | None, rows: list, skipped: list) -> None:
    for class_dir in sorted(folder.iterdir()):
        if _is_junk(class_dir.name):
            skipped.append({"path": str(class_dir), "reason": "system or hidden file, not data"})
            continue
        if not class_dir.is_dir():
            skipped.append({"path": str(class_dir), "reason": "file outside a class folder"})
            continue
        for file in sorted(class_dir.rglob("*")):
            relative_parts = file.relative_to(class_dir).parts
            if any(_is_junk(part) for part in relative_parts):
                if file.is_file():
                    skipped.append({"path": str(file), "reason": "system or hidden file, not data"})
                continue
            if not file.is_file():
                continue
            reason = _unusable_reason(file)
            if reason:
                skipped.append({"path": str(file), "reason": reason})
            else:
                rows.append({"path": str(file), "label": class_dir.name, "split": split})


ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")


def _unusable_reason(file: Path) -> str | None:
    """Why a file cannot be used as an image (None if its header reads as one)."""
    if file.name.lower().endswith(ARCHIVE_SUFFIXES):
        return "archive inside the dataset: not opened (unpack it into class folders if it holds images)"
    if not is_image_name(file):
        return f"not an image file ({file.suffix or 'no extension'})"
    if file.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(file) as image:
            image.size  # header only; full decoding happens once, when pixels are cached
    except Image.DecompressionBombError:
        return "image is too large to open safely (possible decompression bomb)"
    except Exception as exc:
        return f"not a readable image ({exc.__class__.__name__})"
    return None


def stratified_split(labels: list[str], val_fraction: float, seed: int) -> list[str]:
    """Assign 'train' or 'val' per item, the same fraction from every class, reproducibly."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    split = ["train"] * len(labels)
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        n_val = round(len(members) * val_fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        for index in members[:n_val]:
            split[index] = "val"
    return split


FILENAME_COLUMNS = ("filename", "file", "image", "path", "filepath", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "target")


def _find_csv(folder: Path, depth: int = 3) -> Path | None:
    """A labels CSV at the top of the dataset, or inside its single wrapping folder."""
    csvs = sorted(p for p in folder.glob("*.csv") if not _is_junk(p.name))
    if csvs:
        return csvs[0]
    dirs = _visible_dirs(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not _is_junk(p.name)]
    if depth and len(dirs) == 1 and not files:
        return _find_csv(dirs[0], depth - 1)
    return None


def _read_csv_samples(csv_path: Path, rows: list, skipped: list) -> None:
    """Rows of `filename,label[,split]`; files resolved next to the CSV (or one folder down)."""
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{csv_path.name} could not be read as a CSV file ({exc}).") from exc
    columns = {c.strip().lower(): c for c in table.columns}
    file_col = next((columns[c] for c in FILENAME_COLUMNS if c in columns), None)
    label_col = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
    if file_col is None or label_col is None:
        raise DatasetError(f"{csv_path.name} needs a 'filename' and a 'label' column "
                           f"(it has: {', '.join(map(str, table.columns))}).")
    split_col = columns.get("split")
    base = csv_path.parent
    index = {p.name: p for p in base.rglob("*") if p.is_file() and is_image_name(p)}
    named = set()
    for _, row in table.iterrows():
        name, label = str(row[file_col]).strip(), str(row[label_col]).strip()
        candidate = (base / name)
        if not candidate.is_file():
            candidate = index.get(Path(name).name)
        if candidate is None or not candidate.is_file():
            skipped.append({"path": str(base / name), "reason": "listed in the CSV but the file is missing"})
            continue
        if not label:
            skipped.append({"path": str(candidate), "reason": "the CSV gives no label for this file"})
            continue
        named.add(candidate.resolve())
        reason = _unusable_reason(candidate)
        if reason:
            skipped.append({"path": str(candidate), "reason": reason})
            continue
        split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
        rows.append({"path": str(candidate), "label": label, "split": split})
    for path in index.values():
        if path.resolve() not in named and not any(_is_junk(part) for part in path.relative_to(base).parts):
            skipped.append({"path": str(path), "reason": "not named in the CSV"})


def _read_prefix_samples(folder: Path, separator: str, rows: list, skipped: list) -> None:
    """A flat folder where the class is the part of the file name before `separator`."""
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        if _is_junk(file.name):
            skipped.append({"path": str(file), "reason": "system or hidden file, not data"})
            continue
        if separator not in file.stem:
            skipped.append({"path": str(file), "reason": f"name has no '{separator}' to take a class from"})
            continue
        reason = _unusable_reason(file)
        if reason:
            skipped.append({"path": str(file), "reason": reason})
            continue
        rows.append({"path": str(file), "label": file.stem.split(separator, 1)[0], "split": None})


def dataset_folder(source: str | Path, flat: bool = False) -> Path:
    """The folder that holds a dataset: a .zip is extracted (safely, once), a wrapping folder skipped."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(f"{source} does not exist. Give a folder of class folders or a .zip of one.")
    folder = extract_zip(source) if source.is_file() and source.suffix.lower() == ".zip" else source
    if not folder.is_dir():
        raise DatasetError(f"{source.name} is neither a folder nor a .zip file.")
    return _unwrap(folder, flat)


def prefix_preview(source: str | Path, separator: str, limit: int = 8) -> dict:
    """What a filename-prefix separator would yield, shown before the user commits to it.

    {"examples": [(file name, class)], "classes": {class: count}, "unmatched": files without it}.
    """
    folder = dataset_folder(source, flat=True)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and is_image_name(p) and not _is_junk(p.name))
    classes: dict[str, int] = {}
    unmatched = 0
    examples = []
    for name in names:
        stem = Path(name).stem
        label = stem.split(separator, 1)[0] if separator and separator in stem else None
        if label:
            classes[label] = classes.get(label, 0) + 1
        else:
            unmatched += 1
        if len(examples) < limit:
            examples.append((name, label or "(no class: separator not found)"))
    return {"examples": examples, "classes": dict(sorted(classes.items())), "unmatched": unmatched}


def open_dataset(source: str | Path, val_fraction: float = 0.2, seed: int = 0,
                 prefix_separator: str | None = None) -> Dataset:
    """Read a dataset folder or .zip into a Dataset, ready for checks and training.

    Layouts, in order: a labels CSV (`filename,label[,split]`); a flat folder whose
    file names start with the class (when `prefix_separator` is given); split
    folders; class folders.
    """
    source = Path(source).expanduser()
    folder = dataset_folder(source, flat=bool(prefix_separator))
    rows: list[dict] = []
    skipped: list[dict] = []
    csv_path = _find_csv(folder)
    split_dirs = {d: SPLIT_NAMES[d.name.lower()] for d in _visible_dirs(folder) if d.name.lower() in SPLIT_NAMES}
    if csv_path is not None:
        _read_csv_samples(csv_path, rows, skipped)
        split_dirs = {}
    elif prefix_separator:
        _read_prefix_samples(folder, prefix_separator, rows, skipped)
        split_dirs = {}
    elif split_dirs:
        for directory, split in split_dirs.items():
            _scan_class_folders(directory, split, rows, skipped)
        for other in folder.iterdir():
            if other not in split_dirs:
                skipped.append({"path": str(other), "reason": "not inside train/val/test"})
    else:
        _scan_class_folders(folder, None, rows, skipped)
    samples = pd.DataFrame(rows, columns=["path", "label", "split"])
    split_source = "folders"
    present = set(samples.split.dropna())
    if "train" in present:
        samples["split"] = samples.split.fillna("train")  # CSV rows without a split train
    if csv_path is not None:
        split_source = "csv" if present else "auto"
    if "train" not in present:
        samples["split"] = stratified_split(samples.label.tolist(), val_fraction, seed) if len(samples) else []
        split_source = "auto"
    elif "val" not in present:
        if "test" in present:
            samples.loc[samples.split == "test", "split"] = "val"
            split_source = "folders (test used for validation)"
        else:
            train = samples.split == "train"
            samples.loc[train, "split"] = stratified_split(samples[train].label.tolist(), val_fraction, seed)
            split_source = "auto"
    classes = sorted(samples[samples.split == "train"].label.unique().tolist())
    dataset = Dataset(folder, samples, classes, skipped, split_source, str(source))
    dataset.samples = samples[samples.label.isin(classes)].reset_index(drop=True)
    for _, row in samples[~samples.label.isin(classes)].iterrows():
        skipped.append({"path": row.path, "reason": f"class '{row.label}' has no training images"})
    return dataset


def check_trainable(dataset: Dataset) -> None:
    """Raise DatasetError, in words, if no classifier can be trained on this data."""
    loose = [s for s in dataset.skipped if s["reason"] == "file outside a class folder" and is_image_name(s["path"])]
    if len(dataset.samples) == 0 and loose:
        raise DatasetError(f"Found {len(loose)} images but no class folders. Put the images of each class "
                           "in a folder named after the class (e.g. cats/, dogs/), then zip the folders.")
    if len(dataset.samples) == 0:
        raise DatasetError("No usable images found. Put images in one folder per class "
                           "(e.g. cats/, dogs/), or in train/ and val/ folders that hold class folders.")
    if len(dataset.classes) < 2:
        raise DatasetError(f"Only one class found ({', '.join(dataset.classes)}). A classifier needs at "
                           "least two classes: add a folder of images for another class.")
    if len(dataset.split("val")) == 0:
        raise DatasetError("No validation images: each class needs at least 2 images so one can be "
                           "held out to measure accuracy.")
