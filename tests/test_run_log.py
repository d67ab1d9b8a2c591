"""Every run keeps `run.log` in its folder, and an unexpected failure keeps its traceback there;
the page and the CLI show the failure in words and say where the details are (issue 15, item 7)."""
import pytest

from studio import faults
from studio.runs.folder import LOG_FILE
from studio.training.config import TrainConfig
from studio.training.trainer import resume_training, start_training
from studio.runs import JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


pytestmark = pytest.mark.slow  # every test trains a real run


@pytest.fixture(autouse=True)
def no_hooks_left():
    yield
    faults.set_hook("save_model", None)


def test_a_finished_run_logs_its_phases_choices_and_epochs(small_dataset, tmp_path):
    run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=2,
                                     patience=0), run_dir=tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    assert run.snapshot()["status"] == "finished"
    log = (tmp_path / "run" / LOG_FILE).read_text()
    assert "started with" in log and '"backbone": "mobilenetv2_100"' in log
    assert "Epoch 1:" in log and "Epoch 2:" in log and "val_accuracy" in log
    assert "Run finished." in log and "Traceback" not in log
    assert run.snapshot()["log_file"] == str(tmp_path / "run" / LOG_FILE)


def test_an_unexpected_failure_keeps_its_traceback_and_says_where(small_dataset, tmp_path):
    def broken(epoch):
        raise KeyError("an internal bug")
    faults.set_hook("save_model", broken)
    run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=2,
                                     patience=0), run_dir=tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    faults.set_hook("save_model", None)
    snap = run.snapshot()
    log_file = tmp_path / "run" / LOG_FILE
    assert snap["status"] == "failed"
    assert snap["error"].startswith("KeyError: 'an internal bug'") and str(log_file) in snap["error"]
    log = log_file.read_text()
    assert "Training failed" in log and "Traceback (most recent call last)" in log
    assert "in end_epoch" in log and "KeyError: 'an internal bug'" in log   # where it happened, in full

    from components import views
    shown = views.status_line(snap)   # what the Train step's status line says
    assert "Training failed" in shown and str(log_file) in shown and "Traceback" not in shown


def test_a_resumed_run_carries_on_the_same_log(small_dataset, tmp_path):
    from helpers import cut_off_run
    cut_off_run(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=3,
                            patience=0), 2, tmp_path / "run")
    before = (tmp_path / "run" / LOG_FILE).read_text()
    assert "disk is full" in before and "No space left on device" in before
    resume_training(tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    after = (tmp_path / "run" / LOG_FILE).read_text()
    assert after.startswith(before) and "Resumed after epoch 1." in after and "Run finished." in after


def test_status_json_follows_each_phase_and_the_progress_every_few_seconds(tmp_path, monkeypatch):
    """Another process (studio runs, a torchrun or Ray follower) reads status.json: it must see a long
    check or feature pass move, not "Reading the dataset" until the first epoch."""
    import json

    from studio.runs import Run, live

    run = Run(tmp_path / "run", {})

    def on_disk() -> dict:
        return json.loads((tmp_path / "run" / "status.json").read_text())

    run.update(phase="Checking and decoding the images", progress=0.01)
    assert on_disk()["phase"] == "Checking and decoding the images" and on_disk()["progress"] == 0.01
    run.update(progress=0.02)
    assert on_disk()["progress"] == 0.01          # throttled: written at most every STATUS_EVERY_S
    monkeypatch.setattr(live, "STATUS_EVERY_S", 0.0)
    run.update(progress=0.03)
    assert on_disk()["progress"] == 0.03
