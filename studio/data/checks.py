"""The dataset doctor: find what would ruin a model before it is trained.

One pass over the files (threaded; JPEGs decoded in draft mode near the size
training needs) learns each image's format, size, a byte hash and a perceptual
hash, and for a training run keeps the decoded square too, so no image is
decoded twice; the checks below only read those facts. Every finding names the files concerned and says in
plain words why it matters and what the studio will do. Nothing is deleted or
changed: the user decides what to exclude, and training then uses exactly the
files the report says it uses.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from studio.choices import DEFAULT_EXCLUDE, EXCLUDABLE  # noqa: F401 - named here too
from studio.data.findings import (ERROR, INFO, WARNING, Finding, balance_findings, duplicate_findings,
                                  skipped_findings)
from studio.data.imaging import open_rgb, square_of
from studio.data.pixels import SquareCache, decode_threads
from studio.data.samples import LEFT_OUT, Dataset, DatasetError, per_label

MIN_SIDE = 32                 # px: below this an image carries almost nothing for a 224 px network
MAX_ASPECT = 4.0              # wider or taller than 4:1 loses most of the picture in a square crop
MAX_PIXELS = 100_000_000      # above this the header alone refuses it (decompression bomb)
HASH_DRAFT = 256              # px: decode size for hashing when no training square is wanted
NEAR_DUPLICATE_BITS = 4       # of 64 dHash bits: re-encoded or resized copies differ by a few
NEAR_DUPLICATE_COLOUR = 20    # mean 8x8 RGB difference (0-255): flat pictures share hashes, not colours
EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
                     ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}




@dataclass
class ImageFacts:
    path: str
    bytes_hash: str = ""
    dhash: int | None = None
    width: int = 0
    height: int = 0
    format: str = ""
    thumb: np.ndarray | None = None   # 8x8 RGB: confirms a hash match is the same picture, not just flat
    error: str | None = None


@dataclass
class Report:
    findings: list[Finding]
    facts: dict[str, ImageFacts]
    trainable: bool
    reason: str = ""

    def to_dict(self, dataset: Dataset) -> dict:
        counts = dataset.counts()
        return {"root": str(dataset.root), "classes": {c: {s: int(counts.loc[c, s]) for s in counts.columns}
                                                     for c in dataset.classes},
                "images": int(len(dataset.samples)), "split_source": dataset.split_source,
                "skipped": dataset.skipped, "findings": [asdict(f) for f in self.findings],
                "trainable": self.trainable, "reason": self.reason}

    def by_kind(self, kind: str) -> Finding | None:
        return next((f for f in self.findings if f.kind == kind), None)


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: survives re-encoding and resizing, not a different photo."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def inspect(path: str, side: int | None = None) -> tuple[ImageFacts, np.ndarray | None]:
    """What the doctor needs to know about one file (never raises).

    With `side`, the same decode also yields the square a training run caches
    (see `pixels`), so a run reads and decodes each image once, not twice.
    """
    facts, square = ImageFacts(path), None
    try:
        data = Path(path).read_bytes()
        facts.bytes_hash = hashlib.sha1(data).hexdigest()
        with Image.open(path) as image:
            facts.format, (facts.width, facts.height) = image.format or "", image.size
        if facts.width * facts.height > MAX_PIXELS:
            facts.error = (f"{facts.width}x{facts.height} pixels: too large to open safely "
                           "(possible decompression bomb); refused without decoding")
            return facts, None
        decoded = open_rgb(path, draft=side or HASH_DRAFT)
        facts.dhash = dhash(decoded)
        facts.thumb = np.asarray(decoded.resize((8, 8), Image.Resampling.BOX), dtype=np.int16)
        if side:
            square = square_of(decoded, side)
    except Exception as exc:  # any unreadable file is a finding, not a crash
        facts.error = f"not a readable image ({exc.__class__.__name__}: {exc})"[:300]
    return facts, square


def gather(paths: list[str], progress: Callable[[int, int], None] | None = None,
           squares: SquareCache | None = None) -> dict[str, ImageFacts]:
    """Inspect every file on a thread pool; fill `squares` for the files it holds rows for."""
    facts: dict[str, ImageFacts] = {}

    def work(path: str) -> ImageFacts:
        row = squares.rows.get(path) if squares else None
        result, square = inspect(path, squares.side if row is not None else None)
        if square is not None:
            squares.pixels[row] = square
        return result

    with ThreadPoolExecutor(decode_threads()) as pool:
        for done, result in enumerate(pool.map(work, paths), start=1):
            facts[result.path] = result
            if progress and (done % 64 == 0 or done == len(paths)):
                progress(done, len(paths))
    return facts


def _near_duplicate_pairs(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int]]:
    """Index pairs (i < j, sorted) whose 64-bit hashes differ in at most max_bits bits.

    Comparing every pair is quadratic (50,000 photos: minutes on one core). Instead the hash is cut
    into max_bits + 1 bands: two hashes that differ in at most max_bits bits agree exactly on at least
    one band (pigeonhole), so only photos that share a band's value are compared. Exact, not approximate."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    bands = max_bits + 1
    width = -(-64 // bands)
    found: set[tuple[int, int]] = set()
    for band in range(bands):
        shift = band * width
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << min(width, 64 - shift)) - 1)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(order)]):
            if end - start > 1:
                found.update(_close_pairs(hashes, np.sort(order[start:end]), max_bits))
    return sorted(found)


def _close_pairs(hashes: np.ndarray, members: np.ndarray, max_bits: int, block: int = 1024):
    """Pairs of `members` (ascending indices) within max_bits bits of each other, blockwise."""
    for start in range(0, len(members), block):
        rows = members[start:start + block]
        distance = np.bitwise_count(hashes[rows][:, None] ^ hashes[members][None, :])
        r, c = np.nonzero(distance <= max_bits)
        keep = start + r < c
        yield from zip(rows[r[keep]].tolist(), members[c[keep]].tolist())


def _same_colours(a: ImageFacts, b: ImageFacts) -> bool:
    return float(np.abs(a.thumb - b.thumb).mean()) <= NEAR_DUPLICATE_COLOUR


def _groups(pairs: list[tuple[int, int]], n: int) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def diagnose(dataset: Dataset, progress: Callable[[int, int], None] | None = None,
             squares: SquareCache | None = None) -> Report:
    """Check a dataset; returns every finding, and whether a classifier can be trained on it.

    A training run passes `squares` to keep the decoded pixels of its files. Images
    that cannot be decoded are added to `dataset.skipped` (training always leaves them
    out), so the page and `studio doctor --json` list them with everything else unused.
    """
    samples = dataset.samples.reset_index(drop=True)
    facts = gather(samples.path.tolist(), progress, squares)
    findings: list[Finding] = []

    findings += skipped_findings(dataset.skipped)
    broken = [p for p, f in facts.items() if f.error]
    if broken:
        findings.append(Finding("unreadable", ERROR, f"{len(broken)} image(s) cannot be decoded (truncated, "
                                "corrupt or too large). They are left out of training.", broken, broken))
        _list_undecodable(dataset, {p: facts[p].error for p in broken})
    lying = [p for p, f in facts.items() if not f.error and f.format and
             EXTENSION_FORMATS.get(Path(p).suffix.lower()) not in (None, f.format)]
    if lying:
        findings.append(Finding("wrong_extension", INFO, f"{len(lying)} file(s) have an extension that does not "
                                "match their content (e.g. a PNG named .jpg). The studio reads them by content, "
                                "but other tools may not.", lying))
    tiny = [p for p, f in facts.items() if not f.error and min(f.width, f.height) < MIN_SIDE]
    if tiny:
        findings.append(Finding("tiny_images", WARNING, f"{len(tiny)} image(s) are smaller than {MIN_SIDE} px "
                                "on a side; enlarged to the network's input size they carry little detail.",
                                tiny, tiny))
    wide = [p for p, f in facts.items() if not f.error and f.height and
            max(f.width / f.height, f.height / f.width) > MAX_ASPECT]
    if wide:
        findings.append(Finding("extreme_aspect", WARNING, f"{len(wide)} image(s) are more than {MAX_ASPECT:g} "
                                "times wider than tall (or the reverse); the centre square the network sees "
                                "misses most of them.", wide))

    usable = samples[samples.path.map(lambda p: not facts[p].error)].reset_index(drop=True)
    by_hash: dict[str, list[int]] = {}
    for i, p in enumerate(usable.path):
        by_hash.setdefault(facts[p].bytes_hash, []).append(i)
    exact_groups = [g for g in by_hash.values() if len(g) > 1]
    findings += duplicate_findings(usable, exact_groups, near=False)
    exact_members = {i for g in exact_groups for i in g[1:]}
    candidates = [i for i in range(len(usable)) if i not in exact_members]
    if candidates:
        hashes = np.array([facts[usable.path[i]].dhash for i in candidates], dtype=np.uint64)
        pairs = [(candidates[a], candidates[b]) for a, b in _near_duplicate_pairs(hashes, NEAR_DUPLICATE_BITS)]
        pairs = [(a, b) for a, b in pairs if _same_colours(facts[usable.path[a]], facts[usable.path[b]])]
        findings += duplicate_findings(usable, _groups(pairs, len(usable)), near=True)

    findings += balance_findings(dataset, usable)
    trainable, reason = _trainability(dataset, usable)
    if not trainable:
        findings.insert(0, Finding("not_trainable", ERROR, reason))
    return Report(findings, facts, trainable, reason)


def _left_out(skipped: list[dict]) -> set[str]:
    """Names already listed as left out of training (one reason per file is enough)."""
    return {row["path"] for row in skipped if row["reason"].startswith(LEFT_OUT)}


def _list_undecodable(dataset: Dataset, errors: dict[str, str]) -> None:
    """Images that cannot be decoded are always left out of training, so they join the skipped list."""
    listed = _left_out(dataset.skipped)
    for path, error in errors.items():
        name = dataset.shown(path)
        if name not in listed:
            dataset.skipped.append({"path": name, "reason": f"{LEFT_OUT}: the image cannot be decoded "
                                    f"({error}). Open it in an image viewer; if it is broken, export it again."})


def _trainability(dataset: Dataset, usable) -> tuple[bool, str]:
    by_class = per_label(usable) if dataset.is_multilabel else usable
    classes = sorted(by_class[by_class.split == "train"].label.unique())
    if len(usable) == 0:
        return False, ("No usable images found. Put the images of each class in a folder named after the "
                       "class (e.g. cats/, dogs/).")
    if len(classes) < 2:
        return False, (f"Only one class found ({', '.join(classes)}). A classifier needs at least two "
                       "classes: add a folder of images for another class.")
    if (usable.split == "val").sum() == 0:
        return False, "No validation images: each class needs at least 2 images so one can be held out."
    return True, ""


def apply_exclusions(dataset: Dataset, report: Report, kinds: list[str]) -> Dataset:
    """A copy of the dataset without the files the chosen findings suggest leaving out.

    Unreadable images are always left out (they cannot be trained on). Left-out
    files move to `skipped` with the reason, so the report stays complete.
    """
    chosen = set(kinds) | {"unreadable"}
    reasons: dict[str, str] = {}
    for finding in report.findings:
        if finding.kind in chosen:
            for path in finding.exclude:
                reasons.setdefault(path, f"left out: {finding.kind.replace('_', ' ')}")
    keep = ~dataset.samples.path.isin(reasons)
    return replace(dataset, samples=dataset.samples[keep].reset_index(drop=True),
                   skipped=_with_left_out(dataset, reasons))


def leave_out_files(dataset: Dataset, reasons: dict[str, str]) -> Dataset:
    """A copy of the dataset without the given files ({path: reason}), listed in `skipped`."""
    if not reasons:
        return dataset
    by_resolved = {str(Path(p).resolve()): r for p, r in reasons.items()}
    resolved = dataset.samples.path.map(lambda p: str(Path(p).resolve()))
    reasons = {**{p: by_resolved[r] for p, r in zip(dataset.samples.path, resolved) if r in by_resolved}, **reasons}
    keep = ~dataset.samples.path.isin(reasons)
    gone = set(dataset.samples.path[~keep])
    return replace(dataset, samples=dataset.samples[keep].reset_index(drop=True),
                   skipped=_with_left_out(dataset, {p: r for p, r in reasons.items() if p in gone}))


def read_photo_list(path: str | Path, data: str | Path | None = None) -> dict[str, str]:
    """{photo path: reason} from a list of photos to leave out: a CSV with a `path` column (and perhaps a
    `reason` one: a run's wrong-folder.csv as it is) or plain text, one path per line. A relative path is
    taken from the data folder when the photo is there, else from the current folder."""
    import pandas as pd

    from studio.data.layouts import FILENAME_COLUMNS
    text = Path(path).read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else ""
    header = {c.strip().lower(): c.strip() for c in first.split(",")}
    column = next((header[c] for c in FILENAME_COLUMNS if c in header), None)
    if column is not None and "," in first:   # a CSV with a path column (any order, any other columns)
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.columns = [c.strip() for c in table.columns]
        pairs = zip(table[column], table["reason"] if "reason" in table else [""] * len(table))
    else:
        pairs = ((line.strip(), "") for line in text.splitlines() if line.strip() and not line.startswith("#"))
    base = Path(data) if data and Path(data).is_dir() else None
    listed = {}
    for photo, reason in pairs:
        where = Path(photo).expanduser()
        if not where.is_absolute():
            where = base / where if base is not None and (base / where).exists() else Path.cwd() / where
        listed[str(where.resolve())] = f"left out: {reason}" if reason else f"left out: listed in {Path(path).name}"
    return listed


def listed_in_dataset(dataset: Dataset, listed: dict[str, str], list_name: str = "the list") -> dict[str, str]:
    """`listed` ({resolved path: reason}, see read_photo_list) keyed by the dataset's own path strings, for
    the photos that are in it. A list none of whose photos is in the dataset is a mistake (another dataset's
    list, or paths relative to another folder): refused, not silently ignored."""
    own = {str(Path(p).resolve()): p for p in dataset.samples.path}
    found = {own[p]: reason for p, reason in listed.items() if p in own}
    if listed and not found:
        example = next(iter(listed))
        raise DatasetError(f"None of the {len(listed)} photos listed in {list_name} is in this dataset (the first: "
                           f"{example}). Give a list of this dataset's photos (a run's wrong-folder.csv, or paths "
                           "relative to the data folder).")
    return found


def _with_left_out(dataset: Dataset, reasons: dict[str, str]) -> list[dict]:
    """The skipped list plus these files ({path: reason}), named as uploaded, each listed once."""
    skipped = list(dataset.skipped)
    listed = _left_out(skipped)
    for path, reason in reasons.items():
        name = dataset.shown(path)
        if name not in listed:
            skipped.append({"path": name, "reason": reason})
            listed.add(name)
    return skipped
