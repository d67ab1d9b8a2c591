"""Resuming: a run cut off after epoch k carries on from k+1 and ends exactly where an unbroken run
would have (same seed, same machine), in its own folder; checkpoints from outside never run code."""
import json
import pickle
import subprocess
import sys

import pytest
import torch

from helpers import cut_off_run, example_files
from studio import faults
from studio.runs.checkpoints import ResumeError
from studio.runs.checkpoints import read as read_checkpoint
from studio.runs import CHECKPOINT_FILE, MODEL_FILE, JobRunner
from studio.training.config import TrainConfig
from studio.training.trainer import resume_training, start_training

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


pytestmark = pytest.mark.slow  # every test trains and resumes real runs


@pytest.fixture(autouse=True)
def no_hooks_left():
    yield
    faults.set_hook("save_checkpoint", None)
    faults.set_hook("announce_epoch", None)


def train(config: TrainConfig, run_dir):
    run = start_training(config, run_dir=run_dir, runner=RUNNER)
    RUNNER.wait()
    return run.snapshot()


LEARNED = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


@pytest.mark.parametrize("freeze, crash_after", [
    ("5", 1),       # fine-tuning only
    ("all", 2),     # the head on cached features (the features are made again on resume)
    ("auto", 3),    # Auto, cut off in its head stage
    ("auto", 6),    # Auto, cut off in its fine-tuning stage (its depth and rate come from the checkpoint)
])
def test_a_resumed_run_ends_exactly_as_an_unbroken_one(small_dataset, tmp_path, freeze, crash_after):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze=freeze, epochs=3, patience=0,
                         feature_views=2)
    unbroken = train(config, tmp_path / "unbroken")
    assert unbroken["status"] == "finished", unbroken["error"]
    assert not (tmp_path / "unbroken" / CHECKPOINT_FILE).exists()  # a finished run gives the disk back

    cut = cut_off_run(config, crash_after + 1, tmp_path / "cut").snapshot()
    assert cut["status"] == "failed" and len(cut["history"]) == crash_after   # the unsaved epoch was never announced
    assert read_checkpoint(tmp_path / "cut")["epoch"] == crash_after

    resumed = resume_training(tmp_path / "cut", runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "finished", final["error"]
    assert f"Resumed after epoch {crash_after}." in final["notes"]
    assert [h["epoch"] for h in final["history"]] == [h["epoch"] for h in unbroken["history"]]
    for mine, theirs in zip(final["history"], unbroken["history"]):
        assert {k: mine[k] for k in LEARNED} == pytest.approx({k: theirs[k] for k in LEARNED}, abs=1e-4), mine
    assert final["best_epoch"] == unbroken["best_epoch"]
    assert final["best_val_accuracy"] == pytest.approx(unbroken["best_val_accuracy"])
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [h["epoch"] for h in unbroken["history"]]
    assert not (tmp_path / "cut" / CHECKPOINT_FILE).exists()


def test_an_epoch_is_checkpointed_before_it_is_announced(small_dataset, tmp_path):
    """When an epoch's checkpoint is written, neither metrics.jsonl nor the live run knows the epoch yet."""
    seen = []

    def look(epoch):
        metrics = tmp_path / "run" / "metrics.jsonl"
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        seen.append((epoch, [json.loads(line)["epoch"] for line in lines],
                     [h["epoch"] for h in RUNNER.current.snapshot()["history"]]))
    faults.set_hook("save_checkpoint", look)
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="auto", epochs=3, patience=0)
    done = train(config, tmp_path / "run")
    assert done["status"] == "finished", done["error"]
    assert len(seen) == len(done["history"]) >= 2   # every epoch, head and fine-tuning alike
    for epoch, on_disk, live in seen:
        assert epoch not in on_disk and epoch not in live, (epoch, on_disk, live)


@pytest.mark.parametrize("freeze, crash_at", [("all", 2), ("5", 1)])
def test_a_crash_right_after_the_checkpoint_loses_nothing(small_dataset, tmp_path, freeze, crash_at):
    """Cut off between the checkpoint and the announcement: the resumed run takes that epoch's record
    from the checkpoint and ends exactly as an unbroken run."""
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze=freeze, epochs=3, patience=0)
    unbroken = train(config, tmp_path / "unbroken")

    def crash(epoch):
        if epoch == crash_at:
            raise RuntimeError("the machine went away")
    faults.set_hook("announce_epoch", crash)
    cut = train(config, tmp_path / "cut")
    faults.set_hook("announce_epoch", None)
    assert cut["status"] == "failed" and len(cut["history"]) == crash_at - 1
    assert read_checkpoint(tmp_path / "cut")["epoch"] == crash_at

    resumed = resume_training(tmp_path / "cut", runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "finished", final["error"]
    assert [h["epoch"] for h in final["history"]] == [h["epoch"] for h in unbroken["history"]]
    for mine, theirs in zip(final["history"], unbroken["history"]):
        assert {k: mine[k] for k in LEARNED} == pytest.approx({k: theirs[k] for k in LEARNED}, abs=1e-4), mine
    assert final["best_epoch"] == unbroken["best_epoch"]
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [h["epoch"] for h in unbroken["history"]]


def test_a_killed_cli_run_resumes_from_its_first_announced_epoch(small_dataset, tmp_path):
    """The reported case: `studio train` killed (SIGKILL) as soon as an epoch shows in metrics.jsonl."""
    import os
    import signal
    import time
    run_dir = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "studio", "train", str(small_dataset), "--backbone",
                              "mobilenetv2_100", "--freeze", "0", "--epochs", "3", "--patience", "0",
                              "--out", str(run_dir), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and child.poll() is None:
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file() and metrics.read_text().strip():
                break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    announced = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert announced and read_checkpoint(run_dir)["epoch"] >= announced[-1]

    resumed = resume_training(run_dir, runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "finished", final["error"]
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]


def test_stop_then_resume_keeps_the_finished_epochs(small_dataset, tmp_path):
    """The Stop button mid-run, then Resume: the folder stays consistent and the run goes on."""
    stopped_at = []

    def stop_after_second(epoch):
        if epoch == 2:
            stopped_at.append(epoch)
            RUNNER.stop()   # what the page's Stop does; the run ends at its next batch
    faults.set_hook("save_checkpoint", stop_after_second)
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="6", epochs=4, patience=0)
    stopped = train(config, tmp_path / "run")
    faults.set_hook("save_checkpoint", None)
    assert stopped["status"] == "stopped" and [h["epoch"] for h in stopped["history"]] == [1, 2]
    assert not list((tmp_path / "run").glob("*.partial"))
    resumed = resume_training(tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "finished" and [h["epoch"] for h in final["history"]] == [1, 2, 3, 4]
    assert (tmp_path / "run" / MODEL_FILE).is_file()


def test_what_cannot_be_resumed_says_why(small_dataset, tmp_path, trained_run):
    with pytest.raises(ResumeError, match="finished"):
        resume_training(trained_run["run_dir"], runner=RUNNER)
    with pytest.raises(ResumeError, match="not a run folder"):
        resume_training(tmp_path, runner=RUNNER)
    # a run folder from another user, with login on
    with pytest.raises(ResumeError, match="not one of yours"):
        resume_training(trained_run["run_dir"], owner="someone-else", runner=RUNNER)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packing", ["raw pickle", "torch.save archive"])
def test_a_crafted_checkpoint_is_refused_without_running_it(small_dataset, tmp_path, packing):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=3, patience=0)
    cut_off_run(config, 2, tmp_path / "run")
    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "run" / CHECKPOINT_FILE
    if packing == "raw pickle":
        checkpoint.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"format": 1, "stage": "head", "epoch": 1, "weights": _Payload(marker)}, checkpoint)
    with pytest.raises(ResumeError, match="damaged or holds code"):
        resume_training(tmp_path / "run", runner=RUNNER)
    assert not marker.exists(), "loading the checkpoint ran its code"


def test_resume_from_the_command_line(small_dataset, tmp_path, trained_run):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=3, patience=0)
    cut_off_run(config, 2, tmp_path / "run")

    def studio(*args):
        return subprocess.run([sys.executable, "-m", "studio", "train", *map(str, args)], capture_output=True,
                              text=True, timeout=600)
    done = studio("--resume", tmp_path / "run", "--quiet", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and [h["epoch"] for h in result["history"]] == [1, 2, 3]

    again = studio("--resume", tmp_path / "run")
    assert again.returncode == 2 and "nothing to resume" in again.stderr and "Traceback" not in again.stderr
    both = studio(small_dataset, "--resume", tmp_path / "run")
    assert both.returncode == 2 and "run folder only" in both.stderr


def test_a_dataset_changed_since_the_run_started_is_not_mixed_in(small_dataset, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    config = TrainConfig(data=str(data), backbone="mobilenetv2_100", freeze="all", epochs=3, patience=0)
    cut_off_run(config, 2, tmp_path / "run")
    new_bee = example_files("train", "bees", 60)[-1]   # not among the first 24 the run trains on
    shutil.copy(new_bee, data / "train" / "bees" / "one-more-bee.jpg")   # the user added a photo meanwhile

    resumed = resume_training(tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "failed" and "dataset changed" in final["error"], final["error"]
    assert [h["epoch"] for h in final["history"]] == [1]   # what was learnt before is kept
    assert read_checkpoint(tmp_path / "run")["epoch"] == 1  # and can still be resumed once the data is back
