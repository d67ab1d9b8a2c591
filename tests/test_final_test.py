"""The test split is never used for a choice, and its accuracy is reported apart (issue 17).

The planted test: the same photos trained twice, once with a test/ folder whose labels are all wrong.
Had the test photos reached any decision (the best epoch, early stopping, Auto's depth, class weights,
the batch size), the two runs would differ; they must be identical, and only the second reports a
(poor) test accuracy, measured once at the end.
"""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from helpers import WORKSPACE, example_files, make_subset
from studio.commands import train_summary
from studio.export import modelcard
from studio.modelfile import read_metadata
from studio.runs import JobRunner, RunFolder
from studio.training.config import TrainConfig
from studio.training.trainer import start_training

pytestmark = pytest.mark.slow   # four real trainings

RUNNER = JobRunner()
TIMING = ("epoch_seconds", "elapsed_seconds")


@pytest.fixture(scope="module")
def twin_datasets() -> tuple[Path, Path]:
    """(train/ + val/, the same + a test/ folder of other photos, each filed under the wrong class)."""
    plain = make_subset(WORKSPACE / "honest-plain", train=16, val=6)
    planted = WORKSPACE / "honest-planted"
    shutil.copytree(plain, planted, dirs_exist_ok=True)
    for label, wrong in (("ants", "bees"), ("bees", "ants")):
        (planted / "test" / wrong).mkdir(parents=True, exist_ok=True)
        for photo in example_files("val", label, 14)[6:]:   # photos in neither train nor val
            shutil.copyfile(photo, planted / "test" / wrong / photo.name)
    return plain, planted


@functools.cache   # each (data, recipe) trains once for the whole module: the tests only read the runs
def trained(data: Path, freeze: str) -> dict:
    run = start_training(TrainConfig(data=str(data), backbone="mobilenetv2_100", freeze=freeze, epochs=3,
                                     feature_views=1, patience=1, seed=3), runner=RUNNER)
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot


@pytest.mark.parametrize("freeze", ["all", "auto"])
def test_a_planted_test_split_changes_nothing_the_run_chose(twin_datasets, freeze):
    plain, planted = (trained(data, freeze) for data in twin_datasets)
    history = [[{k: v for k, v in row.items() if k not in TIMING} for row in run["history"]]
               for run in (plain, planted)]
    assert history[0] == history[1]
    assert plain["best_epoch"] == planted["best_epoch"] and plain["freeze"] == planted["freeze"]
    asked = [{k: v for k, v in run["config"].items() if k not in ("data", "asked")} for run in (plain, planted)]
    assert asked[0] == asked[1]   # every choice and its words, Auto's depth included
    weights = [load_file(run["model_path"]) for run in (plain, planted)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert read_metadata(planted["model_path"])["classes"] == ["ants", "bees"]

    assert plain["test"] is None and planted["dataset"]["test"] == 16
    test = planted["test"]
    assert test["images"] == 16 and sum(map(sum, test["confusion"])) == 16
    assert test["accuracy"] < 0.5 < planted["best_val_accuracy"]   # every test label is wrong, on purpose
    answers = pd.read_csv(RunFolder(planted["run_dir"]).test_predictions)
    assert len(answers) == 16 and all("/test/" in Path(p).as_posix() for p in answers.path)
    samples = pd.read_csv(RunFolder(planted["run_dir"]).samples)
    assert not set(samples.path) & set(answers.path)   # never among the photos trained or validated on


def test_the_test_figure_is_reported_apart_and_its_absence_is_explained(twin_datasets):
    plain, planted = (trained(data, "all") for data in twin_datasets)
    for run, expected in ((planted, "Test accuracy"), (plain, "somewhat optimistic")):
        result = {"status": "finished", "epochs_run": len(run["history"]), "train_seconds": 1.0,
                  "backbone": "mobilenetv2_100", "classes": run["classes"], "best_epoch": run["best_epoch"],
                  "best_val_accuracy": run["best_val_accuracy"], "run_dir": run["run_dir"],
                  "model_path": run["model_path"], "test": run["test"]}
        assert expected in train_summary(result)
        card = modelcard.build(Path(run["run_dir"]), read_metadata(run["model_path"]), "bundle", None,
                               check_data=False)
        assert ("Results on the test photos" in card) == (run is planted)
        assert expected.lower() in card.lower()
    from components import views
    assert "Test accuracy" in views.status_line(planted) and "test/" in views.status_line(plain)


def test_a_test_part_can_be_held_out_of_train_when_the_data_has_none(twin_datasets):
    """--test-fraction (the page's "Hold out for a test"): a stratified part of the training photos."""
    plain, _ = twin_datasets
    run = start_training(TrainConfig(data=str(plain), backbone="mobilenetv2_100", freeze="all", epochs=2,
                                     feature_views=1, test_fraction=0.25), runner=RUNNER)
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert snapshot["dataset"]["test"] == 8 and snapshot["dataset"]["train"] == 24   # 4 of 16 per class
    answers = pd.read_csv(RunFolder(snapshot["run_dir"]).test_predictions)
    assert sorted(answers.label.value_counts().tolist()) == [4, 4]
    samples = pd.read_csv(RunFolder(snapshot["run_dir"]).samples)
    assert not set(samples.path) & set(answers.path)
    assert snapshot["test"]["images"] == 8 and 0 <= snapshot["test"]["accuracy"] <= 1
    held = [row for row in snapshot["dataset"]["skipped"] if row["path"].startswith("photos held out")]
    assert len(held) == 1 and len(held[0]["members"]) == 8


def test_the_export_checks_each_format_on_the_test_photos_too(twin_datasets, tmp_path):
    from studio.export import bundle, parity
    _, planted = twin_datasets
    run = trained(planted, "all")
    made = bundle.export_run(run["run_dir"], "onnx", tmp_path / "onnx", check_data=False)
    report = made.parity
    assert report["test_images"] == 16
    assert report["trained"]["test_accuracy"] == pytest.approx(run["test"]["accuracy"], abs=1e-4)
    assert all(row["test_accuracy"] == pytest.approx(report["trained"]["test_accuracy"], abs=0.07)
               for row in report["exports"])
    assert "Test accuracy" in parity.table_markdown(report)
    plain_report = {**report, "test_images": 0}
    assert "Test accuracy" not in parity.table_markdown(plain_report)
