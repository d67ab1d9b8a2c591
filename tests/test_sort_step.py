"""Sort my photos (Data step): the page's handlers on real example photos, with the real pretrained network.

36 example photos (18 ants, 18 bees) and one broken file are copied into a folder of their own and sorted
once per module (the features are the slow part); each test edits its own copy of the result. Also the
Unlabeled photos box: what it attaches reaches the training config and its command line.
"""
from __future__ import annotations

import copy
import hashlib
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from components import data_step, sort_step, train_step
from helpers import example_files

PER_CLASS = 18


def _digests(folder: Path) -> dict[str, tuple[str, float]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unsorted")
    for label in ("ants", "bees"):
        for file in example_files("train", label, PER_CLASS):
            (folder / f"{label}-{file.name}").write_bytes(file.read_bytes())
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg at all")
    return folder


@pytest.fixture(scope="module")
def first_sort(photos):
    """What the page shows after Sort on the photos (the files as the upload box gives them)."""
    before = _digests(photos)
    out = sort_step.sort(sorted(str(p) for p in photos.iterdir()), progress=None)
    assert _digests(photos) == before   # only read
    return out


def grouping_of(first_sort):
    return copy.deepcopy(first_sort["grouping"])


def sizes(out) -> list[int]:
    return out["overview"]["photos"].tolist()


@pytest.mark.slow
def test_sort_shows_every_group_the_automatic_number_and_the_unreadable_file(first_sort):
    out = first_sort
    grouping = out["grouping"]
    assert grouping is not None and grouping.chosen_automatically
    groups = len(grouping.groups)
    assert 2 <= groups <= 7, groups        # candidates: 2 .. 36 // 5
    assert "chosen automatically" in out["status"] and f"into {groups} groups" in out["status"]
    # the overview: one line per group, every readable photo once, most typical photo names
    table = out["overview"]
    assert table["group"].tolist() == [str(i + 1) for i in range(groups)]
    assert sum(sizes(out)) == 2 * PER_CLASS
    assert set(table["name"]) == {"(no name yet)"}
    assert table["most typical photos"][0].startswith(Path(grouping.groups[0].photos[0]).name)
    # the first group is shown, most typical first, and its thumbnails are its photos in that order
    assert out["group"].value == "1" and len(out["group"].choices) == groups
    assert out["names"] == grouping.groups[0].photos[:len(out["names"])]
    assert len(out["gallery"]) == len(out["names"]) == len(grouping.groups[0].photos)
    assert out["gallery"][0][1] == f"1. {Path(out['names'][0]).name}"
    assert "Group 1" in out["gallery_note"] and "most typical first" in out["gallery_note"]
    # the broken file is listed with the reason, and shown
    unreadable = out["unreadable"].value
    assert unreadable["data"][0][0] == "broken.jpg" and unreadable["data"][0][1], unreadable
    assert out["unreadable"].visible is True
    assert "1 file(s) could not be read" in out["status"]
    # the slider for another number of groups starts at the number chosen
    assert out["count"].value == groups
    # the ants and the bees mostly land in different groups: the biggest group is mostly one kind
    first = [Path(p).name.split("-")[0] for p in grouping.groups[0].photos]
    assert max(first.count("ants"), first.count("bees")) >= 0.7 * len(first), first


@pytest.mark.slow
def test_sort_again_reuses_the_features(first_sort):
    grouping = grouping_of(first_sort)
    grouping.name(0, "ants")
    out = sort_step.sort_again(grouping, 4, progress=None)
    again = out["grouping"]
    assert again.features is grouping.features          # not computed again
    assert len(again.groups) == 4 and not again.chosen_automatically
    assert sum(sizes(out)) == 2 * PER_CLASS and len(out["overview"]) == 4
    assert "You asked for 4 groups" in out["status"]
    # the name goes to the new group where most of the old "ants" photos are, if they are most of it
    ants_before = set(grouping.groups[0].photos)
    named = [g for g in again.groups if g.name]
    if named:
        assert [g.name for g in named] == ["ants"] and "Names kept" in out["status"]
        assert 2 * len(ants_before & set(named[0].photos)) > len(named[0].photos)
    else:
        assert "ants any more: name it again" in out["status"]
    wrong = sort_step.sort_again(again, 999, progress=None)
    assert wrong["status"].startswith("**Not done:**") and "between 1 and 36" in wrong["status"]
    assert wrong["grouping"] is again and len(again.groups) == 4


@pytest.mark.slow
def test_name_merge_split_and_move_redraw_the_overview_and_gallery(first_sort):
    grouping = grouping_of(first_sort)
    out = sort_step.sort_again(grouping, 3, progress=None)
    grouping = out["grouping"]
    counts = sizes(out)

    named = sort_step.name_group(grouping, "1", "ants")
    assert named["overview"]["name"][0] == "ants" and "class **ants**" in named["status"]
    assert named["new_name"] == "" and named["group"].value == "1"
    assert named["gallery_note"].startswith("**Group 1: ants")
    refused = sort_step.name_group(grouping, "2", "../bees")
    assert refused["status"].startswith("**Not done:**") and "'..'" in refused["status"]
    assert refused["new_name"] is not None and grouping.groups[1].name is None   # what was typed stays
    taken = sort_step.name_group(grouping, "2", "Ants")
    assert "already" in taken["status"]

    # the chosen group 3 takes group 1's photos (and its name); group 1 goes, so it is now group 2
    merged = sort_step.merge_groups(grouping, "3", "1")
    assert sizes(merged) == [counts[1], counts[2] + counts[0]]
    assert merged["overview"]["name"].tolist() == ["(no name yet)", "ants"]
    assert merged["group"].value == "2" and len(merged["names"]) == counts[0] + counts[2]
    assert [value for _, value in merged["other"].choices] == ["1"]   # merge with: every other group
    assert "Choose the group" in sort_step.merge_groups(grouping, "1", None)["status"]

    split = sort_step.split_group(grouping, "2")
    assert len(split["overview"]) == 3 and sum(sizes(split)) == 2 * PER_CLASS
    assert sizes(split)[0] == counts[1] and sum(sizes(split)[1:]) == counts[0] + counts[2]
    assert split["overview"]["name"].tolist() == ["(no name yet)", "ants", "(no name yet)"]

    # move: click a thumbnail (its .select event), choose the group, Move
    shown = sort_step.pick_group(grouping, "1")
    photo = shown["names"][-1]
    picked = sort_step.pick_photo(shown["names"], gr.SelectData(None, {"index": len(shown["names"]) - 1,
                                                                        "value": None}))
    assert picked["photo"] == photo and Path(photo).name in picked["status"]
    before = sizes(split)
    moved = sort_step.move_photo(grouping, "1", photo, "3")
    assert photo in grouping.groups[2].photos and photo not in moved["names"]
    assert sizes(moved) == [before[0] - 1, before[1], before[2] + 1]
    assert moved["photo"] is None and "Moved" in moved["status"] and moved["group"].value == "1"
    assert moved["next_note"] == sort_step.NEXT_HINT and moved["next_gallery"].visible == "hidden"  # out of date
    assert "Click a photo" in sort_step.move_photo(grouping, "1", None, "3")["status"]


@pytest.mark.slow
def test_moving_the_last_photo_of_a_group_removes_it_and_shows_the_target(first_sort):
    grouping = grouping_of(first_sort)
    grouping = sort_step.sort_again(grouping, 3, progress=None)["grouping"]
    grouping.split(2, parts=2)
    while len(grouping.groups[3].photos) > 1:
        grouping.move(grouping.groups[3].photos[0], 0)
    last = grouping.groups[3].photos[0]
    out = sort_step.move_photo(grouping, "4", last, "2")
    assert len(out["overview"]) == 3 and last in out["names"] and out["group"].value == "2"


@pytest.mark.slow
def test_label_these_next_starts_with_the_most_typical_photo_of_each_group(first_sort):
    grouping = grouping_of(first_sort)
    out = sort_step.suggest_next(grouping)
    table = out["next_table"]
    groups = sorted(grouping.groups, key=lambda g: len(g.photos), reverse=True)
    assert table["photo"].tolist()[:len(groups)] == [Path(g.photos[0]).name for g in groups]
    assert table["why"][0] == "the most typical photo of a group with no label yet"
    assert 0 < len(table) <= sort_step.NEXT_COUNT and len(out["next_gallery"]) == len(table)
    assert "most typical photo of each group first" in out["next_note"]
    # a named group counts as labelled: none of its photos is suggested
    grouping.name(0, "ants")
    named = sort_step.suggest_next(grouping)
    names = {Path(p).name for p in grouping.groups[0].photos}
    assert not names & set(named["next_table"]["photo"]) and "count as labelled" in named["next_note"]


@pytest.mark.slow
def test_label_these_next_then_asks_the_chosen_run_which_photos_it_is_least_sure_of(first_sort, trained_run):
    from studio.unlabeled.suggest import model_answers

    run_id = Path(trained_run["run_dir"]).name
    offered = sort_step.model_choices(run_id)["next_model"]
    assert run_id in [value for _, value in offered.choices] and offered.value == run_id
    assert sort_step.model_choices("no-such-run")["next_model"].value == ""
    grouping = grouping_of(first_sort)
    out = sort_step.suggest_next(grouping, run_id)
    why = out["next_table"]["why"].tolist()
    typical = len(grouping.groups)
    assert why[:typical] == ["the most typical photo of a group with no label yet"] * typical
    assert why[typical:] and set(why[typical:]) == {"the model is least sure of it"}
    # in the model's own order: smallest margin between its first two answers first
    answers = model_answers(Path(trained_run["run_dir"]) / "model.safetensors", grouping.features.paths)
    by_name = {Path(p).name: float(a.topk(2).values[0] - a.topk(2).values[1]) for p, a in answers.items()}
    margins = [by_name[name] for name in out["next_table"]["photo"].tolist()[typical:]]
    assert margins == sorted(margins) and "least sure of" in out["next_note"] and run_id in out["next_note"]
    # a run that cannot answer: said so, and the suggestions go on without it
    lost = sort_step.suggest_next(grouping, "no-such-run")
    assert "was not asked" in lost["next_note"] and len(lost["next_table"]) == len(out["next_table"])
    assert "the model is least sure of it" not in lost["next_table"]["why"].tolist()


@pytest.mark.slow
def test_save_as_a_dataset_hands_it_to_the_data_step(first_sort, photos):
    from studio.data import workspace as wd

    before = _digests(photos)
    grouping = grouping_of(first_sort)
    grouping = sort_step.sort_again(grouping, 3, progress=None)["grouping"]
    nothing = data_step.use_sorted(grouping, "insects", progress=None)
    assert nothing["saved"].startswith("**Not done:**") and set(nothing) == {"saved"}   # the Data step stays
    assert "insects" not in wd.list_datasets()
    grouping.name(0, "first kind")
    grouping.name(1, "second kind")
    unnamed = len(grouping.groups[2].photos)
    out = data_step.use_sorted(grouping, "insects", progress=None)
    folder = wd.dataset_dir("insects")
    assert out["data_source"] == {"source": str(folder), "prefix_separator": None}
    assert wd.counts(folder) == {"first kind": len(grouping.groups[0].photos),
                                 "second kind": len(grouping.groups[1].photos)}
    assert f"{unnamed} photo" in out["saved"] and "left out" in out["saved"]
    assert "make your own dataset here" in out["saved"] and "go on to **2. Model**" in out["saved"]
    assert f"2 classes, {2 * PER_CLASS - unnamed} images" in out["summary"], out["summary"]
    assert out["create_dataset"].value == "insects" and out["uploaded"] is None
    assert _digests(photos) == before   # copies: the person's photos are untouched
    again = data_step.use_sorted(grouping, "insects", progress=None)
    assert "already" in again["saved"] and set(again) == {"saved"}
    # no name typed: a free one
    other = data_step.use_sorted(grouping, "", progress=None)
    assert Path(other["data_source"]["source"]).name == sort_step.DEFAULT_NAME
    # one class only: saved, but the Data step says it can't train on it yet, and so does the message
    grouping.merge(0, 1)
    single = data_step.use_sorted(grouping, "one kind", progress=None)
    assert single["data_source"] is None and "can't be trained on yet" in single["saved"]
    assert "at least two classes" in single["saved"] and wd.counts(wd.dataset_dir("one kind"))


@pytest.mark.slow
def test_too_few_photos_and_a_zip_with_other_files_say_what_happened(tmp_path):
    archive = tmp_path / "few.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in example_files("val", "ants", 3):
            zf.write(file, f"photos/{file.name}")
        zf.writestr("photos/notes.txt", "not a photo")
    out = sort_step.sort([str(archive)], progress=None)
    assert out["grouping"] is None
    assert out["status"].startswith("**Not done:**") and "3 readable photos" in out["status"]
    assert "at least 6" in out["status"]
    assert out["unreadable"].value["data"][0][0] == "notes.txt"
    assert "Pick or drop" in sort_step.sort(None, progress=None)["status"]
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    assert "not a readable .zip" in sort_step.sort([str(broken)], progress=None)["status"]


def test_edits_before_any_sort_ask_for_photos_first():
    for out in (sort_step.name_group(None, "1", "x"), sort_step.merge_groups(None, "1", "2"),
                sort_step.split_group(None, "1"), sort_step.move_photo(None, "1", None, "2")):
        assert out["status"] == "Sort some photos first." and out["grouping"] is None
    assert sort_step.suggest_next(None)["next_note"] == "Sort some photos first."
    assert sort_step.save_groups(None, "x")["folder"] is None


def test_unlabeled_photos_reach_the_training_config_and_its_command(tmp_path):
    from studio.config import command_line

    source = {"source": "assets/example/hymenoptera", "prefix_separator": None}
    controls = ("mobilenetv2_100", "auto", 0, "Auto", "Auto", "auto", [], [])
    # no data chosen yet: refused
    refused = data_step.attach_unlabeled(None, [str(p) for p in example_files("val", "ants", 2)])
    assert "Choose the labelled photos first" in refused["unlabeled_note"] and "data_source" not in refused
    # a zip is used as it is
    archive = tmp_path / "wild.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in example_files("val", "bees", 5):
            zf.write(file, f"wild/{file.name}")
    out = data_step.attach_unlabeled(source, [str(archive)])
    assert out["data_source"] == {**source, "unlabeled": str(archive)}
    assert out["unlabeled_state"]["photos"] == 5 and "5 unlabeled photos attached" in out["unlabeled_note"]
    assert "5 attached" in out["unlabeled_box"].label
    config = train_step.page_config(out["data_source"], *controls)
    assert config.unlabeled == str(archive)
    assert f"--unlabeled {archive}" in command_line(config)
    assert "--unlabeled" in train_step.repeat_command(out["data_source"], *controls)
    # loose photos are copied into a fresh folder; the person's files are only read
    loose = [tmp_path / f"{n}.jpg" for n in range(4)]
    for target, file in zip(loose, example_files("val", "ants", 4)):
        target.write_bytes(file.read_bytes())
    before = _digests(tmp_path)
    out = data_step.attach_unlabeled(source, [str(p) for p in loose])
    folder = Path(out["data_source"]["unlabeled"])
    assert folder.is_dir() and not folder.is_relative_to(tmp_path) and len(list(folder.iterdir())) == 4
    assert _digests(tmp_path) == before
    assert train_step.page_config(out["data_source"], *controls).unlabeled == str(folder)
    # other data chosen: taken off, and the box says so
    attached = out["unlabeled_state"]
    changed = data_step.show_unlabeled({"source": "elsewhere", "prefix_separator": None}, attached)
    assert "were taken off" in changed["unlabeled_note"] and changed["unlabeled_state"] is None
    assert changed["unlabeled_files"] is None
    # removed
    removed = data_step.remove_unlabeled(out["data_source"])
    assert removed["data_source"] == source and removed["unlabeled_state"] is None
    assert train_step.page_config(removed["data_source"], *controls).unlabeled is None
    assert "--unlabeled" not in command_line(train_step.page_config(removed["data_source"], *controls))
    # nothing that is a photo: not attached
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    nothing = data_step.attach_unlabeled(source, [str(text)])
    assert "no photos" in nothing["unlabeled_note"] and "unlabeled" not in nothing["data_source"]
