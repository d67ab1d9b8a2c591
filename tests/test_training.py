"""The trainer on real photos and real weights: it learns, stops, keeps the best, refuses a second run."""
import json
import shutil
from dataclasses import asdict
import time
from pathlib import Path

import pytest
import torch

from studio import backbones, modelfile
from studio.runs import MODEL_FILE, JobRunner
from studio.training.config import TrainConfig
from studio.training.trainer import Trainer, start_training

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


@pytest.mark.slow
def test_feature_extraction_run_learns_and_writes_its_folder(trained_run):
    run_dir = Path(trained_run["run_dir"])
    history = trained_run["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert trained_run["best_val_accuracy"] >= 0.8, history  # zero-shot chance is 0.5
    assert trained_run["classes"] == ["ants", "bees"]
    matrix = trained_run["best_confusion"]
    assert sum(map(sum, matrix)) == 20
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and "confusion_matrix" in json.loads(lines[0])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backbone"] == "mobilenetv2_100" and config["freeze"] == "all"
    # the batch size is decided for the data and written down with the reason
    assert config["batch_size"] == 32 and "32 photos per training step" in config["choices"]["batch_size"]
    # where the time went, phase by phase, adds up to no more than the run's own clock (calibrating and the
    # wrong-folder check come after the last epoch's clock reading, so they are not in it)
    timings = status["timings"]
    after = {"calibrate", "wrong_folder"}
    assert set(timings) == {"read_dataset", "load_backbone", "check_and_decode", "features", "head_epochs", *after}
    assert all(seconds >= 0 for seconds in timings.values())
    before_calibrating = sum(v for k, v in timings.items() if k not in after)
    assert before_calibrating <= history[-1]["elapsed_seconds"] + 1.0  # + the last epoch's saving
    model, meta = modelfile.load(run_dir / MODEL_FILE)
    assert meta["classes"] == ["ants", "bees"] and meta["summary"]["epoch"] == trained_run["best_epoch"]


@pytest.mark.parametrize("batchnorm", ["pretrained", "adapt"])
@pytest.mark.slow
def test_partial_fine_tune_changes_only_unfrozen_layers(small_dataset, tmp_path, batchnorm):
    from studio.runs import Run
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="5", epochs=1,
                         batch_size=16, batchnorm=batchnorm).resolved()
    run = Run(tmp_path / "run", {"epochs": 1})
    trainer = Trainer(config, run)
    trainer.train()
    model = trainer.model
    reference = backbones.create_model("mobilenetv2_100", 2)
    ref_params = dict(reference.named_parameters())
    ref_buffers = dict(reference.named_buffers())
    groups = backbones.layer_groups(model)
    for name, param in model.named_parameters():
        frozen = any(name in g for g in groups[:5])
        same = torch.equal(param.detach().cpu(), ref_params[name].detach())
        assert same == frozen, name
    buffers = dict(model.named_buffers())
    # running statistics of frozen BatchNorm layers are untouched either way
    buffers = {name: buffer.cpu() for name, buffer in buffers.items()}   # trained on the GPU where there is one
    assert torch.equal(buffers["bn1.running_mean"], ref_buffers["bn1.running_mean"])
    # trainable layers keep ImageNet statistics unless told to adapt them
    adapted = not torch.equal(buffers["blocks.6.0.bn1.running_mean"], ref_buffers["blocks.6.0.bn1.running_mean"])
    assert adapted == (batchnorm == "adapt")
    assert run.snapshot()["history"][0]["val_accuracy"] > 0


@pytest.mark.slow
def test_stop_keeps_finished_epochs_and_a_second_start_waits(small_dataset):
    run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="4",
                                     epochs=30, batch_size=8), runner=RUNNER)
    second = start_training(TrainConfig(data=str(small_dataset)), runner=RUNNER)
    assert second.status == "queued" and second.snapshot()["queue"]["place"] == 1
    assert RUNNER.stop(second) and second.status == "stopped"   # out of the queue; it never trained
    deadline = time.time() + 120
    while not run.snapshot()["history"] and time.time() < deadline:
        time.sleep(0.2)
    RUNNER.stop(run)
    RUNNER.wait(120)
    snapshot = run.snapshot()
    assert snapshot["status"] == "stopped"
    assert 1 <= len(snapshot["history"]) < 30
    lines = (run.dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(snapshot["history"])
    assert (run.dir / MODEL_FILE).is_file() and not list(run.dir.glob("*.partial"))


@pytest.mark.slow
def test_undecodable_image_is_skipped_and_listed(small_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_dataset, data)
    bad = data / "train" / "ants" / "looks_fine.jpg"
    good = next((data / "train" / "bees").iterdir()).read_bytes()
    bad.write_bytes(good[:400])  # a truncated JPEG: header reads, pixels do not
    run = start_training(TrainConfig(data=str(data), backbone="mobilenetv2_100", epochs=1, feature_views=1),
                         runner=RUNNER)
    RUNNER.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    skipped = {Path(s["path"]).name: s["reason"] for s in snapshot["dataset"]["skipped"]}
    assert "looks_fine.jpg" in skipped
    used = (run.dir / "samples.csv").read_text()
    assert "looks_fine.jpg" not in used


def test_bad_data_fails_the_run_with_a_message(tmp_path):
    (tmp_path / "only").mkdir()
    run = start_training(TrainConfig(data=str(tmp_path), backbone="mobilenetv2_100", epochs=1), runner=RUNNER)
    RUNNER.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "failed" and "No usable images" in snapshot["error"]
    assert "Traceback" not in snapshot["error"]


@pytest.mark.slow
def test_same_seed_same_result_on_cpu(small_dataset, tmp_path):
    from studio.runs import Run
    results = []
    for i in range(2):
        config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", epochs=2,
                             feature_views=2, seed=7).resolved()
        run = Run(tmp_path / f"r{i}", {"epochs": 2})
        Trainer(config, run).train()
        results.append([h["val_loss"] for h in run.snapshot()["history"]])
    assert results[0] == results[1]


@pytest.mark.parametrize("freeze", ["all", "3"])
@pytest.mark.slow
def test_streaming_from_disk_gives_the_same_model_as_the_memory_cache(small_dataset, tmp_path, freeze):
    """A dataset too big for the memory budget streams from disk: same batches, same seed, same model."""
    from studio.runs import Run
    outcomes = {}
    for budget_mb in (None, 0):
        config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze=freeze, epochs=2,
                             feature_views=2, batch_size=16, memory_budget_mb=budget_mb).resolved()
        run = Run(tmp_path / f"budget-{budget_mb}", {})
        trainer = Trainer(config, run)
        trainer.train()
        snapshot = run.snapshot()
        cached = "cached on the GPU" if trainer.ctx.device.type == "cuda" else "cached in memory"
        assert snapshot["engine"]["pixels"] == ("streamed from disk" if budget_mb == 0 else cached)
        timing = ("epoch_seconds", "elapsed_seconds")
        history = [{k: v for k, v in h.items() if k not in timing} for h in snapshot["history"]]
        outcomes[budget_mb] = (history, trainer.model.state_dict())
    (cached_history, cached_state), (streamed_history, streamed_state) = outcomes[None], outcomes[0]
    assert streamed_history == cached_history
    assert all(torch.equal(cached_state[k], streamed_state[k]) for k in cached_state)


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch_and_says_why(small_dataset, tmp_path):
    from studio.runs import Run
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=60,
                         feature_views=1, patience=2).resolved()
    run = Run(tmp_path / "run", {"epochs": 60})
    trainer = Trainer(config, run)
    trainer.train()
    snapshot = run.snapshot()
    history = snapshot["history"]
    assert len(history) < 60 and "Stopped early" in snapshot["stopped_early"]
    assert len(history) - snapshot["best_epoch"] == 2  # exactly `patience` epochs without a better result
    saved, meta = modelfile.load(run.dir / MODEL_FILE)
    assert meta["summary"]["epoch"] == snapshot["best_epoch"]
    saved_state = saved.state_dict()
    assert all(torch.equal(v.cpu(), saved_state[k]) for k, v in trainer.model.state_dict().items())

    no_stop = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=len(history) + 2,
                          feature_views=1, patience=0).resolved()
    run = Run(tmp_path / "run2", {})
    Trainer(no_stop, run).train()
    assert len(run.snapshot()["history"]) == len(history) + 2 and not run.snapshot().get("stopped_early")


@pytest.mark.slow
def test_imbalanced_classes_get_a_weighted_loss(tmp_path):
    from helpers import example_files
    from studio.runs import Run
    from studio.training.context import class_weights
    assert torch.allclose(class_weights(torch.tensor([0] * 30 + [1] * 10), 2), torch.tensor([2 / 3, 2.0]))
    for split, counts in (("train", {"ants": 24, "bees": 6}), ("val", {"ants": 5, "bees": 5})):
        for label, count in counts.items():
            (tmp_path / "data" / split / label).mkdir(parents=True)
            for file in example_files(split, label, count):
                shutil.copyfile(file, tmp_path / "data" / split / label / file.name)
    chosen = {}
    for mode in ("auto", "off"):
        config = TrainConfig(data=str(tmp_path / "data"), backbone="mobilenetv2_100", epochs=1, feature_views=1,
                             class_weighting=mode).resolved()
        run = Run(tmp_path / mode, asdict(config))
        trainer = Trainer(config, run)
        trainer.train()
        chosen[mode] = (run.snapshot()["config"]["choices"].get("class_weighting"), trainer.ctx.loss_weights)
        assert json.loads((run.dir / "config.json").read_text())["choices"].get("class_weighting") == chosen[mode][0]
    assert "4.0x" in chosen["auto"][0] and torch.allclose(chosen["auto"][1].cpu(), torch.tensor([0.625, 2.5]))
    assert chosen["off"] == (None, None)


def test_overfitting_is_put_in_plain_words(small_dataset, tmp_path):
    from studio.runs import Run
    from studio.training.best import overfitting_advice
    run = Run(tmp_path / "run", {})
    run.record_epoch({"epoch": 1, "train_accuracy": 0.80, "val_accuracy": 0.78, "val_loss": 0.50}, [], [])
    assert overfitting_advice(run.snapshot()["history"]) is None
    run.record_epoch({"epoch": 2, "train_accuracy": 0.99, "val_accuracy": 0.80, "val_loss": 0.45}, [], [])
    assert overfitting_advice(run.snapshot()["history"]) is None  # a gap, but validation still improves
    run.record_epoch({"epoch": 3, "train_accuracy": 1.00, "val_accuracy": 0.79, "val_loss": 0.60}, [], [])
    advice = overfitting_advice(run.snapshot()["history"])
    assert "memorise" in advice and "100%" in advice and "79%" in advice


@pytest.mark.slow
def test_frozen_backbone_runs_as_one_traced_graph_on_cpu_with_the_same_features(small_dataset, tmp_path):
    from studio import augment
    from studio.data.pixels import decode_all
    from studio.runs import Run
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=1,
                         feature_views=1, device="cpu").resolved()   # the graph is the CPU's fast path
    trainer = Trainer(config, Run(tmp_path / "run", {}))
    trainer.train()
    assert isinstance(trainer.ctx.features.forward, torch.jit.ScriptModule)
    files = sorted(str(p) for p in small_dataset.rglob("*.jpg"))[:8]
    pixels, _ = decode_all(files, 256)
    x = augment.eval_batch(pixels, trainer.prep).contiguous(memory_format=torch.channels_last)
    reference = backbones.create_model("mobilenetv2_100", 2).eval().to(memory_format=torch.channels_last)
    with torch.inference_mode(), trainer.ctx.autocast():
        traced = trainer.ctx.features.forward(x).float()
        eager = reference.forward_head(reference.forward_features(x), pre_logits=True).float()
    assert torch.nn.functional.cosine_similarity(traced, eager).min() > 0.99
