"""Training in several processes (torchrun, DistributedDataParallel, the gloo backend on the CPU).

Two processes at a global batch of 16 (8 photos each) must train the model one process trains at
batch 16: the same steps on the same photos, with the gradients averaged over the two halves. They
differ only in how floating-point sums are ordered, so the weights agree to TOLERANCE. Augmentation
is off in the comparison: its random crops are drawn per process, so with it the two runs would
see different crops (and rightly so). Both run in fp32: bf16 (on by default on CPUs with AMX) rounds each
product to 3 digits, and its rounding differs between a batch of 16 and two of 8 by several percent.
"""
from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import load_file

from studio.runs import JobRunner
from studio.training.config import TrainConfig

pytestmark = pytest.mark.slow

TOLERANCE = 0.01   # the runs' difference, relative to how far training moved the weights (both as a norm over
                   # every trained weight: single weights with tiny gradients differ more, as Adam divides by them)


def same_setup(data, **more) -> dict:
    return {**dict(data=str(data), backbone="mobilenetv2_100", freeze="6", epochs=2, augment=False, batch_size=16),
            **more}


@pytest.fixture(scope="module")
def fp32():
    """fp32 in this process and in the torchrun processes it starts (they inherit the environment)."""
    before = os.environ.get("STUDIO_BF16")
    os.environ["STUDIO_BF16"] = "0"
    yield
    if before is None:
        os.environ.pop("STUDIO_BF16")
    else:
        os.environ["STUDIO_BF16"] = before


@pytest.fixture(scope="module")
def two_process_run(small_dataset, tmp_path_factory, fp32):
    from studio.cli import main
    out = tmp_path_factory.mktemp("ddp") / "two"
    args = ["train", str(small_dataset), "--backbone", "mobilenetv2_100", "--freeze", "6", "--epochs", "2",
            "--no-augment", "--batch-size", "16", "--nproc", "2", "--out", str(out), "--json", "--quiet"]
    assert main(args) == 0
    assert json.loads((out / "status.json").read_text())["engine"]["precision"] == "fp32"
    return out


def test_two_processes_train_the_model_one_process_trains(two_process_run, small_dataset, tmp_path, fp32):
    from studio.training.trainer import start_training
    one = start_training(TrainConfig(**same_setup(small_dataset)), run_dir=tmp_path / "one")
    one.wait()
    assert one.snapshot()["status"] == "finished", one.snapshot()["error"]
    from studio import backbones
    single, double = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(
        str(two_process_run / "model.safetensors"))
    start = backbones.create_model("mobilenetv2_100", 2).state_dict()
    assert single.keys() == double.keys()
    trained = [name for name, weight in single.items()
               if weight.is_floating_point() and not torch.equal(weight, start[name])]   # frozen ones are equal
    assert len(trained) > 20   # the head and the top blocks were fine-tuned in both runs
    moved = torch.cat([(single[n] - start[n]).flatten() for n in trained]).norm()
    apart = torch.cat([(single[n] - double[n]).flatten() for n in trained]).norm()
    assert apart <= TOLERANCE * moved, (float(apart), float(moved))
    rows = [json.loads(line) for line in (two_process_run / "metrics.jsonl").read_text().splitlines()]
    for mine, theirs in zip(one.snapshot()["history"], rows):
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], abs=2e-3)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=2e-3)


def test_rank_zero_alone_writes_the_run_folder(two_process_run):
    from studio.runs import history
    status = json.loads((two_process_run / "status.json").read_text())
    assert status["status"] == "finished" and status["best_val_accuracy"] is not None
    config = json.loads((two_process_run / "config.json").read_text())
    assert config["processes"] == 2
    assert len((two_process_run / "metrics.jsonl").read_text().splitlines()) == 2   # one line per epoch, not two
    assert history.summarize(two_process_run)["status"] == "finished"
    assert (two_process_run / "torchrun.log").exists()   # what the processes printed, for a failure's details


def test_stop_and_resume_a_distributed_run(small_dataset, tmp_path):
    """Stop reaches every process through the run folder; the best model so far is kept; Resume carries the
    run on in two processes after its last finished epoch, as a one-process run does."""
    from studio.training.launch import start_distributed
    from studio.training.trainer import resume_training
    runner = JobRunner()
    run = start_distributed(TrainConfig(**same_setup(small_dataset, processes=2, epochs=4)), runner,
                            run_dir=tmp_path / "stopped")
    deadline = time.monotonic() + 300
    while not run.snapshot()["history"] and run.is_active() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.snapshot()["history"], run.snapshot().get("error")
    runner.stop(run)
    run.wait(300)
    stopped = run.snapshot()
    assert stopped["status"] == "stopped", stopped.get("error")
    assert run.folder.has_model() and len(stopped["history"]) < 4
    resumed = resume_training(tmp_path / "stopped", runner=runner)
    resumed.wait(300)
    final = resumed.snapshot()
    assert final["status"] == "finished", final.get("error")
    assert [row["epoch"] for row in final["history"]] == [1, 2, 3, 4]


def test_several_machines_need_a_meeting_point(small_dataset, capsys):
    from studio.cli import main
    assert main(["train", str(small_dataset), "--nproc", "2", "--nnodes", "2"]) == 2
    assert "--rdzv-endpoint" in capsys.readouterr().err
    assert main(["train", str(small_dataset), "--nnodes", "2", "--rdzv-endpoint", "h:1", "--out", "x"]) == 2
    assert "--gpus N" in capsys.readouterr().err
    assert main(["train", str(small_dataset), "--gpus", "2", "--nproc", "2"]) == 2


def test_the_torchrun_command_passes_the_rendezvous_on(tmp_path):
    from studio.training.launch import Rendezvous, command
    config = TrainConfig(data="x", gpus=8)
    line = command(tmp_path / "c.json", tmp_path / "run-1", config, Rendezvous(2, 1, "head:29500"))
    assert "--nproc-per-node=8" in line and "--nnodes=2" in line and "--node-rank=1" in line
    assert "--rdzv-endpoint=head:29500" in line and "--rdzv-id=run-1" in line and "--standalone" not in line
    assert "--standalone" in command(tmp_path / "c.json", tmp_path / "r", TrainConfig(data="x", processes=2))
