"""`studio train --unlabeled`: labelled photos plus unlabeled ones, on real photos and a real backbone.

What must hold: the unlabeled photos are read and pseudo-labelled class by class, copies of labelled
photos and unreadable files are left out and listed (never silently), a folder with nothing usable
is a clear error, and the run can be repeated from its folder with the same unlabeled photos.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from helpers import example_files, make_subset
from studio.training import unlabeled


def test_share_grows_from_the_second_epoch_to_the_last():
    assert unlabeled.share(1, 10) == 0.0                      # the first epoch learns from the labels alone
    shares = [unlabeled.share(epoch, 10) for epoch in range(2, 11)]
    assert shares[0] == pytest.approx(unlabeled.FIRST_SHARE) and shares[-1] == pytest.approx(unlabeled.LAST_SHARE)
    assert shares == sorted(shares)
    assert unlabeled.share(2, 2) == unlabeled.LAST_SHARE       # a two-epoch head still uses them once


def test_pseudo_labels_take_the_surest_share_of_each_predicted_class():
    head = torch.nn.Linear(2, 2, bias=False)
    head.weight.data = torch.eye(2)
    # 8 photos the head calls class 0 and 2 it calls class 1, with growing confidence
    features = torch.tensor([[x, 0.0] for x in range(1, 9)] + [[0.0, 1.0], [0.0, 5.0]])
    chosen, labels = unlabeled.pseudo_labels(head, features, 0.5)
    assert chosen.tolist() == [4, 5, 6, 7, 9]           # the surest half of class 0, the surer one of class 1
    assert labels.tolist() == [0, 0, 0, 0, 1]
    assert head.training                                 # left as it was found


@pytest.fixture(scope="module")
def few_and_unlabeled(tmp_path_factory):
    """6 labelled photos a class, and an unlabeled folder: 40 other example photos, a copy of a
    validation photo (to be left out) and a file that is not an image."""
    root = tmp_path_factory.mktemp("semi")
    data = make_subset(root / "few", train=6, val=10)
    pile = root / "unlabeled"
    pile.mkdir()
    for label in ("ants", "bees"):
        for path in example_files("train", label, 26)[6:]:
            shutil.copy(path, pile / f"{label}-{path.name}")
    copy_of_val = next((data / "val" / "ants").iterdir())
    shutil.copy(copy_of_val, pile / "seen-before.jpg")
    (pile / "broken.jpg").write_bytes(b"not a picture")
    return data, pile


def _train(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", "train", *args, "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_train_with_unlabeled_photos_learns_from_them_and_lists_what_it_left_out(few_and_unlabeled, tmp_path):
    data, pile = few_and_unlabeled
    done = _train(str(data), "--freeze", "all", "--epochs", "4", "--unlabeled", str(pile),
                  "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    used = result["unlabeled"]
    assert used["photos"] == 40
    reasons = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in used["left_out"]}
    assert set(reasons) == {"seen-before.jpg", "broken.jpg"}
    assert reasons["seen-before.jpg"] == unlabeled.SAME_AS_LABELLED
    assert 0 < used["pseudo_labelled"] <= 40
    assert all(count > 0 for count in used["per_class"].values())   # class-balanced: both classes pseudo-labelled
    assert len(result["history"]) == 4                                # the head runs every epoch
    assert "unlabeled photos" in result["choices"]["unlabeled"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["unlabeled"] == str(pile)
    # the page's repeat command and --config carry the same unlabeled folder
    again = _train("--config", str(tmp_path / "run"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["unlabeled"]["photos"] == 40
    assert pile.joinpath("broken.jpg").read_bytes() == b"not a picture"   # the person's files untouched


@pytest.mark.slow
def test_unlabeled_folder_with_nothing_to_learn_from_is_a_clear_error(few_and_unlabeled, tmp_path):
    data, _ = few_and_unlabeled
    only_copies = tmp_path / "copies"
    only_copies.mkdir()
    for path in (data / "train" / "bees").iterdir():
        shutil.copy(path, only_copies / path.name)
    done = _train(str(data), "--freeze", "all", "--epochs", "1", "--unlabeled", str(only_copies),
                  "--out", str(tmp_path / "run"))
    assert done.returncode != 0
    assert "holds no unlabeled photos" in done.stderr and "copies of your labelled photos" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_unlabeled_folder_fails_while_the_command_line_is_read(tmp_path):
    done = _train(str(tmp_path), "--unlabeled", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "no such file or folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_python_api_takes_unlabeled_photos(few_and_unlabeled, tmp_path):
    from studio import train
    data, pile = few_and_unlabeled
    model = train(data, freeze="all", epochs=2, unlabeled=pile, out=tmp_path / "run")
    status = json.loads((model.run_dir / "status.json").read_text())
    assert status["unlabeled"]["photos"] == 40 and status["unlabeled"]["pseudo_labelled"] > 0
