"""A multi-label labels CSV read into photos and their label sets, and what the data check says about them.

Two shapes are read, the ones people have:
- one label column holding several labels, `photo.jpg,Drama;Romance`: the separator is detected (the one of
  SEPARATORS found in most label cells) or given;
- one 0/1 column per label (`photo.jpg,cat,dog,car` with 1 where the photo shows it), as exported by most
  labelling tools.

Files are found as for a single-label CSV (beside the CSV, or by name anywhere under it), and every row or
file not used is listed with the reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pandas as pd

from studio.data.layouts import (FILENAME_COLUMNS, listed_file_index, missing_listed, resolve_listed, skip_entry,
                                 unlisted_files, unusable_reason)
from studio.data.samples import SPLIT_NAMES, DatasetError

SEPARATORS = (";", "|", ",", " ")   # in the order a tie is broken: ';' and '|' never occur in a class name
LABELS_COLUMNS = ("labels", "label", "tags", "classes", "class", "categories", "category", "target")
TRUE_VALUES, FALSE_VALUES = {"1", "true", "yes", "y"}, {"0", "false", "no", "n", ""}
RARE_BELOW = 10            # photos: fewer and a label is "too rare to learn" (a weak rule; see MULTILABEL.md)
MULTI_FROM = 0.05          # share of rows with several labels from which a CSV is taken as multi-label


@dataclass
class LabelSets:
    """The photos of a multi-label CSV: rows of {path, labels (a list), split}, the labels in first-seen order
    sorted by name, how the CSV was read (`layout`: "separated" or "columns", `separator`), and every row or
    file not used, with the reason."""
    rows: list[dict]
    labels: list[str]
    layout: str
    separator: str | None = None
    skipped: list[dict] = field(default_factory=list)

    def matrix(self) -> pd.DataFrame:
        """0/1, one row per photo (index: path), one column per label."""
        table = pd.DataFrame(0, index=[r["path"] for r in self.rows], columns=self.labels, dtype="int8")
        for row in self.rows:
            table.loc[row["path"], row["labels"]] = 1
        return table


def detect_separator(cells: list[str]) -> str | None:
    """The separator most label cells use, or None when no cell holds two labels (a single-label column)."""
    counts = {sep: sum(1 for c in cells if len([p for p in c.split(sep) if p.strip()]) > 1) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: (counts[sep], -SEPARATORS.index(sep)))
    return best if counts[best] else None


def _columns(table: pd.DataFrame) -> tuple[str, str | None, list[str], str | None]:
    """(file column, labels column or None, 0/1 label columns, split column or None)."""
    lowered = {str(c).strip().lower(): c for c in table.columns}
    file_col = next((lowered[c] for c in FILENAME_COLUMNS if c in lowered), None)
    if file_col is None:
        raise DatasetError(f"the CSV needs a column naming each photo ({', '.join(FILENAME_COLUMNS[:3])}, ...); "
                           f"it has: {', '.join(map(str, table.columns))}.")
    split_col = lowered.get("split")
    labels_col = next((lowered[c] for c in LABELS_COLUMNS if c in lowered), None)
    others = [c for c in table.columns if c not in (file_col, split_col, labels_col)]
    binary = [c for c in others if set(table[c].str.strip().str.lower()) <= TRUE_VALUES | FALSE_VALUES
              and (table[c].str.strip() != "").any()]
    return file_col, labels_col, binary, split_col


def is_multilabel(table: pd.DataFrame) -> bool:
    """Whether a labels CSV describes several labels per photo: 0/1 label columns (two or more, no labels
    column), or a labels column where at least MULTI_FROM of the rows hold several labels."""
    try:
        _, labels_col, binary, _ = _columns(table)
    except DatasetError:
        return False
    from studio.data.layouts import LABEL_COLUMNS as SINGLE
    lowered = {str(c).strip().lower() for c in table.columns}
    if labels_col is not None and str(labels_col).strip().lower() not in SINGLE and lowered & set(SINGLE):
        return False   # `filename,category,tags`: the single-label reader takes `category`, as it always has
    if labels_col is None:
        return len(binary) >= 2
    cells = [str(c).strip() for c in table[labels_col]]
    separator = detect_separator(cells)
    if separator is None or separator == " ":   # a space also separates words of one class name
        return False
    several = sum(1 for c in cells if len([p for p in c.split(separator) if p.strip()]) > 1)
    return several >= MULTI_FROM * max(1, len(cells))


def read_label_sets(csv_path: Path, separator: str | None = None) -> LabelSets:
    """The photos and label sets of a multi-label CSV (see the module's docstring); `separator` overrides the
    detected one."""
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{csv_path.name} could not be read as a CSV file ({exc}).") from exc
    file_col, labels_col, binary, split_col = _columns(table)
    if labels_col is None and len(binary) < 2:
        raise DatasetError(f"{csv_path.name} has no labels column (labels, tags, ...) and fewer than two 0/1 "
                           "columns: give each photo its labels as `photo.jpg,cat;dog`, or one 0/1 column per label.")
    base = csv_path.parent
    index = listed_file_index(base)
    if labels_col is not None:
        cells = [str(c).strip() for c in table[labels_col]]
        separator = separator or detect_separator(cells) or ";"
        sets = [sorted({p.strip() for p in c.split(separator) if p.strip()}) for c in cells]
        layout = "separated"
    else:
        sets = [[c for c in binary if str(row[c]).strip().lower() in TRUE_VALUES] for _, row in table.iterrows()]
        layout, separator = "columns", None
    rows, skipped, named = [], [], set()
    for (_, row), labels in zip(table.iterrows(), sets):
        name = str(row[file_col]).strip()
        found = resolve_listed(name, base, index)
        if found is None:
            skipped.append(missing_listed(base, name, csv_path))
            continue
        named.add(found.resolve())
        reason = unusable_reason(found)
        if reason:
            skipped.append(skip_entry(found, reason))
            continue
        split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
        rows.append({"path": str(found), "labels": labels, "split": split})
    skipped.extend(unlisted_files(index, named, csv_path, "labels"))
    labels = sorted({label for row in rows for label in row["labels"]}) if layout == "separated" else list(binary)
    return LabelSets(rows, labels, layout, separator, skipped)


def check(sets: LabelSets, rare_below: int = RARE_BELOW) -> dict:
    """The data check's multi-label figures: labels per photo, photos per label, labels that always occur
    together, labels too rare to learn and photos with no label, each with words."""
    per_photo = Counter(len(row["labels"]) for row in sets.rows)
    per_label = Counter(label for row in sets.rows for label in row["labels"])
    photos_of = {label: {row["path"] for row in sets.rows if label in row["labels"]} for label in sets.labels}
    together = [[a, b] for a, b in combinations(sets.labels, 2)
                if len(photos_of[a]) >= 2 and photos_of[a] == photos_of[b]]
    rare = sorted((label for label in sets.labels if per_label[label] < rare_below), key=lambda x: per_label[x])
    unlabelled = [row["path"] for row in sets.rows if not row["labels"]]
    words = [f"{len(sets.rows):,} photos, {len(sets.labels)} labels, "
             f"{sum(per_label.values()) / max(1, len(sets.rows)):.1f} labels per photo on average "
             f"(from {min(per_photo, default=0)} to {max(per_photo, default=0)})."]
    if together:
        words.append("Always together (the model cannot tell them apart; merge them or add photos with one "
                     "without the other): " + ", ".join(f"{a} + {b}" for a, b in together) + ".")
    if rare:
        words.append(f"Too rare to learn well (under {rare_below} photos): " +
                     ", ".join(f"{label} ({per_label[label]})" for label in rare) + ".")
    if unlabelled:
        words.append(f"{len(unlabelled)} photo(s) have no label: they teach the model that none of the labels is "
                     "there. If that is not true, label them.")
    return {"photos": len(sets.rows), "labels": len(sets.labels),
            "labels_per_photo": {str(k): per_photo[k] for k in sorted(per_photo)},
            "photos_per_label": {label: per_label[label] for label in sets.labels},
            "always_together": together, "rare": rare, "no_label": unlabelled, "words": words}
