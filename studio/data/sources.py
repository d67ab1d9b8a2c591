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

What a source is read into lives in `samples`; the layouts' readers in `layouts`; zips in `zips`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from studio.data.imaging import is_image_name
from studio.data.layouts import (ARCHIVE_SUFFIXES, find_csv, read_csv_samples, read_prefix_samples,
                                 scan_class_folders, skip_entry, unusable_reason, unwrap, visible_dirs)
from studio.data.samples import (EMPTY_CLASS, NO_TRAINING, OUTSIDE_CLASS, SPLIT_NAMES, TEST_SPLIT, Dataset,
                                 DatasetError, is_junk, junk_reason, stratified_split)
from studio.data.zips import MANIFEST, extract_zip, read_manifest

GROUP_AT = 3             # more junk files of one kind than this are shown as one line


def _locate(source: str | Path, flat: bool = False) -> tuple[Path, Path, dict | None]:
    """(the dataset's folder, the whole upload on disk, the extraction manifest if it came from a zip).

    A folder inside an earlier extraction (what the page hands to training) counts as that zip.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetError(f"{source} does not exist. Give a folder of class folders or a .zip of one.")
    if source.is_file() and source.suffix.lower() == ".zip":
        top = extract_zip(source)
        return unwrap(top, flat), top, read_manifest(top)
    if not source.is_dir():
        other = source.suffix.lower() in ARCHIVE_SUFFIXES or source.name.lower().endswith(".tar.gz")
        raise DatasetError(f"{source.name} is neither a folder nor a .zip file."
                           + (" Only .zip archives are read: unpack it and zip the folder again, or give the "
                              "folder itself." if other else ""))
    absolute = Path(os.path.abspath(source))
    for top in (absolute, *absolute.parents):
        manifest = read_manifest(top) if (top / MANIFEST).is_file() else None
        if manifest is not None:
            return unwrap(source, flat), top, manifest
    return unwrap(source, flat), source, None


def dataset_folder(source: str | Path, flat: bool = False) -> Path:
    """The folder that holds a dataset: a .zip is extracted (safely, once), a wrapping folder skipped."""
    return _locate(source, flat)[0]


def prefix_preview(source: str | Path, separator: str, limit: int = 8) -> dict:
    """What a filename-prefix separator would yield, shown before the user commits to it.

    {"examples": [(file name, class)], "classes": {class: count}, "unmatched": files without it}.
    """
    folder = dataset_folder(source, flat=True)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and is_image_name(p) and not is_junk(p.name))
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
                 prefix_separator: str | None = None, test_fraction: float = 0.0, task: str = "auto") -> Dataset:
    """Read a dataset folder or .zip into a Dataset, ready for checks and training.

    Layouts, in order: a labels CSV (`filename,label[,split]`, or several labels per photo: a multi-label
    task, `studio.multilabel.dataset`); a flat folder whose file names start with the class (when
    `prefix_separator` is given); split folders; class folders. `test_fraction` of the training photos
    become the test split when the data has none. `task`: auto (from the data), single-label or multi-label.
    """
    from studio.multilabel import dataset as multilabel
    multilabel.check_task(task)
    source = Path(source).expanduser()
    folder, top, manifest = _locate(source, flat=bool(prefix_separator))
    csv_path = None if prefix_separator else find_csv(folder)
    if multilabel.wants_multilabel(csv_path, task):
        return multilabel.open_multilabel(csv_path, folder, str(source), val_fraction, seed, test_fraction)
    rows, skipped, split_dirs, csv_path, layout = _read_layout(folder, prefix_separator)
    samples = pd.DataFrame(rows, columns=["path", "label", "split"])
    samples, split_source = _assign_splits(samples, from_csv=csv_path is not None, val_fraction=val_fraction,
                                           seed=seed, test_fraction=test_fraction)
    classes = sorted(samples[samples.split == "train"].label.unique().tolist())
    kept = samples[samples.label.isin(classes)].reset_index(drop=True)
    for label, rows_of in samples[~samples.label.isin(classes)].groupby("label", sort=True):
        reason = (f"{NO_TRAINING} '{label}': it has images only for validation or testing, so it is not a class. "
                  f"Add training images of '{label}'" + (f" (in train/{label}/)" if layout == "split" else "")
                  + " to use it.")
        skipped.extend(skip_entry(path, reason) for path in rows_of.path)
    dataset = Dataset(folder, kept, classes, [], split_source, str(source),
                      upload_root=os.path.abspath(top) if manifest is not None else "",
                      renamed=(manifest or {}).get("renamed", {}))
    accounted = _account_for_everything(top, folder, layout, csv_path, kept.path.tolist(), skipped,
                                        manifest is not None)
    accounted += _test_split_entries(kept, split_dirs, csv_path)
    refused = (manifest or {}).get("refused", [])
    listed = sorted((_public(e, dataset) for e in accounted), key=lambda row: row["path"].lower())
    dataset.skipped = [dict(r) for r in refused] + listed
    return dataset


def _read_layout(folder: Path, prefix_separator: str | None):
    """(rows, skipped, split folders, labels CSV or None, layout name) of the one layout the folder has."""
    rows: list[dict] = []
    skipped: list[dict] = []
    csv_path = find_csv(folder)
    split_dirs = {d: SPLIT_NAMES[d.name.lower()] for d in visible_dirs(folder) if d.name.lower() in SPLIT_NAMES}
    if csv_path is not None:
        read_csv_samples(csv_path, rows, skipped)
        return rows, skipped, {}, csv_path, "csv"
    if prefix_separator:
        read_prefix_samples(folder, prefix_separator, rows, skipped)
        return rows, skipped, {}, None, "prefix"
    if not split_dirs:
        scan_class_folders(folder, None, rows, skipped)
        return rows, skipped, {}, None, "classes"
    for directory, split in split_dirs.items():
        scan_class_folders(directory, split, rows, skipped)
    for other in sorted(folder.iterdir()):
        if other not in split_dirs and not is_junk(other.name):
            skipped.append(skip_entry(other, "not inside train/, val/ or test/: with split folders only the class "
                                      "folders inside them are read. Move it into train/<class>/ to use it.",
                                      folder=other.is_dir()))
    return rows, skipped, split_dirs, None, "split"


def _assign_splits(samples: pd.DataFrame, from_csv: bool, val_fraction: float, seed: int,
                   test_fraction: float = 0.0):
    """(samples with every row in train, val or test; where the split came from, in words).

    Splits the data names are kept; what is missing is made: no train split at all, a stratified
    validation part of everything; train without val, a stratified part of train. A test split is
    never made into validation: it is kept for the final, honest measurement (issue 17)."""
    split_source = "folders"
    present = set(samples.split.dropna())
    if "train" in present:
        samples["split"] = samples.split.fillna("train")  # CSV rows without a split train
    if from_csv:
        split_source = "csv" if present else "auto"
    if "train" not in present:
        samples["split"] = stratified_split(samples.label.tolist(), val_fraction, seed) if len(samples) else []
        split_source = "auto"
    elif "val" not in present:
        train = samples.split == "train"
        samples.loc[train, "split"] = stratified_split(samples[train].label.tolist(), val_fraction, seed)
        split_source = "auto" if "test" not in present else "validation taken from train; test kept apart"
    if test_fraction and "test" not in present and len(samples):
        train = samples.split == "train"
        held = pd.Series(stratified_split(samples[train].label.tolist(), test_fraction, seed + 1),
                         index=samples.index[train])
        samples.loc[held[held == "val"].index, "split"] = "test"
        split_source += f"; {test_fraction:.0%} of train held out as the test"
    return samples, split_source


def _test_split_entries(kept: pd.DataFrame, split_dirs: dict, csv_path: Path | None) -> list[dict]:
    """One "Files not used" line per test split (a folder, or a CSV's test rows), its photos as members."""
    if "test" not in set(kept.split):
        return []
    tested = [(d, kept[kept.path.map(lambda p, d=d: _under(p, d))].path.tolist())
              for d, split in split_dirs.items() if split == "test"]
    if csv_path is not None:
        tested = [(f"rows of {csv_path.name} with split 'test'", kept[kept.split == "test"].path.tolist())]
    if not tested:   # held out of train (test_fraction)
        tested = [("photos held out of train as the test split", kept[kept.split == "test"].path.tolist())]
    entries = []
    for where, files in tested:
        if files:
            entry = skip_entry(where, f"{TEST_SPLIT}: {len(files)} image(s) the finished model is measured on "
                                  "once, at the end. They are never trained on and never used for a choice (the "
                                  "best epoch, early stopping, Auto's depth), so their accuracy is honest.",
                               folder=isinstance(where, Path))
            entry["members"], entry["label"] = files, isinstance(where, str)
            entries.append(entry)
    return entries


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
            return unusable_reason(Path(path)) or "not an image file"
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

    Long on purpose: one walk over the upload, whose sets (taken, listed, holding, owners) every
    rule below reads; split up, each part would need all of them passed around.
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
        index = next((i for i, part in enumerate(parts) if is_junk(part)), None)
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
            owners[junk] = skip_entry(junk, junk_reason(os.path.basename(junk)), folder=True)
            entries.append(owners[junk])
            owners[junk]["members"].append(path)
        elif junk is not None:
            loose_junk.setdefault(junk_reason(os.path.basename(path)), []).append(path)
        else:
            entries.append(skip_entry(path, _unplaced_reason(path, layout, folder, csv_path)))

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
        reason = (junk_reason(os.path.basename(junk)) if junk else
                  "empty folder: there are no files in it, so there is nothing to train on. Nothing to do.")
        owners[path] = skip_entry(path, reason, folder=True)
        entries.append(owners[path])

    for reason, paths_of in loose_junk.items():
        if len(paths_of) > GROUP_AT:
            names = {os.path.basename(p) for p in paths_of}
            group = skip_entry(f"{names.pop()} ({len(paths_of)} files)" if len(names) == 1
                           else f"{len(paths_of)} hidden files", f"{reason} (one line for all of them)")
            group["members"], group["label"] = paths_of, True
            entries.append(group)
        else:
            entries.extend(skip_entry(p, reason) for p in paths_of)
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
