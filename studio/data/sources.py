"""Read a dataset (folder or .zip) into a table of samples: path, label, split.

Layouts understood: class folders (`ants/`, `bees/`), and split folders
(`train/`, `val`|`valid`|`validation`, `test/`, each holding class folders),
either one possibly wrapped in a single top-level folder. Files that are not
usable images are skipped and listed with the reason; junk that operating
systems leave behind (`__MACOSX`, `.DS_Store`, hidden folders) never becomes a
class. The user's files are only read, never changed.

Everything in an upload that does not reach training is in `Dataset.skipped`,
named as it was in the upload (the zip member name for a zip, the file's path
for a folder), with a reason that says what to do: see `_account_for_everything`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from studio import paths
from studio.data.imaging import IMAGE_EXTENSIONS, is_image_name

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
MAX_ZIP_MEMBERS = int(os.environ.get("STUDIO_MAX_ZIP_MEMBERS", 200_000))
MAX_ZIP_BYTES = int(os.environ.get("STUDIO_MAX_ZIP_BYTES", 20 * 1024**3))
MANIFEST = ".complete"   # written last into an extraction folder: the zip's name, what was not unpacked
GROUP_AT = 3             # more junk files of one kind than this are shown as one line

# The start of each reason: the doctor and the page sort skipped files by these, so keep them stable.
JUNK = "system or hidden file, not data"
NOT_UNPACKED = "not unpacked"
OUTSIDE_CLASS = "file outside a class folder"   # the Data step matches reasons by this start
EMPTY_CLASS = "empty class folder"
NO_TRAINING = "no training images for class"
TEST_SPLIT = "test split, kept aside"
LEFT_OUT = "left out"
_SAFETY = f"{NOT_UNPACKED}, refused for safety"


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message says what to do."""


@dataclass
class Dataset:
    root: Path
    samples: pd.DataFrame              # columns: path, label, split
    classes: list[str]
    skipped: list[dict] = field(default_factory=list)   # {"path", "reason"[, "members"]}, path as uploaded
    split_source: str = "folders"      # "folders" or "auto" (stratified split made here)
    source: str = ""
    upload_root: str = ""              # the extraction folder when the data came from a zip, else ""
    renamed: dict = field(default_factory=dict)   # path in that folder -> zip member name, where they differ

    def counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns)."""
        table = self.samples.groupby(["label", "split"]).size().unstack(fill_value=0)
        table = table.reindex(index=self.classes, fill_value=0)
        return table[[s for s in ("train", "val", "test") if s in table.columns]]

    def split(self, name: str) -> pd.DataFrame:
        return self.samples[self.samples.split == name].reset_index(drop=True)

    def shown(self, path: str | Path, folder: bool = False) -> str:
        """A file's name as the user uploaded it: its zip member name, or (for a folder) its path."""
        if not self.upload_root:
            return str(path) + ("/" if folder else "")
        relative = os.path.relpath(os.path.abspath(path), self.upload_root)
        if relative == ".." or relative.startswith(".." + os.sep):
            return str(path)
        relative = relative.replace(os.sep, "/") + ("/" if folder else "")
        return self.renamed.get(relative, relative)

    def summary(self) -> dict:
        counts = self.counts()
        return {"root": str(self.root), "source": self.source, "classes": self.classes,
                "counts": {c: {s: int(counts.loc[c, s]) for s in counts.columns} for c in self.classes},
                "images": int(len(self.samples)), "split_source": self.split_source,
                "skipped": self.skipped}


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_FILES or name == "__MACOSX"


def _junk_reason(name: str) -> str:
    """Why a system or hidden file is ignored, for the one name (file or folder) that makes it junk."""
    lower = name.lower()
    if lower == "__macosx":
        return f"{JUNK}: copies macOS adds when it makes a zip (__MACOSX); ignored, nothing to do"
    if lower == ".ds_store":
        return f"{JUNK}: folder settings macOS leaves in every folder; ignored, nothing to do"
    if lower in ("thumbs.db", "desktop.ini"):
        return f"{JUNK}: a file Windows leaves in folders; ignored, nothing to do"
    if name.startswith("._"):
        return f"{JUNK}: a macOS resource-fork copy (a '._' file); ignored, nothing to do"
    return f"{JUNK}: its name starts with '.', which hides it; rename it without the '.' if it should be used"


# ------------------------------------------------------------------ zip files

def read_manifest(folder: Path) -> dict | None:
    """What `extract_zip` wrote about an extraction folder (None if it is not a finished one)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and "archive" in manifest else None


def _refusal(member: zipfile.ZipInfo, parts: list[str]) -> str | None:
    """Why a zip member is not written at all (None if it may be): unsafe names and types, unreadable data."""
    name = member.filename.replace("\\", "/")
    mode = stat.S_IFMT(member.external_attr >> 16)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return (f"{_SAFETY}: an absolute path would point outside the upload's folder. Zip the folder "
                "again so the names are relative (like cats/photo.jpg).")
    if ".." in parts:
        return (f"{_SAFETY}: the name contains '..', which would point outside the upload's folder. Zip the "
                "folder again from inside it (names like cats/photo.jpg).")
    if mode == stat.S_IFLNK:
        return (f"{_SAFETY}: a symbolic link, not a file (links are never followed). Put the file itself in "
                "the zip (for example, zip without --symlinks).")
    kinds = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe",
             stat.S_IFSOCK: "a socket"}
    if mode in kinds:
        return f"{_SAFETY}: {kinds[mode]}, not a file. Leave it out of the zip."
    if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
        return f"{_SAFETY}: not a plain file (file type {oct(mode)}). Leave it out of the zip."
    if member.is_dir() or mode == stat.S_IFDIR:
        return None
    if not parts:
        return f"{NOT_UNPACKED}: the entry has no file name. Make the zip again from the original files."
    if member.flag_bits & 0x1 or member.compress_type == 99:
        return (f"{NOT_UNPACKED}: the file is encrypted (password-protected) and the studio cannot read it. "
                "Zip it again without a password.")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        method = zipfile.compressor_names.get(member.compress_type, f"method {member.compress_type}")
        return (f"{NOT_UNPACKED}: compressed with {method}, which the studio cannot read. Zip it again with "
                "ordinary (deflate) compression.")
    return None


def extract_zip(archive: Path, destination: Path | None = None) -> Path:
    """Extract a zip safely into the workspace and return the folder.

    Members that would land outside the folder (`..`, absolute paths), links and
    device files are never written; nor are encrypted, damaged or duplicate ones.
    Each of them is named, with the reason, in the folder's manifest (`read_manifest`),
    so the report can list them. Limits on member count and total size are checked
    before anything is extracted. The same archive is extracted once.
    """
    archive = Path(archive)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    destination = Path(destination or paths.uploads_dir() / f"{archive.stem[:40]}-{digest.hexdigest()[:12]}")
    if read_manifest(destination) is not None:
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
        inside = str(partial.resolve()) + os.sep
        refused: list[dict] = []
        renamed: dict[str, str] = {}
        written: dict[str, str] = {}     # path in the folder -> the member written there
        for member in members:
            name = member.filename
            parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
            reason = _refusal(member, parts)
            if reason is None and not parts:
                continue                   # "./": the upload's own top folder
            relative = "/".join(parts)
            dir_only = member.is_dir() or stat.S_IFMT(member.external_attr >> 16) == stat.S_IFDIR
            target = (partial / Path(*parts)).resolve() if parts else partial
            if reason is None and not str(target).startswith(inside):
                reason = f"{_SAFETY}: it would be written outside the upload's folder. Rename it in the zip."
            if reason is None and relative == MANIFEST:
                reason = f"{NOT_UNPACKED}: a hidden file with the name the studio keeps its notes under; ignored"
            if reason is None and relative in written and not dir_only:
                reason = (f"{NOT_UNPACKED}: an earlier file in the zip, '{written[relative]}', has the same name, "
                          "and only the first is used. Rename one of them.")
            if reason is None:
                reason = _write_member(zf, member, target, partial.resolve(), dir_only)
            if reason is not None:
                refused.append({"path": name, "reason": reason})
                continue
            if not dir_only:
                written[relative] = name
            shown = relative + ("/" if dir_only else "")
            if name != shown:
                renamed[shown] = name
        manifest = {"archive": archive.name, "refused": refused, "renamed": renamed}
        (partial / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(partial, root)
    return destination


def _write_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, top: Path,
                  dir_only: bool) -> str | None:
    """Unpack one member to `target` (a new file; never one already there). The reason if it can't be."""
    for folder in target.parents:
        if folder == top or top not in folder.parents:
            break
        if folder.exists() and not folder.is_dir():
            return (f"{NOT_UNPACKED}: its folder '{folder.relative_to(top).as_posix()}' has the same name as a "
                    "file in the zip. Rename the file or the folder.")
    if target.is_dir() and not dir_only:
        return f"{NOT_UNPACKED}: a folder in the zip has the same name as this file. Rename one of them."
    if target.exists() and dir_only and not target.is_dir():
        return f"{NOT_UNPACKED}: a file in the zip has the same name as this folder. Rename one of them."
    if target.exists() and not dir_only:   # same name but for capitals, on a disk that ignores them
        return (f"{NOT_UNPACKED}: another file in the zip has the same name apart from capital letters, which "
                "this disk does not tell apart. Rename one of them.")
    created = False
    try:
        if dir_only:
            target.mkdir(parents=True, exist_ok=True)
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, open(target, "xb") as dst:
            created = True
            shutil.copyfileobj(src, dst, 1 << 20)
        return None
    except RuntimeError:   # zipfile's words for "encrypted, password required"
        reason = (f"{NOT_UNPACKED}: the file is encrypted (password-protected) and the studio cannot read it. "
                  "Zip it again without a password.")
    except NotImplementedError as exc:
        reason = f"{NOT_UNPACKED}: stored in a way the studio cannot read ({exc}). Zip it again normally."
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        reason = f"{NOT_UNPACKED}: its data in the zip is damaged ({exc}). Make the zip again from the original files."
    except OSError as exc:
        reason = (f"{NOT_UNPACKED}: the disk refused it ({exc.strerror or exc}); the name may be too long or hold "
                  "a character this disk does not allow. Rename it.")
    if created:
        target.unlink(missing_ok=True)
    return reason


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


def _entry(path: str | Path, reason: str, folder: bool = False) -> dict:
    """One skipped item while reading (its path on disk); `_account_for_everything` names it as uploaded."""
    return {"path": str(path), "reason": reason, "folder": folder, "members": []}


def _scan_class_folders(folder: Path, split: str | None, rows: list, skipped: list) -> None:
    """Class folders in `folder`. System files are left to `_account_for_everything`, which groups them."""
    for class_dir in sorted(folder.iterdir()):
        if _is_junk(class_dir.name):
            continue
        if not class_dir.is_dir():
            skipped.append(_entry(class_dir, OUTSIDE_CLASS))
            continue
        before, files = len(rows), 0
        for file in sorted(class_dir.rglob("*")):
            if any(_is_junk(part) for part in file.relative_to(class_dir).parts) or not file.is_file():
                continue
            files += 1
            reason = _unusable_reason(file)
            if reason:
                skipped.append(_entry(file, reason))
            else:
                rows.append({"path": str(file), "label": class_dir.name, "split": split})
        if len(rows) == before:
            what = ("none of its files is a usable image (each one is listed with its reason)" if files
                    else "there are no images in it")
            skipped.append(_entry(class_dir, f"{EMPTY_CLASS}: {what}, so '{class_dir.name}' is not a class. "
                                  f"Add images of '{class_dir.name}' to it, or remove the folder.", folder=True))


ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
READABLE = ", ".join(sorted(IMAGE_EXTENSIONS))


def _unusable_reason(file: Path) -> str | None:
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
            image.size  # header only; full decoding happens once, when pixels are cached
    except Image.DecompressionBombError:
        return "image is too large to open safely (possible decompression bomb): make it smaller, or leave it out"
    except Exception as exc:
        return (f"not a readable image ({exc.__class__.__name__}): open it in an image viewer; if it is "
                "broken, export it again")
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
            skipped.append(_entry(base / name, f"listed in the CSV but the file is missing: check the name in "
                                  f"{csv_path.name} against the files you uploaded"))
            continue
        if not label:
            skipped.append(_entry(candidate, f"the CSV gives no label for this file: fill in its label in "
                                  f"{csv_path.name}"))
            continue
        named.add(candidate.resolve())
        reason = _unusable_reason(candidate)
        if reason:
            skipped.append(_entry(candidate, reason))
            continue
        split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
        rows.append({"path": str(candidate), "label": label, "split": split})
    for path in index.values():
        if path.resolve() not in named and not any(_is_junk(part) for part in path.relative_to(base).parts):
            skipped.append(_entry(path, f"not named in the CSV, so it has no class: add a row for it to "
                                  f"{csv_path.name} to train on it"))


def _read_prefix_samples(folder: Path, separator: str, rows: list, skipped: list) -> None:
    """A flat folder where the class is the part of the file name before `separator`."""
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        if _is_junk(file.name):
            continue
        if separator not in file.stem:
            skipped.append(_entry(file, f"name has no '{separator}' to take a class from: rename it to start "
                                  f"with its class and '{separator}' (like cat{separator}001.jpg)"))
            continue
        reason = _unusable_reason(file)
        if reason:
            skipped.append(_entry(file, reason))
            continue
        rows.append({"path": str(file), "label": file.stem.split(separator, 1)[0], "split": None})


def _locate(source: str | Path, flat: bool = False) -> tuple[Path, Path, dict | None]:
    """(the dataset's folder, the whole upload on disk, the extraction manifest if it came from a zip).

    A folder inside an earlier extraction (what the page hands to training) counts as that zip.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(f"{source} does not exist. Give a folder of class folders or a .zip of one.")
    if source.is_file() and source.suffix.lower() == ".zip":
        top = extract_zip(source)
        return _unwrap(top, flat), top, read_manifest(top)
    if not source.is_dir():
        other = source.suffix.lower() in ARCHIVE_SUFFIXES or source.name.lower().endswith(".tar.gz")
        raise DatasetError(f"{source.name} is neither a folder nor a .zip file."
                           + (" Only .zip archives are read: unpack it and zip the folder again, or give the "
                              "folder itself." if other else ""))
    absolute = Path(os.path.abspath(source))
    for top in (absolute, *absolute.parents):
        manifest = read_manifest(top) if (top / MANIFEST).is_file() else None
        if manifest is not None:
            return _unwrap(source, flat), top, manifest
    return _unwrap(source, flat), source, None


def dataset_folder(source: str | Path, flat: bool = False) -> Path:
    """The folder that holds a dataset: a .zip is extracted (safely, once), a wrapping folder skipped."""
    return _locate(source, flat)[0]


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
    folder, top, manifest = _locate(source, flat=bool(prefix_separator))
    rows: list[dict] = []
    skipped: list[dict] = []
    csv_path = _find_csv(folder)
    split_dirs = {d: SPLIT_NAMES[d.name.lower()] for d in _visible_dirs(folder) if d.name.lower() in SPLIT_NAMES}
    if csv_path is not None:
        _read_csv_samples(csv_path, rows, skipped)
        split_dirs, layout = {}, "csv"
    elif prefix_separator:
        _read_prefix_samples(folder, prefix_separator, rows, skipped)
        split_dirs, layout = {}, "prefix"
    elif split_dirs:
        for directory, split in split_dirs.items():
            _scan_class_folders(directory, split, rows, skipped)
        for other in sorted(folder.iterdir()):
            if other not in split_dirs and not _is_junk(other.name):
                skipped.append(_entry(other, "not inside train/, val/ or test/: with split folders only the class "
                                      "folders inside them are read. Move it into train/<class>/ to use it.",
                                      folder=other.is_dir()))
        layout = "split"
    else:
        _scan_class_folders(folder, None, rows, skipped)
        layout = "classes"
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
    kept = samples[samples.label.isin(classes)].reset_index(drop=True)
    for label, rows_of in samples[~samples.label.isin(classes)].groupby("label", sort=True):
        reason = (f"{NO_TRAINING} '{label}': it has images only for validation or testing, so it is not a class. "
                  f"Add training images of '{label}'" + (f" (in train/{label}/)" if layout == "split" else "")
                  + " to use it.")
        skipped.extend(_entry(path, reason) for path in rows_of.path)
    dataset = Dataset(folder, kept, classes, [], split_source, str(source),
                      upload_root=os.path.abspath(top) if manifest is not None else "",
                      renamed=(manifest or {}).get("renamed", {}))
    accounted = _account_for_everything(top, folder, layout, csv_path, kept.path.tolist(), skipped,
                                        manifest is not None)
    tested = [(d, kept[kept.path.map(lambda p, d=d: _under(p, d))].path.tolist())
              for d, split in split_dirs.items() if split == "test"] if "test" in set(kept.split) else []
    if csv_path is not None and "test" in set(kept.split):
        tested = [(f"rows of {csv_path.name} with split 'test'", kept[kept.split == "test"].path.tolist())]
    for where, files in tested:
        if files:
            entry = _entry(where, f"{TEST_SPLIT}: {len(files)} image(s) for a final check of your own. The studio "
                                  "trains on train and measures on val, so these are not used; move them into "
                                  "train to train on them.", folder=isinstance(where, Path))
            entry["members"], entry["label"] = files, isinstance(where, str)
            accounted.append(entry)
    refused = (manifest or {}).get("refused", [])
    listed = sorted((_public(e, dataset) for e in accounted), key=lambda row: row["path"].lower())
    dataset.skipped = [dict(r) for r in refused] + listed
    return dataset


# ------------------------------------------------------------------ everything accounted for

def _under(path: str, folder: str | Path) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(folder) + os.sep)


def _walk(top: Path) -> tuple[list[str], list[str]]:
    """Every file-like entry (files, links, pipes, devices) and every real folder under `top`, links not followed."""
    files, folders, pending = [], [], [os.path.abspath(top)]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
                pending.append(entry.path)
            else:
                files.append(entry.path)
    return sorted(files), sorted(folders)


def _unplaced_reason(path: str, layout: str, folder: Path, csv_path: Path | None) -> str:
    """Why a file no reader picked up is not used, by what it is and where it lies."""
    if os.path.islink(path):
        if os.path.isdir(path):
            return "a link to a folder, which is not followed: put the files themselves here to use them"
        if not os.path.exists(path):
            return "a link to something that is not there (a broken link): put the file itself here"
    if not os.path.isfile(path):
        return ("not a regular file (a named pipe, socket or device), so it is not read: leave it out of the "
                "dataset")
    if not _under(path, folder):
        return (f"outside the dataset's folder '{folder.name}', so it is not read: move it into a class folder "
                "to use it")
    if layout == "csv" and csv_path is not None:
        if path.lower().endswith(".csv"):
            return (f"another CSV file: only {csv_path.name} is read for the labels. Put its rows into "
                    f"{csv_path.name} to use them.")
        if not is_image_name(path):
            return _unusable_reason(Path(path)) or "not an image file"
        return (f"not in the folder of {csv_path.name}, so the CSV cannot name it: move it next to the CSV and "
                "add a row for it")
    if layout == "prefix":
        return (f"in a subfolder: with the class taken from file names, only the files directly in "
                f"'{folder.name}' are read. Move it up a level to use it.")
    return "not inside a class folder the studio reads, so it is not used: move it into the folder of its class"


def _account_for_everything(top: Path, folder: Path, layout: str, csv_path: Path | None, used: list[str],
                            skipped: list[dict], archive: bool) -> list[dict]:
    """The readers' skipped list, completed so that every file and folder of the upload is accounted for.

    Everything under the upload's top folder is either trained on (or is the labels
    CSV), or listed here with a reason: what the readers skipped, plus what no reader
    looked at (system files, links, pipes, empty folders, files next to a wrapping
    folder or in the wrong place). How much is shown, and why:
    - A system or hidden *folder* (`__MACOSX/`, `.ipynb_checkpoints/`) is one line,
      with every file in it under "members": nobody needs one line per Finder copy.
    - System files of one kind scattered through the folders (`.DS_Store`, `Thumbs.db`,
      `._x.jpg`) are one line once there are more than GROUP_AT of them, for the same
      reason; fewer are listed one by one.
    - Everything else, the files a user may want to fix, is one line each.
    """
    key = os.path.abspath
    manifest = key(Path(top) / MANIFEST) if archive else None
    entries = [e for e in skipped if key(e["path"]) != manifest]
    taken = {key(p) for p in used} | ({key(csv_path)} if csv_path is not None else set())
    listed = {key(e["path"]) for e in entries}
    # a listed folder's reason covers the files in it, except an empty class folder's (its files have their own)
    owners = {key(e["path"]): e for e in entries if e["folder"] and not e["reason"].startswith(EMPTY_CLASS)}
    holding = set()                  # folders holding something that is used or listed
    for path in taken | listed:
        parent = os.path.dirname(path)
        while parent not in holding and parent != os.path.dirname(parent):
            holding.add(parent)
            parent = os.path.dirname(parent)
    files, folders = _walk(top)
    root = key(top)

    def owner_of(path: str) -> dict | None:
        parent = os.path.dirname(path)
        while len(parent) > len(root):
            if parent in owners:
                return owners[parent]
            parent = os.path.dirname(parent)
        return None

    def junk_folder(path: str) -> str | None:
        parts = Path(os.path.relpath(path, root)).parts
        index = next((i for i, part in enumerate(parts) if _is_junk(part)), None)
        return None if index is None else os.path.join(root, *parts[:index + 1])

    loose_junk: dict[str, list[str]] = {}
    for path in files:
        if path == manifest or path in taken or path in listed or (os.path.islink(path) and path in holding):
            continue
        owner = owner_of(path)
        if owner is not None:
            owner["members"].append(path)
            continue
        junk = junk_folder(path)
        if junk is not None and junk != path:
            owners[junk] = _entry(junk, _junk_reason(os.path.basename(junk)), folder=True)
            entries.append(owners[junk])
            owners[junk]["members"].append(path)
        elif junk is not None:
            loose_junk.setdefault(_junk_reason(os.path.basename(path)), []).append(path)
        else:
            entries.append(_entry(path, _unplaced_reason(path, layout, folder, csv_path)))

    with_files = set()
    for path in files:
        parent = os.path.dirname(path)
        while parent not in with_files and len(parent) > len(root):
            with_files.add(parent)
            parent = os.path.dirname(parent)
    for path in folders:
        parent = os.path.dirname(path)
        if (path in with_files or path in listed or path in owners or owner_of(path)
                or (parent != root and parent not in with_files)):
            continue                 # not empty, already listed, or inside an empty folder listed above it
        junk = junk_folder(path)
        reason = (_junk_reason(os.path.basename(junk)) if junk else
                  "empty folder: there are no files in it, so there is nothing to train on. Nothing to do.")
        owners[path] = _entry(path, reason, folder=True)
        entries.append(owners[path])

    for reason, paths_of in loose_junk.items():
        if len(paths_of) > GROUP_AT:
            names = {os.path.basename(p) for p in paths_of}
            group = _entry(f"{names.pop()} ({len(paths_of)} files)" if len(names) == 1
                           else f"{len(paths_of)} hidden files", f"{reason} (one line for all of them)")
            group["members"], group["label"] = paths_of, True
            entries.append(group)
        else:
            entries.extend(_entry(p, reason) for p in paths_of)
    return entries


def _public(entry: dict, dataset: Dataset) -> dict:
    """A skipped item as the page and `studio doctor --json` show it: {"path", "reason"[, "members"]}."""
    path = entry["path"] if entry.get("label") else dataset.shown(entry["path"], entry["folder"])
    public = {"path": path, "reason": entry["reason"]}
    if entry["members"]:
        public["members"] = [dataset.shown(p) for p in entry["members"]]
    return public


def check_trainable(dataset: Dataset) -> None:
    """Raise DatasetError, in words, if no classifier can be trained on this data."""
    loose = [s for s in dataset.skipped if s["reason"] == OUTSIDE_CLASS and is_image_name(s["path"])]
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
