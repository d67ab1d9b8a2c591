"""A multi-label labels CSV opened as a `Dataset` the engine trains on, and the switch between kinds of task.

The samples table keeps its usual columns (path, label, split): a photo's labels share its one `label` cell,
joined by LABEL_JOIN, so the doctor's checks (duplicates, leaks, unreadable files), samples.csv and resuming
work unchanged; `Dataset.by_class()` splits them wherever a count per class is made.
Without a split column, the validation (and test) photos are drawn at random: a stratified split per label
set would leave most sets (often unique) without a validation photo.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from studio.data.samples import LABEL_JOIN, MULTI_LABEL, SINGLE_LABEL, Dataset, DatasetError, stratified_split
from studio.multilabel.labels import LabelSets, check, read_label_sets

TASKS = ("auto", SINGLE_LABEL, MULTI_LABEL)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}.")
    return task


def wants_multilabel(csv_path: Path | None, task: str) -> bool:
    """Whether the data is read as multi-label: asked for, or (Auto) a labels CSV that gives several labels per
    photo. A single-label task asked for on such a CSV is refused in words by `refuse_single`."""
    if task == MULTI_LABEL:
        if csv_path is None:
            raise DatasetError("A multi-label task needs a labels CSV that gives each photo its labels "
                               "(`photo.jpg,cat;dog`, or one 0/1 column per label): class folders give one "
                               "class per photo.")
        return True
    if csv_path is None:
        return False
    from studio.multilabel.labels import is_multilabel
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError):
        return False   # the single-label reader says what is wrong with it
    if not is_multilabel(table):
        return False
    if task == SINGLE_LABEL:
        refuse_single(csv_path)
    return True


def refuse_single(csv_path: Path) -> None:
    """A single-label task on photos with several labels: allowed only when no photo has more than one."""
    sets = read_label_sets(csv_path)
    several = sum(1 for row in sets.rows if len(row["labels"]) > 1)
    if several:
        raise DatasetError(f"{several} photos in {csv_path.name} have several labels, so this cannot be a "
                           "single-label task (one class per photo): choose multi-label, or give each photo one "
                           "label.")


def open_multilabel(csv_path: Path, folder: Path, source: str, val_fraction: float, seed: int,
                    test_fraction: float = 0.0, separator: str | None = None) -> Dataset:
    """The CSV's photos as a multi-label Dataset (see the module's docstring), every row or file not used in
    `skipped`, and the multi-label data check in `multilabel_check`."""
    sets = read_label_sets(csv_path, separator)
    joined = [label for label in sets.labels if LABEL_JOIN in label]
    if joined:
        raise DatasetError(f"Label names may not contain '{LABEL_JOIN}' ({', '.join(joined[:3])}): rename them.")
    samples = pd.DataFrame([{"path": row["path"], "label": LABEL_JOIN.join(row["labels"]), "split": row["split"]}
                            for row in sets.rows], columns=["path", "label", "split"])
    split_source = _assign_splits(samples, val_fraction, seed, test_fraction)
    train = samples[samples.split == "train"]
    classes = sorted({label for cell in train.label for label in cell.split(LABEL_JOIN) if label})
    dataset = Dataset(folder, samples.reset_index(drop=True), classes, list(sets.skipped), split_source,
                      str(source), task=MULTI_LABEL, multilabel_check=_check(sets, classes))
    _unknown_labels_skipped(dataset)
    return dataset


def _assign_splits(samples: pd.DataFrame, val_fraction: float, seed: int, test_fraction: float) -> str:
    present = set(samples.split.dropna())
    if "train" in present:
        samples["split"] = samples.split.fillna("train")
        if "val" in present:
            return "csv"
    train = samples.split.isna() | (samples.split == "train")
    if len(samples):
        drawn = stratified_split(["any"] * int(train.sum()), val_fraction, seed)   # one group: drawn at random
        samples.loc[train, "split"] = drawn
    words = "auto (drawn at random: label sets are too many to stratify by)"
    if test_fraction and "test" not in present and len(samples):
        train = samples.split == "train"
        held = stratified_split(["any"] * int(train.sum()), test_fraction, seed + 1)
        samples.loc[samples.index[train][[h == "val" for h in held]], "split"] = "test"
        words += f"; {test_fraction:.0%} of train held out as the test"
    return words


def _unknown_labels_skipped(dataset: Dataset) -> None:
    """Labels only validation or test photos have cannot be learnt: they are dropped from those photos' cells
    (the photos stay, for their other labels), and said."""
    known = set(dataset.classes)
    cells = dataset.samples.label.map(lambda cell: [x for x in cell.split(LABEL_JOIN) if x])
    unknown = sorted({x for labels in cells for x in labels} - known)
    if not unknown:
        return
    dataset.samples["label"] = cells.map(lambda labels: LABEL_JOIN.join(x for x in labels if x in known))
    dataset.skipped.append({"path": ", ".join(unknown), "reason": "labels with no training photo: they were "
                            "removed from the validation and test photos that had them (a label needs training "
                            "photos to be learnt). Give some training photos these labels to use them."})


def _check(sets: LabelSets, classes: list[str]) -> dict:
    report = check(sets)
    report.update(separator=sets.separator, layout=sets.layout, label_names=classes)
    return report


def label_matrix(cells, classes: list[str]):
    """0/1 float targets, one row per `label` cell and one column per class (the loss's and metrics' input)."""
    import torch
    index = {name: i for i, name in enumerate(classes)}
    targets = torch.zeros(len(cells), len(classes))
    for row, cell in enumerate(cells):
        for label in str(cell).split(LABEL_JOIN):
            if label in index:
                targets[row, index[label]] = 1.0
    return targets
