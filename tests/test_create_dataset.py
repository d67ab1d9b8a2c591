"""Making a dataset in the browser: the engine (studio.data.workspace) and the handlers the page calls
(components.create_step), called as Gradio calls them. Real files, real photos, no mocks."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from components import create_step as cs
from components import data_step
from helpers import REPO, example_files
from studio import paths
from studio.data import workspace as wd
from studio.runs import JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio

# the names of what create_step.view() shows: status, datasets, classes, table, thumbnails, check, names, picked photo
STATUS, DATASETS, CLASSES, TABLE, THUMBS, CHECK, NAMES, PHOTO = cs.VIEW


def is_skip(value) -> bool:
    return value == gr.skip()


def user(name: str | None):
    """What Gradio passes as the request: only .username is read (None: no login)."""
    return SimpleNamespace(username=name)


@pytest.fixture
def who(request):
    """A user of their own per test, so tests never see each other's datasets."""
    return user(request.node.name[:40])


def new(who, name="mine") -> str:
    out = cs.new_dataset(name, who)
    assert "Created" in out[STATUS], out[STATUS]
    return name


def choices(out) -> list[str]:
    return [value for _, value in out[CLASSES].choices]


def test_class_names_are_validated_in_words():
    for bad, words in [("", "Type a name"), ("   ", "Type a name"), ("..", "'..'"), ("../escape", "'..'"),
                       ("a/b", "'/'"), ("a\\b", "'\\'"), ("what?", "'?'"), ("a:b", "':'"), ("tab\there", "U+0009"),
                       (".hidden", "hidden"), ("dots.", "ending in '.'"), ("CON", "reserves"), ("train", "split"),
                       ("Val", "split"), ("x" * 61, "60 or fewer"), ("Cats", "already a class called 'cats'")]:
        with pytest.raises(wd.NameProblem) as caught:
            wd.clean_name(bad, ["cats"])
        assert words in str(caught.value), (bad, str(caught.value))
    assert wd.clean_name("  red mug  ", ["cats"]) == "red mug"
    assert wd.clean_name("chat noir_2-b", []) == "chat noir_2-b"


def test_create_add_rename_delete_classes(who):
    name = new(who)
    out = cs.new_dataset("mine", who)
    assert "already a dataset called 'mine'" in out[STATUS]
    out = cs.new_dataset("../../etc", who)
    assert "Not done" in out[STATUS] and not (paths.home().parent / "etc").exists()

    out = cs.add_class(name, "ants", who)
    assert choices(out) == ["ants"] and out[CLASSES].value == "ants" and out["class_name"] == ""
    assert "needs 8 more" in out[TABLE] and "needs 8 more" in out[CLASSES].choices[0][0]
    out = cs.add_class(name, "Ants", who)
    assert "already a class called 'ants'" in out[STATUS] and is_skip(out["class_name"])  # the typed name stays
    for bad in ("..", "a/b", ""):
        out = cs.add_class(name, bad, who)
        assert "Not done" in out[STATUS] and choices(out) == ["ants"], out[STATUS]
    out = cs.add_class(name, "bees", who)
    assert choices(out) == ["ants", "bees"] and out[CLASSES].value == "bees"
    folder = wd.dataset_dir(name, who.username)
    assert sorted(p.name for p in folder.iterdir()) == ["ants", "bees"]

    out = cs.rename_class(name, "bees", "wasps", who)
    assert choices(out) == ["ants", "wasps"] and out[CLASSES].value == "wasps" and "Renamed" in out[STATUS]
    out = cs.rename_class(name, "wasps", "ants", who)
    assert "already a class called 'ants'" in out[STATUS] and choices(out) == ["ants", "wasps"]
    out = cs.rename_class(name, "wasps", "../wasps", who)
    assert "Not done" in out[STATUS] and (folder / "wasps").is_dir()
    out = cs.rename_class(name, "wasps", "Wasps", who)  # capitals only
    assert choices(out) == ["ants", "Wasps"]

    cs.add_files(name, "Wasps", example_files("train", "bees", 2), who)
    out = cs.delete_class(name, "Wasps", who)
    assert choices(out) == ["ants"] and "Deleted class **Wasps** (2 photos)" in out[STATUS]
    trash = Path(out[STATUS].split("`")[1])
    assert len(list(trash.iterdir())) == 2 and not trash.is_relative_to(folder)  # recoverable, outside
    out = cs.delete_class(name, "../ants", who)
    assert "Not done" in out[STATUS] and (folder / "ants").is_dir()


def test_add_photos_files_and_webcam_frames_then_remove_one(who, tmp_path):
    name = new(who)
    cs.add_class(name, "ants", who)
    originals = example_files("train", "ants", 5)
    before = {f: f.read_bytes() for f in originals}
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a picture")
    out = cs.add_files(name, "ants", [str(f) for f in originals] + [str(junk)], who)
    assert out["files"] is None  # the file box is emptied for the next drop
    assert "Added 5 photo(s)" in out[STATUS] and "1 not added" in out[STATUS] and "notes.jpg" in out[STATUS]
    assert "ants: 5 photos (needs 3 more)" in out[CLASSES].choices[0][0] and "needs 3 more" in out[TABLE]
    folder = wd.dataset_dir(name, who.username)
    kept = sorted((folder / "ants").iterdir())
    assert len(kept) == 5 and all(f.suffix == ".jpg" for f in kept)
    assert {f.read_bytes() for f in kept} == set(before.values())  # bytes kept: the duplicate check sees copies
    assert all(f.read_bytes() == data for f, data in before.items())  # originals untouched
    assert len(out[THUMBS]) == 5 and len(out[NAMES]) == 5

    # the same files again: kept under new names, and the check says they are duplicates
    out = cs.add_files(name, "ants", [str(f) for f in originals], who)
    assert len(list((folder / "ants").iterdir())) == 10
    assert "Exact duplicates" in out[CHECK], out[CHECK]

    # webcam: the live camera sends frames (H x W x 3 uint8, as Gradio gives them); without Burst they are only
    # kept as the latest, and "Take a photo" saves that one
    frame = np.asarray(Image.open(example_files("train", "ants", 6)[-1]).convert("RGB"))
    out = cs.camera_frame(name, "ants", False, frame, who)
    latest, shown = out["latest"], [out[part] for part in cs.VIEW]
    assert latest is frame and all(is_skip(v) for v in shown) and len(list((folder / "ants").iterdir())) == 10
    out = cs.capture(name, "ants", latest, who)
    assert "Added 1 webcam photo" in out[STATUS]
    shots = sorted((folder / "ants").glob("webcam-*.jpg"))
    assert len(shots) == 1 and Image.open(shots[0]).size == (frame.shape[1], frame.shape[0])
    assert out[NAMES][0] == shots[0].name  # newest first
    assert "Start the camera first" in cs.capture(name, "ants", None, who)[STATUS]

    # burst: every frame is saved (RGBA and float frames too); the check is throttled, saving is not
    cs._last_check.clear()
    frames = [frame, np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)]), frame.astype(np.float32)]
    outs = [cs.camera_frame(name, "ants", True, f, who) for f in frames]
    bursts = sorted((folder / "ants").glob("burst-*.jpg"))
    assert len(bursts) == 3 and all(Image.open(b).mode == "RGB" for b in bursts)
    assert "now 14" in outs[-1][STATUS] and "ants: 14 photos" in outs[-1][CLASSES].choices[0][0]
    assert isinstance(outs[0][CHECK], str) and is_skip(outs[1][CHECK])
    out = cs.burst(name, "ants", np.zeros(5), who)
    assert "Not done" in out[STATUS] and "height x width x 3" in out[STATUS]

    # remove a photo: pick its thumbnail, press remove; a name from outside the class is refused
    out = cs.open_one(name, "ants", who)
    pick = cs.pick_photo(out[NAMES], gr.SelectData(None, {"index": 1, "value": None}))
    picked, note = pick[PHOTO], pick[STATUS]
    assert picked == out[NAMES][1] and "Picked" in note
    out = cs.remove_photo(name, "ants", picked, who)
    assert "Removed" in out[STATUS] and not (folder / "ants" / picked).exists() and picked not in out[NAMES]
    assert len(list((folder / "ants").iterdir())) == 13
    for bad in ("../ants", "../../home", "", None):
        out = cs.remove_photo(name, "ants", bad, who)
        assert "Not done" in out[STATUS], bad
    assert len(list((folder / "ants").iterdir())) == 13

    # nothing can be added without a class, or to a dataset of someone else
    out = cs.add_files(name, None, [str(originals[0])], who)
    assert "Add a class" in out[STATUS]
    out = cs.add_files(name, "ants", [str(originals[0])], user("somebody else"))
    assert "Add a class" in out[STATUS] and len(list((folder / "ants").iterdir())) == 13


def test_findings_and_needs_shown_as_photos_are_added(who, tmp_path):
    name = new(who)
    cs.add_class(name, "ants", who)
    out = cs.add_class(name, "bees", who)
    assert "Add photos to see the check" in out[CHECK]
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tiny)
    cs.add_files(name, "ants", [str(f) for f in example_files("train", "ants", 8)], who)
    out = cs.add_files(name, "bees", [str(f) for f in example_files("train", "bees", 3)] + [str(tiny)], who)
    assert "| ants | 8 | ready |" in out[TABLE] and "| bees | 4 | needs 4 more photos |" in out[TABLE]
    assert "smaller than 32 px" in out[CHECK] and "Too few" in out[CHECK], out[CHECK]
    out = cs.add_files(name, "bees", [str(f) for f in example_files("train", "bees", 7)[3:]], who)
    assert "| bees | 8 | ready |" in out[TABLE] and "Too few training" not in out[CHECK]


def made_dataset(who, per_class: int = 8) -> str:
    name = new(who, "desk things")
    for label in ("ants", "bees"):
        cs.add_class(name, label, who)
        cs.add_files(name, label, [str(f) for f in example_files("train", label, per_class)], who)
    return name


@pytest.mark.slow
def test_use_download_persist_and_cli(who, tmp_path):
    name = made_dataset(who)
    folder = wd.dataset_dir(name, who.username)
    out = data_step.use_made(name, who)
    source, summary, uploaded = out["data_source"], out["summary"], out["uploaded"]
    assert source == {"source": str(folder), "prefix_separator": None} and uploaded is None
    assert "2 classes, 16 images" in summary, summary
    assert "Create or open" in data_step.use_made(None, who)["summary"]

    out = cs.download(name, who)
    archive, message = out["archive"], out["status"]
    assert "ready" in message
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    assert len(names) == 16 and {n.split("/")[1] for n in names} == {"ants", "bees"}
    assert all(n.startswith("desk things/") for n in names)

    # another process (a restart) lists it, and the CLI's dataset check reads it like any folder
    env = {**os.environ, "STUDIO_HOME": str(paths.home())}
    listed = subprocess.run([sys.executable, "-c", "from studio.data import workspace as w; "
                             f"print(w.list_datasets({who.username!r}))"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and name in listed.stdout, listed.stderr
    doctor = subprocess.run([sys.executable, "-m", "studio", "doctor", str(folder)], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0 and "ants" in doctor.stdout + doctor.stderr, doctor.stdout + doctor.stderr
    reopened = cs.open_one(name, None, who)
    assert name in reopened[DATASETS].choices[0] and choices(reopened) == ["ants", "bees"]


def test_datasets_are_kept_per_user_with_login_on():
    alice, bob = user("alice"), user("bob")
    cs.new_dataset("shared name", alice)
    cs.new_dataset("shared name", bob)
    cs.add_class("shared name", "only alice", alice)
    assert wd.list_datasets("alice") == ["shared name"] and wd.list_datasets("bob") == ["shared name"]
    assert choices(cs.open_one("shared name", None, bob)) == []
    assert "@users" not in wd.list_datasets(None)
    out = cs.open_one("shared name", None, user("mallory"))
    assert out[DATASETS].choices == [] and choices(out) == []


def test_extend_an_upload_copies_it_and_leaves_the_original(who, small_dataset):
    before = sorted(p.relative_to(small_dataset) for p in small_dataset.rglob("*"))
    out = cs.extend({"source": str(small_dataset), "prefix_separator": None}, who)
    assert "Copied 68 photos" in out[STATUS] and "not touched" in out[STATUS], out[STATUS]
    name = out[DATASETS].value
    folder = wd.dataset_dir(name, who.username)
    assert choices(out) == ["ants", "bees"] and wd.counts(folder) == {"ants": 34, "bees": 34}
    out = cs.add_class(name, "wasps", who)
    cs.add_files(name, "wasps", [str(f) for f in example_files("val", "bees", 2)], who)
    assert sorted(p.relative_to(small_dataset) for p in small_dataset.rglob("*")) == before
    again = cs.extend({"source": str(folder), "prefix_separator": None}, who)  # already ours: just opened
    assert again[DATASETS].value == name and "Opened" in again[STATUS]
    assert "Choose a dataset" in cs.extend(None, who)[STATUS]


@pytest.mark.slow
def test_a_dataset_made_this_way_trains(who):
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    name = made_dataset(who)
    RUNNER.wait()
    run = start_training(TrainConfig(data=str(wd.dataset_dir(name, who.username)), backbone="mobilenetv2_100",
                                     freeze="all", epochs=1, feature_views=1), runner=RUNNER)
    RUNNER.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert snapshot["classes"] == ["ants", "bees"] and len(snapshot["history"]) == 1
    assert sum(map(sum, snapshot["best_confusion"])) == 4  # 2 validation photos per class, held out
