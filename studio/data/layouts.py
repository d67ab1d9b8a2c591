"""The readers of each layout: class folders (and split folders of them), a labels CSV, and a flat folder
whose file names start with the class. Each appends sample rows and skipped entries; `sources` picks
the layout and accounts for everything else."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from studio.data.imaging import IMAGE_EXTENSIONS, is_image_name
from studio.data.samples import EMPTY_CLASS, OUTSIDE_CLASS, SPLIT_NAMES, DatasetError, is_junk


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not is_junk(p.name))


def unwrap(folder: Path, flat: bool = False) -> Path:
    """Step into a single wrapping folder (`dataset/` inside the zip) if that is all there is.

    A folder of class folders is only a wrapper if it holds folders itself; for a
    flat layout (`flat`, class in the file name) any single folder is one.
    """
    while True:
        dirs = visible_dirs(folder)
        files = [p for p in folder.iterdir() if p.is_file() and not is_junk(p.name)]
        if (len(dirs) == 1 and not files and dirs[0].name.lower() not in SPLIT_NAMES
                and (flat or visible_dirs(dirs[0]))):
            folder = dirs[0]
        else:
            return folder


def skip_entry(path: str | Path, reason: str, folder: bool = False) -> dict:
    """One skipped item while reading (its path on disk); `_account_for_everything` names it as uploaded."""
    return {"path": str(path), "reason": reason, "folder": folder, "members": []}


def scan_class_folders(folder: Path, split: str | None, rows: list, skipped: list) -> None:
    """Class folders in `folder`. System files are left to `_account_for_everything`, which groups them."""
    for class_dir in sorted(folder.iterdir()):
        if is_junk(class_dir.name):
            continue
        if not class_dir.is_dir():
            skipped.append(skip_entry(class_dir, OUTSIDE_CLASS))
            continue
        before, files = len(rows), 0
        for file in sorted(class_dir.rglob("*")):
            if any(is_junk(part) for part in file.relative_to(class_dir).parts) or not file.is_file():
                continue
            files += 1
            reason = unusable_reason(file)
            if reason:
                skipped.append(skip_entry(file, reason))
            else:
                rows.append({"path": str(file), "label": class_dir.name, "split": split})
        if len(rows) == before:
            what = ("none of its files is a usable image (each one is listed with its reason)" if files
                    else "there are no images in it")
            skipped.append(skip_entry(class_dir, f"{EMPTY_CLASS}: {what}, so '{class_dir.name}' is not a class. "
                                  f"Add images of '{class_dir.name}' to it, or remove the folder.", folder=True))


ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
READABLE = ", ".join(sorted(IMAGE_EXTENSIONS))


def unusable_reason(file: Path) -> str | None:
    """Why a file cannot be used as an image (None if its header reads as one)."""
    if file.name.lower().endswith(ARCHIVE_SUFFIXES):
        return "archive inside the dataset: not opened (unpack it into class folders if it holds images)"
    if not is_image_name(file):
        return (f"not an image file ({file.suffix or 'no extension'}): the studio reads {READABLE}. "
                "Nothing to do if it is not a photo.")
    if file.stat().st_size == 0:
        return "empty file (0 bytes): copy the photo again from where it came from"
    try:
        with Image.open(file) as image:
            _ = image.size  # on purpose: header only; full decoding happens once, when pixels are cached
    except Image.DecompressionBombError:
        return "image is too large to open safely (possible decompression bomb): make it smaller, or leave it out"
    except Exception as exc:
        return (f"not a readable image ({exc.__class__.__name__}): open it in an image viewer; if it is "
                "broken, export it again")
    return None


# file_name: a Hugging Face `imagefolder` metadata.csv
FILENAME_COLUMNS = ("filename", "file_name", "file", "image", "path", "filepath", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "target")


def find_csv(folder: Path, depth: int = 3) -> Path | None:
    """A labels CSV at the top of the dataset, or inside its single wrapping folder."""
    csvs = sorted(p for p in folder.glob("*.csv") if not is_junk(p.name))
    if csvs:
        return csvs[0]
    dirs = visible_dirs(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not is_junk(p.name)]
    if depth and len(dirs) == 1 and not files:
        return find_csv(dirs[0], depth - 1)
    return None


def listed_file_index(base: Path) -> dict[str, Path]:
    """{file name: path} of the images under a labels CSV's folder (not in junk folders): a CSV may name a
    photo by its name alone."""
    return {p.name: p for p in base.rglob("*") if p.is_file() and is_image_name(p)
            and not any(is_junk(part) for part in p.relative_to(base).parts)}


def resolve_listed(name: str, base: Path, index: dict[str, Path]) -> Path | None:
    """The file a CSV row names: beside the CSV as written, else by its name anywhere under it; None if absent."""
    candidate = base / name
    if not candidate.is_file():
        candidate = index.get(Path(name).name)
    return candidate if candidate is not None and candidate.is_file() else None


def missing_listed(base: Path, name: str, csv_path: Path) -> dict:
    """The skipped entry of a CSV row whose file is not there."""
    return skip_entry(base / name, f"listed in the CSV but the file is missing: check the name in "
                                   f"{csv_path.name} against the files you uploaded")


def unlisted_files(index: dict[str, Path], named: set, csv_path: Path, what: str) -> list[dict]:
    """The skipped entries of the images under a labels CSV that no row names (`what`: "class" or "labels")."""
    return [skip_entry(path, f"not named in the CSV, so it has no {what}: add a row for it to {csv_path.name} to "
                             "train on it") for path in index.values() if path.resolve() not in named]


def read_csv_samples(csv_path: Path, rows: list, skipped: list) -> None:
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
    index = listed_file_index(base)
    named = set()
    for _, row in table.iterrows():
        name, label = str(row[file_col]).strip(), str(row[label_col]).strip()
        candidate = resolve_listed(name, base, index)
        if candidate is None:
            skipped.append(missing_listed(base, name, csv_path))
            continue
        if not label:
            skipped.append(skip_entry(candidate, f"the CSV gives no label for this file: fill in its label in "
                                  f"{csv_path.name}"))
            continue
        named.add(candidate.resolve())
        reason = unusable_reason(candidate)
        if reason:
            skipped.append(skip_entry(candidate, reason))
            continue
        split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
        rows.append({"path": str(candidate), "label": label, "split": split})
    skipped.extend(unlisted_files(index, named, csv_path, "class"))


def read_prefix_samples(folder: Path, separator: str, rows: list, skipped: list) -> None:
    """A flat folder where the class is the part of the file name before `separator`."""
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        if is_junk(file.name):
            continue
        if separator not in file.stem:
            skipped.append(skip_entry(file, f"name has no '{separator}' to take a class from: rename it to start "
                                  f"with its class and '{separator}' (like cat{separator}001.jpg)"))
            continue
        reason = unusable_reason(file)
        if reason:
            skipped.append(skip_entry(file, reason))
            continue
        rows.append({"path": str(file), "label": file.stem.split(separator, 1)[0], "split": None})

