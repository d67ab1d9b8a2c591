"""Everything in an upload that is not trained on is named, as it was in the upload, with a reason.

The corpus is built here: zips with members crafted for every way a file can
fail to reach training (unsafe names, links, devices, encrypted, damaged and
same-named members, directory-only entries, empty classes, system files, files
in the wrong place, a test split, a labels CSV, file-name classes), a folder
with a pipe and links, and a tar. Each upload is checked through `studio doctor
--json` (a subprocess, as a user runs it) and through the Data step's own
handler, and the two must list the same files for the same reasons.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import uuid
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from helpers import example_files
from studio import paths
from studio.data.sources import open_dataset
from studio.data.checks import diagnose

ABSOLUTE = f"/tmp/studio-absolute-{uuid.uuid4().hex}.jpg"   # where an absolute member would land


def _photos(label: str, count: int, start: int = 0) -> list[bytes]:
    return [f.read_bytes() for f in example_files("train", label, start + count)[start:]]


def _member(zf: zipfile.ZipFile, name: str, data: bytes = b"", mode: int | None = None,
            method: int = zipfile.ZIP_DEFLATED) -> None:
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.compress_type = method
    if mode is not None:
        info.external_attr = mode << 16
        info.create_system = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "Duplicate name": the corpus means it
        zf.writestr(info, data)


def _patch(archive: Path, name: str, flags: int = 0, method: int | None = None, flip_data: bool = False) -> None:
    """Rewrite one member's header bytes in place: set general-purpose flag bits, change the compression
    method, or damage its data. zipfile cannot write encrypted or deflate64 members, so the test makes them."""
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo(name)
        start_dir = zf.start_dir
    local = info.header_offset
    name_len, extra_len = struct.unpack("<HH", raw[local + 26:local + 30])
    offsets = [(local + 6, local + 8)]
    position = start_dir
    while raw[position:position + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack("<HHH", raw[position + 28:position + 34])
        if raw[position + 42:position + 46] == struct.pack("<I", local):
            offsets.append((position + 8, position + 10))
        position += 46 + n + e + c
    assert len(offsets) == 2, "member not found in the central directory"
    for flag_at, method_at in offsets:
        raw[flag_at:flag_at + 2] = struct.pack("<H", struct.unpack("<H", raw[flag_at:flag_at + 2])[0] | flags)
        if method is not None:
            raw[method_at:method_at + 2] = struct.pack("<H", method)
    if flip_data:
        data_at = local + 30 + name_len + extra_len
        raw[data_at + 100] ^= 0xFF
    archive.write_bytes(bytes(raw))


def hostile_zip(root: Path) -> dict:
    """Class folders in a wrapping folder, with every kind of member that must not be trained on."""
    ants, bees = _photos("ants", 7), _photos("bees", 6)
    archive = root / "hostile.zip"
    trained = [f"photos/ants/a{i}.jpg" for i in range(4)] + [f"photos/bees/b{i}.jpg" for i in range(4)]
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            _member(zf, f"photos/ants/a{i}.jpg", ants[i])
            _member(zf, f"photos/bees/b{i}.jpg", bees[i])
        _member(zf, "photos\\bees\\windows.jpg", bees[4])              # backslashes: a Windows zip, trained
        trained.append("photos\\bees\\windows.jpg")
        _member(zf, "photos/ants/a0.jpg", ants[5])                     # a second member of the same name
        _member(zf, "../evil.jpg", ants[6])
        _member(zf, "photos/ants/../../climb.jpg", ants[6])
        _member(zf, ABSOLUTE, ants[6])
        _member(zf, "C:\\drive.jpg", ants[6])
        _member(zf, "../outside/", mode=stat.S_IFDIR | 0o755)
        _member(zf, "photos/ants/link.jpg", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)
        _member(zf, "photos/ants/pipe", mode=stat.S_IFIFO | 0o644)
        _member(zf, "photos/bees/null", mode=stat.S_IFCHR | 0o644)
        _member(zf, "photos/bees/socket", mode=stat.S_IFSOCK | 0o644)
        _member(zf, "photos/wasps/", mode=stat.S_IFDIR | 0o755)          # a directory entry, nothing in it
        _member(zf, "photos/moths/notes.txt", b"no photos of moths yet")  # a class with nothing usable
        _member(zf, "photos/ants/readme.txt", b"about the ants")
        _member(zf, "photos/ants/empty.jpg", b"")
        _member(zf, "photos/bees/garbage.jpg", b"\xff\xd8 not really a jpeg")
        _member(zf, "photos/ants/truncated.jpg", ants[4][:len(ants[4]) // 3])   # header reads, pixels do not
        _member(zf, "photos/stray.jpg", bees[5])                        # next to the class folders
        _member(zf, "photos/bees/more bees.zip", b"PK\x05\x06" + b"\0" * 18)
        _member(zf, "photos/bees/clash", b"a file")                     # ...and a folder of the same name
        _member(zf, "photos/bees/clash/inside.jpg", bees[5])
        _member(zf, "photos/bees/secret.jpg", bees[5], method=zipfile.ZIP_STORED)
        _member(zf, "photos/bees/damaged.jpg", bees[5], method=zipfile.ZIP_STORED)
        _member(zf, "photos/ants/deflate64.jpg", ants[6], method=zipfile.ZIP_STORED)
        _member(zf, "photos/ants/.hidden/x.jpg", ants[6])
        _member(zf, "photos/Thumbs.db", b"windows")
        for where in ("", "photos/", "photos/ants/", "photos/bees/", "photos/moths/"):
            _member(zf, where + ".DS_Store", b"\0\0\0\1Bud1")
        _member(zf, "__MACOSX/photos/ants/._a0.jpg", b"apple double")
        _member(zf, "__MACOSX/photos/._bees", b"apple double")
    _patch(archive, "photos/bees/secret.jpg", flags=0x1)
    _patch(archive, "photos/bees/damaged.jpg", flip_data=True)
    _patch(archive, "photos/ants/deflate64.jpg", method=9)
    return {"upload": archive, "trained": trained, "undecodable": ["photos/ants/truncated.jpg"],
            "refused": ["../evil.jpg", "photos/ants/../../climb.jpg", ABSOLUTE, "C:\\drive.jpg", "../outside/",
                        "photos/ants/link.jpg", "photos/ants/pipe", "photos/bees/null", "photos/bees/socket",
                        "photos/bees/clash/inside.jpg", "photos/bees/secret.jpg", "photos/bees/damaged.jpg",
                        "photos/ants/deflate64.jpg"],
            "reasons": {"../evil.jpg": "'..'", ABSOLUTE: "absolute", "C:\\drive.jpg": "absolute",
                        "photos/ants/link.jpg": "link", "photos/ants/pipe": "pipe", "photos/bees/null": "device",
                        "photos/bees/socket": "socket", "photos/bees/secret.jpg": "encrypted",
                        "photos/bees/damaged.jpg": "damaged", "photos/ants/deflate64.jpg": "deflate64",
                        "photos/bees/clash/inside.jpg": "same name", "photos/wasps/": "empty class folder",
                        "photos/moths/": "empty class folder", "photos/stray.jpg": "outside a class folder",
                        "photos/ants/readme.txt": "not an image", "photos/ants/empty.jpg": "empty file",
                        "photos/bees/garbage.jpg": "not a readable image",
                        "photos/ants/truncated.jpg": "cannot be decoded", "__MACOSX/": "macOS",
                        "photos/bees/more bees.zip": "archive inside", "photos/ants/a0.jpg": "same name",
                        "photos/ants/../../climb.jpg": "'..'", ".DS_Store": "macOS", "photos/Thumbs.db": "Windows",
                        "photos/ants/.hidden/x.jpg": "hidden"},
            "never_written": ["photos/ants/link.jpg", "photos/ants/pipe", "photos/bees/null", "photos/bees/socket",
                              "photos/bees/secret.jpg", "photos/bees/damaged.jpg", "photos/ants/deflate64.jpg",
                              "photos/bees/clash/inside.jpg"]}


def splits_zip(root: Path) -> dict:
    """train/, val/ and test/ folders, with a class only in val, an empty class, and things beside the splits."""
    ants, bees = _photos("ants", 12), _photos("bees", 9)
    archive = root / "splits.zip"
    trained = []
    with zipfile.ZipFile(archive, "w") as zf:
        for split, count, offset in (("train", 4, 0), ("val", 2, 4)):
            for i in range(count):
                for label, pool in (("ants", ants), ("bees", bees)):
                    name = f"{split}/{label}/{label[0]}{offset + i}.jpg"
                    _member(zf, name, pool[offset + i])
                    trained.append(name)
        for i in range(2):
            _member(zf, f"test/ants/t{i}.jpg", ants[6 + i])
            _member(zf, f"test/bees/t{i}.jpg", bees[6 + i])
        _member(zf, "train/wasps/", mode=stat.S_IFDIR | 0o755)
        _member(zf, "train/ants/sub/", mode=stat.S_IFDIR | 0o755)
        _member(zf, "val/moths/m0.jpg", ants[8])
        _member(zf, "notes.md", b"# where the photos came from")
        _member(zf, "extra/e0.jpg", ants[9])
        _member(zf, "extra/e1.jpg", ants[10])
        _member(zf, ".DS_Store", b"\0\0\0\1Bud1")
    return {"upload": archive, "trained": trained, "undecodable": [],
            "reasons": {"test/": "test split", "test/ants/t0.jpg": "test split", "train/wasps/": "empty class folder",
                        "train/ants/sub/": "empty folder", "val/moths/m0.jpg": "no training images",
                        "notes.md": "not inside train/", "extra/": "not inside train/",
                        "extra/e1.jpg": "not inside train/", ".DS_Store": "macOS"}}


def labels_zip(root: Path) -> dict:
    """A labels CSV with a split column: a test row, a missing file, an unnamed image, files next to it."""
    pool = _photos("ants", 6) + _photos("bees", 6)
    archive = root / "labels.zip"
    splits = {0: "val", 1: "test", 6: "val", 7: "test"}
    rows = "".join(f"images/p{i}.jpg,{'ant' if i < 6 else 'bee'},{splits.get(i, 'train')}\n"
                   for i in range(12) if i != 11)
    with zipfile.ZipFile(archive, "w") as zf:
        _member(zf, "wrap/labels.csv", ("filename,label,split\n" + rows + "images/gone.jpg,ant,train\n").encode())
        for i in range(12):
            _member(zf, f"wrap/images/p{i}.jpg", pool[i])
        _member(zf, "wrap/readme.txt", b"labels by hand")
        _member(zf, "wrap/old labels.csv", b"filename,label\nimages/p0.jpg,bee\n")
    trained = [f"wrap/images/p{i}.jpg" for i in range(11) if splits.get(i) != "test"]
    return {"upload": archive, "trained": trained, "consumed": ["wrap/labels.csv"], "undecodable": [],
            "reasons": {"wrap/images/p11.jpg": "not named in the CSV", "wrap/images/p1.jpg": "test split",
                        "wrap/readme.txt": "not an image", "wrap/old labels.csv": "another CSV",
                        "wrap/images/gone.jpg": "missing"}}


def flat_zip(root: Path) -> dict:
    """Classes in the file names (`--prefix-sep _`), with a name without the separator and a subfolder."""
    ants, bees = _photos("ants", 5), _photos("bees", 4)
    archive = root / "flat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(4):
            _member(zf, f"ant_{i}.jpg", ants[i])
            _member(zf, f"bee_{i}.jpg", bees[i])
        _member(zf, "nolabel.jpg", ants[4])
        _member(zf, "more/ant_9.jpg", ants[4])
    return {"upload": archive, "separator": "_", "undecodable": [],
            "trained": [f"{label}_{i}.jpg" for i in range(4) for label in ("ant", "bee")],
            "reasons": {"nolabel.jpg": "no '_'", "more/ant_9.jpg": "subfolder"}}


def plain_folder(root: Path) -> dict:
    """A folder (not a zip): a pipe, a broken link, a link to a folder, an empty class, a hidden folder."""
    folder = root / "folder"
    trained = []
    for label in ("ants", "bees"):
        (folder / label).mkdir(parents=True)
        for i, data in enumerate(_photos(label, 4)):
            (folder / label / f"{i}.jpg").write_bytes(data)
            trained.append(str(folder / label / f"{i}.jpg"))
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(_photos("ants", 1, start=5)[0])
    os.mkfifo(folder / "ants" / "pipe")
    os.symlink(root / "nowhere.jpg", folder / "bees" / "gone.jpg")
    os.symlink(elsewhere, folder / "ants" / "linked")
    (folder / "wasps").mkdir()
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return {"upload": folder, "trained": trained, "undecodable": [],
            "reasons": {str(folder / "ants" / "pipe"): "not a regular file",
                        str(folder / "bees" / "gone.jpg"): "broken link",
                        str(folder / "ants" / "linked"): "link to a folder",
                        str(folder / "wasps") + "/": "empty class folder", str(folder / ".git") + "/": "hidden"}}


CORPUS = {"hostile": hostile_zip, "splits": splits_zip, "labels": labels_zip, "flat": flat_zip,
          "folder": plain_folder}


def members_of(upload: Path) -> list[str]:
    """Every entry of the upload, named as the user would see it in their zip tool or file manager."""
    if upload.is_file():
        with zipfile.ZipFile(upload) as zf:
            return zf.namelist()
    names = []
    for folder, dirs, files in os.walk(upload):
        names += [os.path.join(folder, f) for f in files]
        names += [os.path.join(folder, d) + ("" if os.path.islink(os.path.join(folder, d)) else "/") for d in dirs]
    return names


def skipped_names(skipped: list[dict]) -> Counter:
    """How often each name is listed (a grouped line names its members)."""
    names = Counter()
    for row in skipped:
        assert row["reason"].strip(), row
        names[row["path"]] += 1
        names.update(row.get("members", []))
    return names


def reason_of(skipped: list[dict], name: str) -> str:
    return " / ".join(row["reason"] for row in skipped if row["path"] == name or name in row.get("members", []))


def assert_everything_accounted_for(case: dict, skipped: list[dict], counts: dict) -> None:
    members = Counter(members_of(case["upload"]))
    listed = skipped_names(skipped)
    trained = Counter(case["trained"])
    used = trained + Counter(case.get("consumed", []))
    folders = [n for n in listed if n.endswith("/")]
    for name, times in members.items():
        if name.endswith("/") and (any(m != name and m.startswith(name) for m in members)
                                   or any(name.startswith(f) for f in folders)):
            continue        # a folder holding members (each checked on its own), or inside a listed folder
        missing = times - used[name] - listed[name]
        assert missing <= 0, f"{name!r} is neither trained on nor listed in skipped"
    for name in trained:
        if members[name] == 1:
            assert listed[name] == 0, f"{name!r} is trained on but listed as skipped: {reason_of(skipped, name)}"
    for name, words in case["reasons"].items():
        assert words.lower() in reason_of(skipped, name).lower(), (name, words, reason_of(skipped, name))
    images = sum(counts[c].get(s, 0) for c in counts for s in ("train", "val"))
    assert images == len(case["trained"]) + len(case["undecodable"]), counts


def _tree(*roots: Path) -> set[str]:
    return {os.path.join(folder, name) for root in roots if root.exists()
            for folder, dirs, files in os.walk(root) for name in files + dirs}


def _extraction_folder(archive: Path) -> Path:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    return paths.uploads_dir() / f"{archive.stem[:40]}-{digest}"


def _doctor(case: dict) -> tuple[subprocess.CompletedProcess, dict | None]:
    command = [sys.executable, "-m", "studio", "doctor", str(case["upload"]), "--json"]
    if case.get("separator"):
        command += ["--prefix-sep", case["separator"]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Each upload of the corpus, checked once by `studio doctor --json`: the case, the result, its report,
    and the files that appeared (beside the upload and in the workspace) while it ran."""
    root = tmp_path_factory.mktemp("unused-corpus")
    cases = {}
    for name, build in CORPUS.items():
        (root / name).mkdir()
        case = build(root / name)
        watched = [root / name, paths.home()]
        before = _tree(*watched)
        case["result"], case["report"] = _doctor(case)
        case["new files"] = _tree(*watched) - before
        cases[name] = case
    return cases


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.slow
def test_doctor_json_names_every_member_not_trained_on(corpus, name):
    """Each member is trained on or in `skipped` with a reason in words; refused ones are never written,
    nothing lands outside the extraction folder, and a folder upload is left exactly as it was."""
    case = corpus[name]
    upload, result, report, new = case["upload"], case["result"], case["report"], case["new files"]
    assert result.returncode == 0 and report is not None, result.stderr
    assert_everything_accounted_for(case, report["skipped"], report["classes"])
    if upload.is_file():
        folder = _extraction_folder(upload)
        inside, allowed = str(folder) + os.sep, {str(folder), str(folder.parent)}
        outside = sorted(p for p in new if not p.startswith(inside) and p not in allowed)
        assert not outside, f"written outside the extraction folder: {outside}"
        for member in case.get("never_written", []):
            assert not os.path.lexists(Path(inside) / member), f"{member} was written"
    else:
        assert new == set(), f"the user's folder was changed: {sorted(new)}"
    assert not os.path.lexists(ABSOLUTE)
    kinds = {f["kind"] for f in report["findings"]}
    if name == "hostile":
        assert {"not_unpacked", "unused_classes", "junk", "unreadable"} <= kinds
        unused = next(f for f in report["findings"] if f["kind"] == "unused_classes")
        assert "'wasps'" in unused["message"] and "'moths'" in unused["message"]


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.slow
def test_the_data_page_lists_the_same_files_as_the_cli(corpus, name):
    """The Data step's handler (what the page renders) and `studio doctor --json` agree, line for line;
    and the folder the page hands to training is still reported with the names of the upload."""
    from components import data_step
    case = corpus[name]
    report = case["report"]
    assert report is not None, case["result"].stderr
    outputs = data_step.describe(str(case["upload"]), None, case.get("separator"))
    source, table = outputs["data_source"], outputs["skipped"]
    assert source, outputs["summary"]
    assert list(table.itertuples(index=False, name=None)) == [(s["path"], s["reason"]) for s in report["skipped"]]

    again = open_dataset(source["source"], prefix_separator=source["prefix_separator"])
    diagnose(again)
    assert again.skipped == report["skipped"]
    assert_everything_accounted_for(case, again.skipped, report["classes"])
    members, listed = Counter(members_of(case["upload"])), skipped_names(again.skipped)
    trained = {again.shown(p) for p in again.samples[again.samples.split.isin(["train", "val"])].path}
    assert {n for n in trained if members[n] > listed[n]} == set(case["trained"])  # each name as uploaded


def test_a_tar_upload_is_refused_in_words_and_nothing_is_unpacked(tmp_path):
    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as tar:
        for i, data in enumerate(_photos("ants", 2)):
            info = tarfile.TarInfo(f"ants/{i}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ants/hard.jpg")
        link.type, link.linkname = tarfile.LNKTYPE, "ants/0.jpg"
        tar.addfile(link)
    before = _tree(tmp_path, paths.home())
    result = subprocess.run([sys.executable, "-m", "studio", "doctor", str(archive), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Only .zip archives are read" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert _tree(tmp_path, paths.home()) == before


def test_a_zip_extracted_by_an_older_studio_is_unpacked_again_to_learn_what_it_refused(tmp_path):
    """An extraction folder marked done by an earlier version (an empty `.complete`) does not know what was
    refused, so it is not trusted: the zip is unpacked again and its refused members are named."""
    archive = tmp_path / "old.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for label in ("ants", "bees"):
            for i, data in enumerate(_photos(label, 3)):
                _member(zf, f"{label}/{i}.jpg", data)
        _member(zf, "../evil.jpg", b"x")
    folder = _extraction_folder(archive)
    shutil.rmtree(folder, ignore_errors=True)
    for label in ("ants", "bees"):
        (folder / label).mkdir(parents=True)
    (folder / ".complete").touch()
    dataset = open_dataset(archive)
    assert "'..'" in reason_of(dataset.skipped, "../evil.jpg")
    assert len(dataset.samples) == 6


def test_data_that_cannot_train_still_lists_what_was_left_out(tmp_path):
    """One usable class (so nothing to train on): the page still says which files were not used, and why."""
    from components import data_step
    upload = tmp_path / "one-class.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        for i, data in enumerate(_photos("ants", 3)):
            zf.writestr(f"ants/{i}.jpg", data)
        zf.writestr("bees/notes.txt", "not a photo")
        zf.writestr("../escape.jpg", _photos("bees", 1)[0])
    outputs = data_step.describe(str(upload))
    assert outputs["data_source"] is None and "Only one class" in outputs["summary"]
    listed = dict(outputs["skipped"].itertuples(index=False, name=None))
    assert "bees/notes.txt" in listed and "../escape.jpg" in listed
    assert all(reason for reason in listed.values())
