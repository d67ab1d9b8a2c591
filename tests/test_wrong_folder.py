"""Photos probably in the wrong folder: found after training from out-of-fold answers, listed with reasons,
and left out of the next run on request (CLI list, Python API)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers import WORKSPACE, example_files
from studio.data import wrong_folder


@pytest.fixture(scope="module")
def misfiled_dataset():
    """The example ants and bees (40 of each for training) with four bee photos put in the ants folder."""
    root = WORKSPACE / "misfiled"
    shutil.rmtree(root, ignore_errors=True)
    for split, count in (("train", 40), ("val", 10)):
        for label in ("ants", "bees"):
            target = root / split / label
            target.mkdir(parents=True)
            for file in example_files(split, label, count):
                shutil.copyfile(file, target / file.name)
    moved = sorted((root / "train" / "bees").glob("*.jpg"))[:4]
    for photo in moved:
        photo.rename(root / "train" / "ants" / photo.name)
    return root, sorted(str((root / "train" / "ants" / p.name).resolve()) for p in moved)


@pytest.fixture(scope="module")
def misfiled_run(misfiled_dataset, tmp_path_factory):
    from studio.cli import main
    root, _ = misfiled_dataset
    out = tmp_path_factory.mktemp("misfiled") / "run"
    assert main(["train", str(root), "--freeze", "all", "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_the_misfiled_photos_are_found_first(misfiled_dataset, misfiled_run):
    _, moved = misfiled_dataset
    suspects = wrong_folder.read(misfiled_run)
    status = json.loads((misfiled_run / "status.json").read_text())
    assert status["wrong_folder"]["suspects"] == len(suspects) and status["wrong_folder"]["judged"] == 80
    found = [str(p) for p in suspects.path]
    # the bees filed as ants are the surest suspects, each suggested back as a bee, with a reason in words
    assert sum(path in moved for path in found[:len(moved)]) >= 3, suspects.head(6)
    first = suspects.iloc[0]
    assert first.label == "ants" and first.suggested == "bees"
    assert first.suggested_probability > first.label_probability and "looks like 'bees'" in first.reason
    assert len(suspects) < 20   # a few suspects, not half the data


def test_the_list_leaves_them_out_of_the_next_run(misfiled_dataset, misfiled_run, tmp_path, capsys):
    from studio.cli import main
    root, _ = misfiled_dataset
    listed = misfiled_run / wrong_folder.FILE
    suspects = wrong_folder.read(misfiled_run)
    out = tmp_path / "again"
    assert main(["train", str(root), "--freeze", "all", "--epochs", "1", "--leave-out-photos", str(listed),
                 "--out", str(out)]) == 0
    status = json.loads((out / "status.json").read_text())
    skipped = {s["path"]: s["reason"] for s in status["dataset"]["skipped"]}
    assert status["dataset"]["train"] == 80 - len(suspects)
    assert all(any(name.endswith(str(p).split("/")[-1]) for name in skipped) for p in suspects.path)
    assert any("looks like" in reason for reason in skipped.values())
    assert "--leave-out-photos" in (out / "config.json").read_text() or \
        json.loads((out / "config.json").read_text())["leave_out_list"] == str(listed)


def test_the_summary_says_how_to_train_without_them(misfiled_dataset, tmp_path, capsys):
    from studio.cli import main
    root, _ = misfiled_dataset
    assert main(["train", str(root), "--freeze", "all", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    said = capsys.readouterr().out
    assert "wrong folder" in said and "--leave-out-photos" in said


def test_a_plain_list_of_paths_works_too(misfiled_dataset, tmp_path):
    from studio.data.checks import listed_in_dataset, read_photo_list
    from studio.data.sources import open_dataset
    root, moved = misfiled_dataset
    text = tmp_path / "bad.txt"
    relative = [str((root / "train" / "ants" / p.split("/")[-1]).relative_to(root)) for p in moved[:2]]
    text.write_text("# photos I checked\n" + "\n".join(relative) + "\n")
    dataset = open_dataset(str(root), 0.2, 0)
    picked = listed_in_dataset(dataset, read_photo_list(text, root))
    assert len(picked) == 2 and all("bad.txt" in reason for reason in picked.values())


def test_too_few_photos_in_a_class_is_said_not_guessed():
    features, labels = torch.randn(12, 8), torch.tensor([0] * 9 + [1] * 3)
    found = wrong_folder.find(features, labels, [f"p{i}" for i in range(12)], ["cats", "dogs"])
    assert found.judged == 0 and "dogs" in found.words() and "at least 5" in found.words()


def test_clean_separable_features_give_no_suspects_and_a_flip_is_caught():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 32, generator=generator) * 4
    labels = torch.arange(3).repeat_interleave(30)
    features = centres[labels] + torch.randn(90, 32, generator=generator)
    files = [f"photo{i}.jpg" for i in range(90)]
    assert len(wrong_folder.find(features, labels, files, ["a", "b", "c"]).suspects) == 0
    flipped = labels.clone()
    flipped[5] = 2   # a photo of class a filed under c
    found = wrong_folder.find(features, flipped, files, ["a", "b", "c"])
    assert found.suspects.path.tolist() == ["photo5.jpg"] and found.suspects.suggested.tolist() == ["a"]


def test_a_run_without_a_frozen_stage_says_why_it_did_not_look(small_dataset, tmp_path):
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training
    run = start_training(TrainConfig(data=str(small_dataset), freeze="6", epochs=1, train_size=96),
                         run_dir=tmp_path / "ft")
    run.wait()
    state = run.snapshot()
    assert state["status"] == "finished", state.get("error")
    assert state["wrong_folder"]["judged"] == 0 and "did not compute" in state["wrong_folder"]["words"]
    assert wrong_folder.read(tmp_path / "ft") is None


def test_the_runs_page_shows_them_and_hands_the_picks_to_the_data_step(misfiled_dataset, misfiled_run):
    """The Runs page's section: photos with reasons and tick boxes; the ticked ones become a ticked Data-step
    finding, which the Train step's config then leaves out by file."""
    from components import train_step, wrong_folder_view
    root, moved = misfiled_dataset
    status = json.loads((misfiled_run / "status.json").read_text())
    shown = wrong_folder_view.suspects(str(misfiled_run), status)
    assert "wrong folder" in shown["note"] and "Leave the ticked photos out" in shown["note"]
    gallery, picks = shown["gallery"], shown["picks"]
    assert len(gallery.value) == len(wrong_folder.read(misfiled_run))
    assert "looks like bees" in gallery.value[0]["caption"]
    choices = dict((value, label) for label, value in picks.choices)
    picked = [p for p in choices if p in moved][:2]
    assert len(picked) == 2 and all("looks like bees" in choices[p] for p in picked)
    finding = wrong_folder_view.picked_finding(picked, str(misfiled_run))
    assert finding["kind"] == "wrong_folder" and finding["exclude"] == picked and "looks like" in finding["message"]
    # the wrong data on the Data step is refused in words; the run's own data is taken
    assert "Choose this run's data" in wrong_folder_view.other_data(None, str(misfiled_run))
    assert "other data" in wrong_folder_view.other_data({"source": str(WORKSPACE / "small")}, str(misfiled_run))
    assert wrong_folder_view.other_data({"source": str(root)}, str(misfiled_run)) is None
    config = train_step.page_config({"source": str(root), "prefix_separator": None}, "mobilenetv2_100", "auto",
                                    None, None, None, None, ["wrong_folder"], [finding])
    assert set(config.exclude_files) == set(picked) and "wrong folder" in next(iter(config.exclude_files.values()))
    assert "wrong_folder" not in config.exclude


def test_a_run_from_before_the_check_says_so(trained_run, tmp_path):
    from components import wrong_folder_view
    old = tmp_path / "old"
    shutil.copytree(trained_run["run_dir"], old)
    (old / wrong_folder.FILE).unlink(missing_ok=True)
    shown = wrong_folder_view.suspects(str(old), {})
    assert "has no list of photos" in shown["note"] and shown["picks"].visible is False


def test_the_python_api_lists_them_and_leaves_them_out(misfiled_dataset, misfiled_run, tmp_path):
    import studio
    root, _ = misfiled_dataset
    model = studio.load(misfiled_run)
    table = model.wrong_folder()
    assert list(table.columns[:3]) == ["path", "label", "suggested"] and len(table)
    listed = tmp_path / "checked.csv"
    table.head(2).to_csv(listed, index=False)   # a person kept the two they agree with
    again = studio.train(root, freeze="all", epochs=1, leave_out_list=str(listed), out=tmp_path / "again")
    left = json.loads((again.run_dir / "status.json").read_text())["dataset"]["train"]
    assert left == 78


def test_a_list_that_matches_nothing_is_refused_and_one_with_a_filename_column_is_read(misfiled_dataset, tmp_path):
    from studio.data.checks import listed_in_dataset, read_photo_list
    from studio.data.samples import DatasetError
    from studio.data.sources import open_dataset
    root, moved = misfiled_dataset
    dataset = open_dataset(str(root), 0.2, 0)
    other = tmp_path / "other.csv"
    other.write_text("reason,filename\nblurry,/elsewhere/a.jpg\n")
    with pytest.raises(DatasetError, match="None of the 1 photos listed in other.csv"):
        listed_in_dataset(dataset, read_photo_list(other, root), "other.csv")
    mine = tmp_path / "mine.csv"
    mine.write_text("note,filename\nbee,train/ants/" + moved[0].split("/")[-1] + "\n")
    assert len(listed_in_dataset(dataset, read_photo_list(mine, root), "mine.csv")) == 1
