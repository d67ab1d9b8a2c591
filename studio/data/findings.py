"""What the dataset doctor says: a `Finding` (kind, severity, words, the files concerned and those it
suggests leaving out), and the findings that only need the samples table: duplicate groups sorted into
copies, conflicting labels and train/val leaks; one finding per kind of file the reading left out; class
balance. `checks` gathers the facts these read and runs them all (`diagnose`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.data.samples import EMPTY_CLASS, JUNK, LEFT_OUT, NO_TRAINING, NOT_UNPACKED, TEST_SPLIT, Dataset, per_label

IMBALANCE_RATIO = 3.0         # largest / smallest class
MIN_TRAIN_PER_CLASS = 5
MIN_VAL_PER_CLASS = 2

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    kind: str
    severity: str
    message: str
    paths: list[str] = field(default_factory=list)
    # files the studio leaves out if the user accepts the suggestion (subset of paths)
    exclude: list[str] = field(default_factory=list)



def duplicate_findings(samples, groups: list[list[int]], near: bool) -> list[Finding]:
    """Sort duplicate groups into: same class, different classes, train/val leak."""
    same, conflict, leak = [], [], []
    for group in groups:
        rows = samples.iloc[group]
        if rows.label.nunique() > 1:
            conflict.append(rows)
        elif rows.split.nunique() > 1:
            leak.append(rows)
        else:
            same.append(rows)
    word = "Near-duplicates (the same picture re-encoded or resized)" if near else "Exact duplicates (identical files)"
    findings = []
    if same:
        paths = [p for rows in same for p in rows.path]
        extra = [p for rows in same for p in rows.path.iloc[1:]]
        findings.append(Finding("near_duplicates" if near else "exact_duplicates", WARNING,
                                f"{word}: {len(same)} group(s) in the same class. Copies add no information "
                                f"and count twice. Suggestion: keep one of each ({len(extra)} file(s) left out).",
                                paths, extra))
    if conflict:
        paths = [p for rows in conflict for p in rows.path]
        findings.append(Finding("conflicting_labels", ERROR,
                                f"{len(conflict)} picture(s) appear in more than one class"
                                f"{' (as near-copies)' if near else ''}. The model is told the same image is "
                                "two different things. Suggestion: leave them all out, or move each to its one "
                                "right class.", paths, paths))
    if leak:
        paths = [p for rows in leak for p in rows.path]
        in_train = [p for rows in leak for p in rows[rows.split == "train"].path]
        findings.append(Finding("train_val_leak", ERROR,
                                f"{len(leak)} picture(s) are in both training and validation"
                                f"{' (as near-copies)' if near else ''}. Validation accuracy would be inflated: "
                                "the model is tested on photos it trained on. Suggestion: leave the training "
                                f"copies out ({len(in_train)} file(s)).", paths, in_train))
    return findings


def _skip_kind(reason: str) -> str | None:
    """Which finding a skipped line belongs to (None: the finding that left it out already names it)."""
    if reason.startswith(JUNK):
        return "junk"
    if reason.startswith(NOT_UNPACKED):
        return "not_unpacked"
    if reason.startswith("archive inside"):
        return "nested_archives"
    if reason.startswith(("listed in the CSV", "the CSV gives no label")):
        return "csv_missing_files"
    if reason.startswith("not named in the CSV"):
        return "csv_unlabelled_files"
    if reason.startswith((EMPTY_CLASS, NO_TRAINING)):
        return "unused_classes"
    if reason.startswith(TEST_SPLIT):
        return "test_split"
    if reason.startswith(LEFT_OUT):
        return None
    return "not_images"


def _named(rows: list[dict]) -> list[str]:
    """Every name in these skipped lines (a line for a group of files stands for its members)."""
    return [name for row in rows for name in (row.get("members") or [row["path"]])]


def _unused_class_names(rows: list[dict]) -> list[str]:
    names = []
    for row in rows:
        reason = row["reason"]
        if reason.startswith(NO_TRAINING) and "': " in reason:
            names.append(reason[len(NO_TRAINING) + 2:reason.index("': ")])
        elif reason.startswith(EMPTY_CLASS):
            names.append(Path(row["path"].rstrip("/")).name)
    return sorted(set(names), key=str.lower)


# (kind, severity, count files rather than lines, words): one finding per kind of left-out file, in this order
_SKIP_WORDS = (
    ("not_unpacked", WARNING, False, "{n} member(s) of the zip were not unpacked: names with '..' or an absolute "
     "path, links and device files are refused for safety, and encrypted, damaged or same-named files cannot be "
     "read. Nothing was written for them; the skipped list says what to do for each."),
    ("unused_classes", WARNING, False, "{n} class(es) are not used, because they have no usable training images: "
     "{names}. Add training images of each, or remove its folder."),
    ("junk", INFO, True, "{n} system or hidden file(s) (__MACOSX, .DS_Store, Thumbs.db, hidden folders) are not "
     "data: ignored, never a class."),
    ("nested_archives", WARNING, False, "{n} archive(s) inside the dataset are not opened (a zip inside a zip can "
     "hide a zip bomb). Unpack them into class folders if they hold images."),
    ("csv_missing_files", WARNING, False, "{n} row(s) of the labels CSV name a file that is not there (or give it "
     "no label). Check the file names in the CSV against the files you uploaded."),
    ("csv_unlabelled_files", WARNING, False, "{n} image(s) are not named in the labels CSV, so they have no class "
     "and are not used. Add a row for each one you want to train on."),
    ("test_split", INFO, True, "{n} image(s) of the test split are kept apart: never trained on and never used "
     "for a choice, they measure the finished model once, at the end, honestly."),
    ("not_images", WARNING, True, "{n} file(s) are not used (not an image, empty, unreadable, or outside the "
     "expected folders) and are left out. See the skipped list for each reason."),
)


def skipped_findings(skipped: list[dict]) -> list[Finding]:
    """One finding per kind of file that the reading left out, naming every file of it."""
    by_kind: dict[str, list[dict]] = {}
    for row in skipped:
        kind = _skip_kind(row["reason"])
        if kind:
            by_kind.setdefault(kind, []).append(row)
    findings = []
    for kind, severity, per_file, words in _SKIP_WORDS:
        rows = by_kind.get(kind)
        if not rows:
            continue
        if kind == "unused_classes":
            names = _unused_class_names(rows)
            message = words.format(n=len(names), names=", ".join(f"'{n}'" for n in names))
        else:
            message = words.format(n=len(_named(rows)) if per_file else len(rows))
        findings.append(Finding(kind, severity, message, _named(rows)))
    return findings


def balance_findings(dataset: Dataset, usable) -> list[Finding]:
    findings = []
    usable = per_label(usable) if dataset.is_multilabel else usable   # a photo counts for each of its labels
    train_counts = usable[usable.split == "train"].label.value_counts().reindex(dataset.classes, fill_value=0)
    val_counts = usable[usable.split == "val"].label.value_counts().reindex(dataset.classes, fill_value=0)
    if len(train_counts) >= 2 and train_counts.min() > 0 and train_counts.max() / train_counts.min() >= IMBALANCE_RATIO:
        big, small = train_counts.idxmax(), train_counts.idxmin()
        what = "label" if dataset.is_multilabel else "class"
        guess = (f"A model can score well by mostly saying '{big}' and rarely '{small}'" if dataset.is_multilabel
                 else f"A model can score well by mostly guessing '{big}'")
        findings.append(Finding("class_imbalance", WARNING,
                                f"{what.capitalize()}s are unbalanced: '{big}' has {train_counts.max()} training "
                                f"images, '{small}' only {train_counts.min()}. {guess}; watch the per-{what} "
                                f"results, and add images {'of' if dataset.is_multilabel else 'to'} the small "
                                f"{what}s if you can."))
    few_train = [c for c in dataset.classes if 0 < train_counts[c] < MIN_TRAIN_PER_CLASS]
    if few_train:
        findings.append(Finding("too_few_images", WARNING,
                                "Too few training images in: " + ", ".join(f"'{c}' ({train_counts[c]}, add "
                                f"{MIN_TRAIN_PER_CLASS - train_counts[c]}+)" for c in few_train)
                                + f". Aim for at least {MIN_TRAIN_PER_CLASS}, better 20 or more per class."))
    few_val = [c for c in dataset.classes if val_counts[c] < MIN_VAL_PER_CLASS]
    if few_val:
        findings.append(Finding("too_few_validation", WARNING,
                                "Too few validation images to judge: " + ", ".join(f"'{c}' ({val_counts[c]})"
                                                                                  for c in few_val)
                                + f". With fewer than {MIN_VAL_PER_CLASS} per class, accuracy numbers mean little."))
    return findings


