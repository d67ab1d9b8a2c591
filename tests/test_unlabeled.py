"""Sorting unlabeled photos (studio.unlabeled, `studio cluster`) on real ants and bees photos.

The features are computed once for the module, from a pile as people have it: a folder of 24 ants and
24 bees photos with one file that is no image (x.jpg), a .zip of 4 more of each, and one photo named a
second time. Every test groups those features afresh (sort_photos takes a PhotoFeatures), so a Grouping
one test edits is never another test's.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from helpers import WORKSPACE, example_files
from studio.unlabeled import GroupingError, PhotoFeatures, label_next, photo_features, sort_photos
from studio.unlabeled.grouping import typicality

pytestmark = pytest.mark.slow     # the module's photos go through a real pretrained network

FOLDER_PHOTOS = 24        # per class, in the folder
ZIP_PHOTOS = 4            # per class, in the zip
NOT_AN_IMAGE = b"these bytes are no picture at all\n" * 20


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def truth_of(path: str) -> str:
    """The true class of a pile photo: its file name starts with it."""
    return Path(path).name.split("-", 1)[0]


@pytest.fixture(scope="module")
def pile():
    root = WORKSPACE / "unlabeled"
    folder = root / "photos"
    folder.mkdir(parents=True)
    for label in ("ants", "bees"):
        for file in example_files("train", label, FOLDER_PHOTOS):
            shutil.copyfile(file, folder / f"{label}-{file.name}")
    (folder / "x.jpg").write_bytes(NOT_AN_IMAGE)
    archive = root / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for label in ("ants", "bees"):
            for file in example_files("val", label, ZIP_PHOTOS):
                zf.write(file, f"more/{label}-{file.name}")
    twice = sorted(folder.glob("ants-*.jpg"))[0]
    originals = {p: digest(p) for p in [*folder.iterdir(), archive]}
    features = photo_features([folder, archive, twice])
    return SimpleNamespace(folder=folder, archive=archive, twice=twice, originals=originals, features=features)


def grouped(pile, groups=None, seed=0):
    return sort_photos(pile.features, groups=groups, seed=seed)


def vectors_of(features: PhotoFeatures, photos: list[str]) -> np.ndarray:
    row = {p: i for i, p in enumerate(features.paths)}
    return torch.nn.functional.normalize(features.features[[row[p] for p in photos]].float(), dim=1).numpy()


def assert_most_typical_first(features, photos):
    scores = typicality(vectors_of(features, photos))
    assert np.all(np.diff(scores) <= 1e-6), f"typicality not non-increasing: {scores}"


def assert_each_photo_once(grouping):
    listed = [p for g in grouping.groups for p in g.photos]
    assert len(listed) == len(set(listed)) == len(grouping.features.paths)
    assert set(listed) == set(grouping.features.paths)


# ---------------------------------------------------------------- reading the photos

def test_every_readable_photo_counts_once_and_the_broken_one_is_named(pile):
    features = pile.features
    expected = 2 * (FOLDER_PHOTOS + ZIP_PHOTOS)
    assert len(features.paths) == len(set(features.paths)) == expected        # the photo named twice counts once
    assert features.features.shape[0] == expected and features.features.shape[1] > 100
    assert torch.isfinite(features.features).all()
    assert sum(Path(p).name == pile.twice.name for p in features.paths) == 1
    assert not any(Path(p).name == "x.jpg" for p in features.paths)
    assert len(features.unreadable) == 1
    assert Path(features.unreadable[0]["path"]).name == "x.jpg"
    assert "not a readable image" in features.unreadable[0]["reason"]
    assert features.backbone


def test_a_zip_is_unpacked_and_left_as_it_was(pile):
    from_zip = [p for p in pile.features.paths if not Path(p).is_relative_to(pile.folder)]
    assert len(from_zip) == 2 * ZIP_PHOTOS
    assert all(Path(p).is_file() and not Path(p).is_relative_to(pile.archive) for p in from_zip)
    assert sorted(truth_of(p) for p in from_zip) == ["ants"] * ZIP_PHOTOS + ["bees"] * ZIP_PHOTOS
    assert digest(pile.archive) == pile.originals[pile.archive]
    with zipfile.ZipFile(pile.archive) as zf:
        assert zf.testzip() is None and len(zf.namelist()) == 2 * ZIP_PHOTOS


# ---------------------------------------------------------------- grouping

def test_two_groups_agree_with_ants_and_bees(pile):
    """Measured: adjusted Rand index 0.55 (seed 0; 0.55 to 0.67 over seeds 0-4) on this pile; chance is 0."""
    grouping = grouped(pile, groups=2)
    assert len(grouping.groups) == 2 and not grouping.chosen_automatically
    labels = grouping.labels()
    paths = sorted(labels)
    assert adjusted_rand_score([truth_of(p) for p in paths], [labels[p] for p in paths]) > 0.3


def test_automatic_grouping_finds_the_structure_and_says_how(pile):
    """Measured: 2 groups (the silhouette's best), adjusted Rand index 0.55 (0.41 to 0.67 over seeds 0-4)."""
    grouping = grouped(pile)
    assert grouping.chosen_automatically
    assert 2 <= len(grouping.groups) <= 6
    assert max(grouping.scores, key=grouping.scores.get) == len(grouping.groups)
    assert min(grouping.scores) == 2 and max(grouping.scores) <= len(pile.features.paths) // 5
    labels = grouping.labels()
    paths = sorted(labels)
    assert adjusted_rand_score([truth_of(p) for p in paths], [labels[p] for p in paths]) > 0.3
    sizes = [len(g.photos) for g in grouping.groups]
    assert sizes == sorted(sizes, reverse=True)
    reported = grouping.to_dict()
    assert [len(g["photos"]) for g in reported["groups"]] == sizes
    assert [Path(u["path"]).name for u in reported["unreadable"]] == ["x.jpg"]
    assert reported["chosen_automatically"] is True and reported["silhouette"]
    json.dumps(reported)


def test_each_group_is_most_typical_first_and_holds_each_photo_once(pile):
    for groups in (None, 2, 4):
        grouping = grouped(pile, groups)
        assert_each_photo_once(grouping)
        for group in grouping.groups:
            assert_most_typical_first(pile.features, group.photos)


def test_the_asked_number_of_groups_is_honoured(pile):
    for groups in (1, 3, 7):
        grouping = grouped(pile, groups)
        assert len(grouping.groups) == groups
        assert grouping.scores == {} and not grouping.chosen_automatically
        assert_each_photo_once(grouping)


def test_impossible_numbers_of_groups_are_refused_with_the_reason(pile):
    count = len(pile.features.paths)
    for groups in (0, count + 1):
        with pytest.raises(GroupingError, match=f"between 1 and {count} groups for {count} photos"):
            grouped(pile, groups)


def test_too_few_photos_are_refused(pile):
    features = pile.features
    few = PhotoFeatures(features.paths[:5], features.features[:5], features.backbone,
                        unreadable=list(features.unreadable))
    with pytest.raises(GroupingError, match=r"Found 5 readable photos \(1 could not be read\); sorting needs at "
                                            r"least 6"):
        sort_photos(few)
    six = PhotoFeatures(features.paths[:6], features.features[:6], features.backbone)
    assert sum(len(g.photos) for g in sort_photos(six).groups) == 6


# ---------------------------------------------------------------- editing

def test_naming_refuses_bad_and_duplicate_names(pile):
    grouping = grouped(pile, 3)
    grouping.name(0, "  ants ")
    assert grouping.groups[0].name == "ants"
    grouping.name(0, "ants")                      # its own name again is no duplicate
    for bad in ("ANTS", "", "a/b", "..", "train"):
        with pytest.raises(GroupingError):
            grouping.name(1, bad)
    assert grouping.groups[1].name is None
    with pytest.raises(GroupingError, match="There is no group 4: there are 3 groups"):
        grouping.name(3, "bees")
    grouping.name(1, "bees")
    assert [g.name for g in grouping.groups] == ["ants", "bees", None]


def test_merge_keeps_every_photo_in_one_group_fewer(pile):
    grouping = grouped(pile, 3)
    first, third = list(grouping.groups[0].photos), list(grouping.groups[2].photos)
    grouping.name(2, "bees")
    grouping.merge(0, 2)
    assert len(grouping.groups) == 2
    assert sorted(grouping.groups[0].photos) == sorted(first + third)
    assert grouping.groups[0].name == "bees"       # the name of the group that went away is kept
    assert_each_photo_once(grouping)
    assert_most_typical_first(pile.features, grouping.groups[0].photos)
    with pytest.raises(GroupingError, match="two different groups"):
        grouping.merge(1, 1)
    with pytest.raises(GroupingError, match="no group 3"):
        grouping.merge(0, 2)


def test_split_puts_two_groups_in_its_place(pile):
    grouping = grouped(pile, 2)
    grouping.name(0, "ants")
    first, second = list(grouping.groups[0].photos), list(grouping.groups[1].photos)
    grouping.split(0)
    assert len(grouping.groups) == 3
    a, b, c = grouping.groups
    assert sorted(a.photos + b.photos) == sorted(first) and a.photos and b.photos
    assert len(a.photos) >= len(b.photos)
    assert c.photos == second                     # the other group is untouched, after the new two
    assert (a.name, b.name) == ("ants", None)
    assert_each_photo_once(grouping)
    for group in grouping.groups:
        assert_most_typical_first(pile.features, group.photos)


def test_a_group_too_small_to_split_is_refused(pile):
    grouping = grouped(pile, 12)
    index = max(i for i, g in enumerate(grouping.groups) if i > 0 and len(g.photos) >= 3)
    small = grouping.groups[index]
    for photo in small.photos[3:]:
        grouping.move(photo, 0)
    assert len(small.photos) == 3
    with pytest.raises(GroupingError, match=f"Group {index + 1} has 3 photos: too few to split into 2"):
        grouping.split(index)
    with pytest.raises(GroupingError, match="too few to split into 3"):
        grouping.split(index, parts=3)
    assert len(grouping.groups) == 12
    assert_each_photo_once(grouping)


def test_move_takes_a_photo_and_an_emptied_group_goes_away(pile):
    grouping = grouped(pile, 3)
    last = grouping.groups[2]
    photo = last.photos[-1]
    grouping.move(photo, 0)
    assert photo in grouping.groups[0].photos and photo not in grouping.groups[2].photos
    assert_most_typical_first(pile.features, grouping.groups[0].photos)
    grouping.move(photo, 0)                       # already there: nothing changes
    assert grouping.groups[0].photos.count(photo) == 1
    for rest in list(last.photos):
        grouping.move(rest, 1)
    assert len(grouping.groups) == 2 and last not in grouping.groups
    assert_each_photo_once(grouping)
    with pytest.raises(GroupingError, match="x.jpg is not among the sorted photos"):
        grouping.move(str(pile.folder / "x.jpg"), 0)
    with pytest.raises(GroupingError, match="no group 3"):
        grouping.move(photo, 2)


# ---------------------------------------------------------------- saving

def test_save_copies_the_named_groups_into_class_folders(pile, tmp_path):
    from studio.data.sources import open_dataset

    grouping = grouped(pile, 3)
    grouping.name(0, "first kind").name(1, "second kind")
    sizes = [len(g.photos) for g in grouping.groups]
    out = tmp_path / "sorted"
    saved = grouping.save(out)
    assert saved["folder"] == str(out)
    assert saved["classes"] == {"first kind": sizes[0], "second kind": sizes[1]}
    assert saved["left_out"] == sizes[2] and saved["refused"] == []
    assert sorted(p.name for p in out.iterdir()) == ["first kind", "second kind"]
    for index, name in enumerate(("first kind", "second kind")):
        copies = sorted((out / name).iterdir())
        assert len(copies) == sizes[index]
        assert sorted(digest(c) for c in copies) == sorted(digest(Path(p)) for p in grouping.groups[index].photos)
    assert {p: digest(p) for p in pile.originals} == pile.originals        # the photos themselves: untouched
    dataset = open_dataset(out)
    assert dataset.classes == ["first kind", "second kind"]
    assert len(dataset.samples) == sizes[0] + sizes[1]
    with pytest.raises(GroupingError, match="is not empty: save into a new folder"):
        grouping.save(out)
    assert sum(1 for _ in out.rglob("*") if _.is_file()) == sizes[0] + sizes[1]


def test_save_refuses_with_no_named_group_or_onto_a_file(pile, tmp_path):
    grouping = grouped(pile, 2)
    with pytest.raises(GroupingError, match="Name at least one group first"):
        grouping.save(tmp_path / "none")
    assert not (tmp_path / "none").exists()
    grouping.name(0, "ants")
    (tmp_path / "a-file").write_text("in the way")
    with pytest.raises(GroupingError, match="is a file"):
        grouping.save(tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "in the way"


def test_save_names_a_photo_gone_since_it_was_sorted(pile, tmp_path):
    """A photo deleted between sorting and saving is listed with the reason, not dropped silently."""
    features = pile.features
    copies = tmp_path / "copies"
    copies.mkdir()
    paths = []
    for path in features.paths:
        target = copies / Path(path).name
        shutil.copyfile(path, target)
        paths.append(str(target))
    grouping = sort_photos(PhotoFeatures(paths, features.features, features.backbone), groups=2)
    grouping.name(0, "ants").name(1, "bees")
    gone = grouping.groups[1].photos[0]
    Path(gone).unlink()
    saved = grouping.save(tmp_path / "out")
    assert saved["classes"] == {"ants": len(grouping.groups[0].photos), "bees": len(grouping.groups[1].photos) - 1}
    assert [r["path"] for r in saved["refused"]] == [gone] and saved["refused"][0]["reason"]


# ---------------------------------------------------------------- what to label next

def test_first_picks_are_one_typical_photo_per_group(pile):
    grouping = grouped(pile, 3)
    picks = label_next(grouping, count=8)
    assert len(picks) == 8 and len({p["path"] for p in picks}) == 8
    assert [p["path"] for p in picks[:3]] == [g.photos[0] for g in grouping.groups]   # biggest group first
    assert all(p["why"] == "the most typical photo of a group with no label yet" for p in picks[:3])
    assert all(p["why"] and "group with no label" not in p["why"] for p in picks[3:])
    assert {p["path"] for p in picks} <= set(pile.features.paths)


def test_picks_avoid_labelled_photos(pile):
    grouping = grouped(pile, 3)
    labelled = [g.photos[0] for g in grouping.groups] + [g.photos[-1] for g in grouping.groups]
    picks = label_next(grouping, labelled=labelled, count=12)
    paths = [p["path"] for p in picks]
    assert len(paths) == len(set(paths)) == 12
    assert not set(paths) & set(labelled)
    assert not any("group with no label" in p["why"] for p in picks)       # every group has a label already
    every = label_next(grouping, labelled=[Path(p) for p in labelled], count=1000)
    assert len(every) == len(pile.features.paths) - len(labelled)          # asked for more than there are
    assert label_next(grouping, count=0) == []


def test_with_a_model_the_least_sure_photos_come_after_uncovered_groups(pile):
    grouping = grouped(pile, 3)
    paths = pile.features.paths
    margins = torch.rand(len(paths), generator=torch.Generator().manual_seed(0))
    probabilities = torch.stack([(1 + margins) / 2, (1 - margins) / 2], dim=1)
    labelled = list(grouping.groups[0].photos[:2])                         # only the first group is covered
    picks = label_next(grouping, labelled=labelled, count=10, probabilities=probabilities)
    assert [p["path"] for p in picks[:2]] == [grouping.groups[1].photos[0], grouping.groups[2].photos[0]]
    least_sure = [paths[i] for i in torch.argsort(margins).tolist() if paths[i] not in labelled + [
        p["path"] for p in picks[:2]]]
    assert [p["path"] for p in picks[2:]] == least_sure[:8]
    assert all(p["why"] == "the model is least sure of it" for p in picks[2:])
    as_dict = label_next(grouping, labelled=labelled, count=10,
                         probabilities={p: probabilities[i] for i, p in enumerate(paths)})
    assert as_dict == picks
    with pytest.raises(ValueError, match="No model answer for 1 photos"):
        label_next(grouping, probabilities={p: probabilities[i] for i, p in enumerate(paths[1:], start=1)})


def test_without_groups_the_picks_spread_over_the_photos(pile):
    picks = label_next(pile.features, count=6)
    paths = [p["path"] for p in picks]
    assert len(paths) == len(set(paths)) == 6
    assert {truth_of(p) for p in paths} == {"ants", "bees"}
    assert all(p["why"] for p in picks)
    one = PhotoFeatures(pile.features.paths[:1], pile.features.features[:1], pile.features.backbone)
    assert [p["path"] for p in label_next(one, count=3)] == one.paths
    assert label_next(PhotoFeatures([], torch.empty(0, 0), "x"), count=3) == []


# ---------------------------------------------------------------- studio cluster

def studio(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_sorts_saves_and_suggests_in_one_json_object(pile, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for file in sorted(pile.folder.glob("ants-*.jpg"))[:4] + sorted(pile.folder.glob("bees-*.jpg"))[:4]:
        shutil.copyfile(file, photos / file.name)
    (photos / "x.jpg").write_bytes(NOT_AN_IMAGE)
    before = {p: digest(p) for p in photos.iterdir()}
    out = tmp_path / "sorted"
    result = studio("cluster", photos, "--groups", 2, "--save", out, "--next", 3, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "x.jpg" in result.stderr and "left out" in result.stderr
    answer = json.loads(result.stdout)                                      # one JSON object, nothing else
    groups = answer["groups"]
    assert len(groups) == 2 and all(set(g) == {"photos"} and g["photos"] for g in groups)
    listed = [p for g in groups for p in g["photos"]]
    assert sorted(Path(p).name for p in listed) == sorted(p.name for p in photos.glob("*-*.jpg"))
    assert [Path(u["path"]).name for u in answer["unreadable"]] == ["x.jpg"]
    assert answer["chosen_automatically"] is False
    picks = [p["path"] for p in answer["next"]]
    assert len(picks) == len(set(picks)) == 3 and set(picks) <= set(listed)
    assert answer["saved"]["classes"] == {"group-01": len(groups[0]["photos"]), "group-02": len(groups[1]["photos"])}
    assert answer["saved"]["left_out"] == 0
    for index, group in enumerate(groups, start=1):
        assert sorted(p.name for p in (out / f"group-{index:02d}").iterdir()) == sorted(
            Path(p).name for p in group["photos"])
    assert {p: digest(p) for p in photos.iterdir()} == before


def test_cli_says_what_is_wrong_without_a_traceback(tmp_path):
    missing = studio("cluster", tmp_path / "no-such-photos", "--json")
    assert missing.returncode != 0 and missing.stdout == ""
    assert "no-such-photos: no such file or folder" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_refuses_a_non_empty_save_folder_before_reading_photos(pile, tmp_path, capsys, monkeypatch):
    from studio import cli
    from studio.unlabeled import grouping

    def never(*args, **kwargs):
        raise AssertionError("the photos were read before the save folder was checked")
    monkeypatch.setattr(grouping, "photo_features", never)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert cli.main(["cluster", str(pile.folder), "--save", str(full)]) != 0
    assert "is not empty: save into a new folder" in capsys.readouterr().err
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and (full / "keep.txt").read_text() == "mine"


def test_cli_next_skips_what_is_labelled_and_asks_the_model_what_it_is_least_sure_of(pile, trained_run, tmp_path):
    """--labelled: photos already copied into a dataset are not suggested again; --model: once every group
    has a label, the photos the trained model is least sure of come next, least sure first."""
    from studio.inference import Predictor
    photos = tmp_path / "photos"
    photos.mkdir()
    for file in sorted(pile.folder.glob("ants-*.jpg"))[:6] + sorted(pile.folder.glob("bees-*.jpg"))[:6]:
        shutil.copyfile(file, photos / file.name)
    labelled = tmp_path / "labelled"
    for label in ("ants", "bees"):   # two of each already labelled (copied, so only their bytes match)
        (labelled / label).mkdir(parents=True)
        for file in sorted(photos.glob(f"{label}-*.jpg"))[:2]:
            shutil.copyfile(file, labelled / label / f"copy-{file.name}")
    result = studio("cluster", photos, "--groups", 2, "--next", 4, "--labelled", labelled,
                    "--model", trained_run["run_dir"], "--json")
    assert result.returncode == 0, result.stderr
    picks = json.loads(result.stdout)["next"]
    assert len(picks) == 4
    assert not {Path(p["path"]).name for p in picks} & {p.name.removeprefix("copy-") for p in labelled.rglob("*.jpg")}
    margins = {}
    predictor = Predictor(Path(trained_run["run_dir"]) / "model.safetensors")
    for path, found in zip(map(str, photos.iterdir()), predictor.predict_each(list(map(str, photos.iterdir())))):
        margins[path] = found.top[0][1] - found.top[1][1]
    unsure = [p["path"] for p in picks if p["why"] == "the model is least sure of it"]
    assert unsure, picks
    assert [margins[p] for p in unsure] == sorted(margins[p] for p in unsure)
    rest = [margins[p] for p in margins if p not in unsure and not p.endswith(tuple(
        f.name.removeprefix("copy-") for f in labelled.rglob("*.jpg")))]
    assert max(margins[p] for p in unsure) <= min(rest) + 1e-6   # no surer photo was picked over a less sure one
    wrong = studio("cluster", photos, "--next", 2, "--model", tmp_path / "no-run")
    assert wrong.returncode != 0 and "--model" in wrong.stderr and "Traceback" not in wrong.stderr


def test_files_that_are_not_photos_are_listed_not_dropped(tmp_path):
    folder = tmp_path / "pile"
    folder.mkdir()
    for file in example_files("train", "ants", 3) + example_files("train", "bees", 3):
        shutil.copyfile(file, folder / file.name)
    (folder / "notes.txt").write_text("what these are")
    (folder / ".DS_Store").write_bytes(b"\0")
    found = photo_features([folder])
    assert len(found.paths) == 6
    listed = {Path(u["path"]).name: u["reason"] for u in found.unreadable}
    assert set(listed) == {"notes.txt"} and "not a photo" in listed["notes.txt"]


def test_sorting_again_keeps_the_names_that_still_fit(tmp_path):
    """Names follow their photos into the new groups, but never onto a group that is mostly other photos."""
    from studio.unlabeled.grouping import Group, Grouping
    before = Grouping([Group(["a1", "a2", "a3", "a4"], "ants"), Group(["b1", "b2", "b3", "b4"], "bees"),
                       Group(["c1", "c2"], None)], features=None)
    same = Grouping([Group(["b1", "b2", "b3", "a4"]), Group(["a1", "a2", "a3", "c1", "c2"])], features=None)
    assert same.carry_names(before) == (["ants", "bees"], [])
    assert [g.name for g in same.groups] == ["bees", "ants"]
    mixed = Grouping([Group(["a1", "a2", "b1", "b2", "c1"]), Group(["a3", "a4", "b3", "b4", "c2"])], features=None)
    assert mixed.carry_names(before) == ([], ["ants", "bees"])   # no group is mostly ants, or mostly bees
    assert all(g.name is None for g in mixed.groups)
