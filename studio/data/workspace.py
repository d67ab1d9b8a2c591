"""Datasets made in the browser: class folders in the studio's workspace.

A dataset made here is an ordinary folder of class folders under
`<workspace>/datasets/` (with login on, under `<workspace>/datasets/@users/<name>/`),
so the CLI, the dataset check and training read it like any upload, and it is
still there after a restart. Every write goes through this module and stays
inside that dataset's folder: names are validated (no `..`, no `/`, nothing a
file system refuses), images are decoded before they are kept and saved under
new, safe, unique names. An uploaded dataset is extended by copying it here
first; the user's own files are only read.
"""
from __future__ import annotations

import re
import shutil
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from studio import paths, scratch
from studio.data.checks import MAX_PIXELS
from studio.data.findings import MIN_TRAIN_PER_CLASS, MIN_VAL_PER_CLASS
from studio.data.imaging import IMAGE_EXTENSIONS, ImageDecodeError, open_rgb
from studio.data.samples import SPLIT_NAMES, stratified_split
from studio.data.sources import DatasetError, open_dataset

MAX_NAME = 60
USERS_FOLDER = "@users"       # '@' is refused in names, so no dataset can be called this
FORBIDDEN_CHARS = set('/\\:*?"<>|@')
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
SYSTEM_NAMES = {"__macosx", ".ds_store", "thumbs.db", "desktop.ini"}
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
                     "GIF": ".gif", "TIFF": ".tif"}
WEBCAM_QUALITY = 92


class NameProblem(ValueError):
    """A class or dataset name that cannot be used; the message says why, in words."""


class WorkspaceError(ValueError):
    """An action on a workspace dataset that cannot be done (missing class, file outside the dataset, ...)."""


def _needed_per_class() -> int:
    """The fewest images a class needs so the automatic split leaves enough to train on and to judge."""
    for n in range(2, 100):
        split = stratified_split(["c"] * n, 0.2, 0)
        if split.count("train") >= MIN_TRAIN_PER_CLASS and split.count("val") >= MIN_VAL_PER_CLASS:
            return n
    return 100


NEEDED_PER_CLASS = _needed_per_class()   # 8 with the doctor's 5 training + 2 validation images
MIN_CLASSES = 2


# ------------------------------------------------------------------ names

def clean_name(name: str | None, existing: list[str] | tuple = (), what: str = "class") -> str:
    """The name as it will be used for a folder, or NameProblem saying what is wrong with it.

    Leading and trailing spaces are dropped; a name differing from an existing
    one only in upper/lower case counts as the same (it would be on Windows and macOS).
    """
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise NameProblem(f"Type a name for the {what} first.")
    if name in (".", "..") or "/" in name or "\\" in name or ".." in name:
        raise NameProblem(f"'{name}' can't be a {what} name: it may not contain '..', '/' or '\\' "
                          "(those would point outside the dataset).")
    bad = sorted({c for c in name if c in FORBIDDEN_CHARS or ord(c) < 32 or ord(c) == 127})
    if bad:
        shown = " ".join(f"'{c}'" if ord(c) >= 32 else f"U+{ord(c):04X}" for c in bad)
        raise NameProblem(f"'{name}' can't be a {what} name: these characters are not allowed in folder "
                          f"names: {shown}. Use letters, digits, spaces, '-' or '_'.")
    if name.startswith("."):
        raise NameProblem(f"'{name}' can't be a {what} name: a name starting with '.' is a hidden folder.")
    if name.endswith("."):
        raise NameProblem(f"'{name}' can't be a {what} name: Windows can't have a folder name ending in '.'.")
    if len(name) > MAX_NAME:
        raise NameProblem(f"That {what} name is {len(name)} characters long; keep it to {MAX_NAME} or fewer.")
    if name.lower() in RESERVED or name.split(".")[0].lower() in RESERVED:
        raise NameProblem(f"'{name}' can't be a {what} name: Windows reserves it for a device.")
    if name.lower() in SYSTEM_NAMES:
        raise NameProblem(f"'{name}' can't be a {what} name: it is a system file's name and would be ignored.")
    if what == "class" and name.lower() in SPLIT_NAMES:
        raise NameProblem(f"'{name}' can't be a class name: a folder called '{name}' means a train/validation "
                          "split to the studio. Try a more specific name.")
    same = next((e for e in existing if e.lower() == name.lower()), None)
    if same is not None:
        raise NameProblem(f"There is already a {what} called '{same}'. Pick another name"
                          + (" (names that differ only in capital letters count as the same)." if same != name
                             else "."))
    return name


def _user_folder(user: str) -> str:
    """A folder name for a signed-in user (their name if it is a safe one, else a readable stand-in)."""
    try:
        return clean_name(user, what="user")
    except NameProblem:
        import hashlib
        return "user-" + hashlib.sha1(user.encode()).hexdigest()[:12]


def root(user: str | None = None) -> Path:
    """Where this person's datasets live (everyone's when login is off)."""
    base = paths.datasets_dir()
    if user:
        base = base / USERS_FOLDER / _user_folder(user)
        base.mkdir(parents=True, exist_ok=True)
    return base


def _inside(folder: Path, parent: Path) -> Path:
    """`folder`, if it is a real (not linked) folder directly inside `parent`, else WorkspaceError."""
    if folder.is_symlink() or folder.resolve().parent != parent.resolve():
        raise WorkspaceError(f"'{folder.name}' is not inside {parent}.")
    return folder


# ------------------------------------------------------------------ datasets

@dataclass
class Made:
    """What an add did: the files kept and, for each one refused, (name, reason)."""
    added: list[Path]
    refused: list[tuple[str, str]]


def list_datasets(user: str | None = None) -> list[str]:
    """Names of this person's workspace datasets, most recently changed first."""
    base = root(user)
    found = [d for d in base.iterdir() if d.is_dir() and not d.is_symlink() and d.name != USERS_FOLDER
             and not d.name.startswith(".")]
    return [d.name for d in sorted(found, key=lambda d: (-d.stat().st_mtime, d.name))]


def dataset_dir(name: str, user: str | None = None) -> Path:
    """The folder of an existing workspace dataset of this person (WorkspaceError if there is none)."""
    base = root(user)
    if not name or name != Path(name).name or name in (".", "..", USERS_FOLDER):
        raise WorkspaceError(f"There is no dataset called '{name}'.")
    folder = base / name
    if not folder.is_dir():
        raise WorkspaceError(f"There is no dataset called '{name}'.")
    return _inside(folder, base)


def create_dataset(name: str, user: str | None = None) -> Path:
    name = clean_name(name, list_datasets(user), what="dataset")
    folder = root(user) / name
    folder.mkdir()
    return folder


def is_workspace_dataset(path: str | Path, user: str | None = None) -> bool:
    path = Path(path)
    try:
        return path.is_dir() and not path.is_symlink() and path.resolve().parent == root(user).resolve()
    except OSError:
        return False


def classes(folder: Path) -> list[str]:
    return sorted((d.name for d in folder.iterdir() if d.is_dir() and not d.is_symlink()
                   and not d.name.startswith(".")), key=str.lower)


def images(folder: Path, name: str) -> list[Path]:
    """The image files of one class, oldest first (the order they were added)."""
    class_dir = _class_dir(folder, name)
    files = [f for f in class_dir.iterdir() if f.is_file() and not f.is_symlink() and not f.name.startswith(".")]
    return sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name))


def counts(folder: Path) -> dict[str, int]:
    return {name: len(images(folder, name)) for name in classes(folder)}


def needs(count: int) -> int:
    """How many more photos a class with `count` needs to train well (0: enough)."""
    return max(0, NEEDED_PER_CLASS - count)


def _class_dir(folder: Path, name: str) -> Path:
    if not name or name != Path(name).name or name in (".", ".."):
        raise WorkspaceError(f"There is no class called '{name}'.")
    class_dir = folder / name
    if not class_dir.is_dir():
        raise WorkspaceError(f"There is no class called '{name}' in this dataset.")
    return _inside(class_dir, folder)


def add_class(folder: Path, name: str) -> str:
    name = clean_name(name, classes(folder))
    (folder / name).mkdir()
    folder.touch()
    return name


def rename_class(folder: Path, old: str, new: str) -> str:
    source = _class_dir(folder, old)
    new = clean_name(new, [c for c in classes(folder) if c != old])
    if new == old:
        return new
    target = folder / new
    if old.lower() == new.lower():  # only the capitals change: rename through a temporary name
        temporary = folder / f".renaming-{time.time_ns()}"
        source.rename(temporary)
        source = temporary
    source.rename(target)
    folder.touch()
    return new


def delete_class(folder: Path, name: str) -> Path:
    """Move a class out of the dataset into the workspace's trash; returns where it went (recoverable)."""
    class_dir = _class_dir(folder, name)
    trash = paths.home() / "trash" / f"{folder.name}-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(class_dir), str(trash))
    folder.touch()
    return trash


def remove_image(folder: Path, name: str, file_name: str) -> Path:
    """Move one photo of a class to the trash; returns where it went."""
    class_dir = _class_dir(folder, name)
    if not file_name or file_name != Path(file_name).name or file_name in (".", ".."):
        raise WorkspaceError(f"'{file_name}' is not a photo of '{name}'.")
    file = class_dir / file_name
    if not file.is_file() or file.is_symlink() or file.resolve().parent != class_dir.resolve():
        raise WorkspaceError(f"'{file_name}' is not a photo of '{name}'.")
    trash = paths.home() / "trash" / f"{folder.name}-{name}-photos"
    trash.mkdir(parents=True, exist_ok=True)
    target = _unique(trash, file.stem, file.suffix)
    shutil.move(str(file), str(target))
    folder.touch()
    return target


# ------------------------------------------------------------------ images

def _safe_stem(stem: str) -> str:
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("._-")[:40]
    return stem or "photo"


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    """A new file name in `folder`, claimed atomically (two adds at once never share one)."""
    for index in range(1, 100_000):
        candidate = folder / (f"{stem}{suffix}" if index == 1 else f"{stem}-{index}{suffix}")
        try:
            with open(candidate, "xb"):
                return candidate
        except FileExistsError:
            continue
    raise WorkspaceError(f"Too many files called {stem}{suffix}.")


def _check_image(path: Path) -> tuple[str, str | None]:
    """(format, None) if the file decodes as an image, else ("", the reason in words)."""
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format or "", image.size
        if width * height > MAX_PIXELS:
            return "", "too large to open safely (possible decompression bomb)"
        open_rgb(path, draft=64)
    except ImageDecodeError as exc:
        return "", str(exc)
    except Exception as exc:  # noqa: BLE001 - any file that is not a picture is refused, not a crash
        return "", f"not a readable image ({exc.__class__.__name__})"
    return fmt, None


def add_files(folder: Path, name: str, files: list[str | Path]) -> Made:
    """Copy image files into a class (the originals are only read).

    A file that does not decode as an image is refused with the reason. Formats
    the studio reads keep their bytes (so the duplicate check sees true copies);
    others are re-encoded as PNG.
    """
    class_dir = _class_dir(folder, name)
    added, refused = [], []
    for file in files:
        file = Path(file)
        shown = file.name
        if not file.is_file():
            refused.append((shown, "not a file"))
            continue
        fmt, problem = _check_image(file)
        if problem:
            refused.append((shown, problem))
            continue
        stem = _safe_stem(file.stem)
        if fmt in FORMAT_EXTENSIONS:
            target = _unique(class_dir, stem, FORMAT_EXTENSIONS[fmt])
            shutil.copyfile(file, target)
        else:
            target = _unique(class_dir, stem, ".png")
            open_rgb(file).save(target, "PNG")
        added.append(target)
    if added:
        folder.touch()
    return Made(added, refused)


def as_rgb_array(frame) -> np.ndarray:
    """A webcam frame (H x W x 3 or 4 numbers, or H x W gray) as uint8 RGB; WorkspaceError if it is none."""
    array = np.asarray(frame)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise WorkspaceError(f"A camera frame must be height x width x 3 colours (got shape {array.shape}).")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])


def add_arrays(folder: Path, name: str, frames: list, prefix: str = "webcam") -> Made:
    """Save camera frames (numpy arrays) into a class as JPEG files named by the time they were taken."""
    class_dir = _class_dir(folder, name)
    added, refused = [], []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for index, frame in enumerate(frames):
        if frame is None:
            continue
        try:
            array = as_rgb_array(frame)
        except WorkspaceError as exc:
            refused.append((f"frame {index + 1}", str(exc)))
            continue
        target = _unique(class_dir, f"{_safe_stem(prefix)}-{stamp}", ".jpg")
        Image.fromarray(array, "RGB").save(target, "JPEG", quality=WEBCAM_QUALITY)
        added.append(target)
    if added:
        folder.touch()
    return Made(added, refused)


# ------------------------------------------------------------------ whole datasets

def zip_dataset(folder: Path, destination: Path | None = None) -> Path:
    """The dataset as a .zip of its class folders (`<name>/<class>/<file>`), ready to upload anywhere."""
    destination = Path(destination or scratch.new_folder("dataset-") / f"{folder.name}.zip")
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as archive:  # photos are compressed already
        for name in classes(folder):
            for file in images(folder, name):
                archive.write(file, f"{folder.name}/{name}/{file.name}")
    return destination


def copy_into_workspace(source: str | Path, name: str, user: str | None = None,
                        prefix_separator: str | None = None) -> tuple[Path, int]:
    """Copy any dataset the studio reads (folder, .zip, split folders, CSV, file-name classes) into a new
    workspace dataset of class folders, so it can be extended. Returns (folder, images copied).

    Train/validation folders become one folder per class (the studio then holds out 20% per class).
    """
    try:
        dataset = open_dataset(source, prefix_separator=prefix_separator)
    except DatasetError as exc:
        raise WorkspaceError(str(exc)) from exc
    labels = sorted(dataset.samples.label.unique(), key=str.lower)
    folder = create_dataset(name, user)
    made = {}
    try:
        for label in labels:
            try:
                made[label] = add_class(folder, label)
            except NameProblem as exc:
                raise WorkspaceError(f"Class '{label}' can't be copied: {exc}") from exc
        copied = 0
        for path, label in zip(dataset.samples.path, dataset.samples.label):
            file = Path(path)
            target = _unique(folder / made[label], _safe_stem(file.stem), file.suffix.lower()
                             if file.suffix.lower() in IMAGE_EXTENSIONS else ".jpg")
            shutil.copyfile(file, target)
            copied += 1
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, copied


def free_name(base: str, user: str | None = None) -> str:
    """`base`, or `base 2`, `base 3`… : the first name no dataset of this person has yet."""
    base = _safe_stem(base).replace("_", " ").strip() or "dataset"
    taken = {n.lower() for n in list_datasets(user)}
    for index in range(1, 10_000):
        candidate = base if index == 1 else f"{base} {index}"
        if candidate.lower() not in taken:
            return candidate
    return f"{base} {time.time_ns()}"
