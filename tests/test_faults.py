"""Faults a real studio meets, injected through the engine's hooks: the run says what happened
in words and nothing already saved is lost."""
import errno
import json
from pathlib import Path

import pytest
import torch

from studio import faults, modelfile
from studio.runs import MODEL_FILE, Run
from studio.training.config import TrainConfig
from studio.training.trainer import run_training


pytestmark = pytest.mark.slow  # every test trains a real run


@pytest.fixture(autouse=True)
def no_hooks_left():
    yield
    faults.set_hook("save_model", None)
    faults.set_hook("train_step", None)


def test_a_full_disk_while_saving_keeps_the_earlier_best_and_says_what_to_do(small_dataset, tmp_path):
    saves = []

    def disk_full(epoch):
        saves.append(epoch)
        if len(saves) >= 2:  # the second best model finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / MODEL_FILE))
    faults.set_hook("save_model", disk_full)
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=4,
                         patience=0, label_smoothing=0.0).resolved()
    run = Run(tmp_path / "run", {})
    run_training(config, run)
    snapshot = run.snapshot()
    assert len(saves) == 2, saves  # (a seeded run: a later epoch always improves on the first here)
    assert snapshot["status"] == "failed"
    assert "the disk is full" in snapshot["error"] and "resume the run" in snapshot["error"]
    model, meta = modelfile.load(tmp_path / "run" / MODEL_FILE)  # the epoch-1 best is whole
    assert meta["summary"]["epoch"] == saves[0]
    assert not list((tmp_path / "run").glob("*.partial"))
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, len(lines) + 1))
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_out_of_gpu_memory_halves_the_batch_and_goes_on(small_dataset, tmp_path):
    def small_gpu(batch_size):
        if batch_size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
    faults.set_hook("train_step", small_gpu)
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="7", epochs=2,
                         batch_size=32, patience=0).resolved()
    run = Run(tmp_path / "run", {})
    run_training(config, run)
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert [h["epoch"] for h in snapshot["history"]] == [1, 2]
    assert any("batch size 32: continuing with 16" in n for n in snapshot["notes"])
    assert any("batch size 16: continuing with 8" in n for n in snapshot["notes"])
    assert (Path(snapshot["run_dir"]) / MODEL_FILE).is_file()


def test_out_of_memory_at_the_smallest_batch_fails_with_advice(small_dataset, tmp_path):
    def no_gpu(batch_size):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
    faults.set_hook("train_step", no_gpu)
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="7", epochs=1,
                         batch_size=4).resolved()
    run = Run(tmp_path / "run", {})
    run_training(config, run)
    snapshot = run.snapshot()
    assert snapshot["status"] == "failed" and "smaller backbone" in snapshot["error"]


def test_a_killed_training_process_leaves_an_interrupted_run_whose_best_model_works(small_dataset, tmp_path):
    """kill -9 mid-run (a closed laptop, a crash): after a restart the run is listed as interrupted, its
    best model so far classifies photos, and `studio train --resume` finishes it from its last epoch."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers import example_files
    from studio.runs import history
    from studio.inference import Predictor

    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "studio", "train", str(small_dataset), "--freeze", "7",
                                "--epochs", "8", "--patience", "0", "--batch-size", "8", "--quiet",
                                "--out", str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert process.poll() is None, "the training ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)

    row = history.summarize(run_dir)
    assert row["status"] == "interrupted" and row["has_model"], row
    lines = metrics.read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, len(lines) + 1))  # whole lines only
    bee = example_files("val", "bees", 30)[-1]
    assert Predictor(run_dir / MODEL_FILE).predict([bee])[0][0][0] in ("ants", "bees")

    saved = torch.load(run_dir / "resume.pt", weights_only=True)["epoch"]
    assert saved >= len(lines) - 1  # at most the epoch being recorded when it died is missing
    done = subprocess.run([sys.executable, "-m", "studio", "train", "--resume", str(run_dir), "--quiet",
                           "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and [h["epoch"] for h in result["history"]] == list(range(1, 9))
    assert history.summarize(run_dir)["status"] == "finished"
