"""The Auto recipe: head first, then as deep as the data needs, lower rates deeper, reproducible."""
import json
import math
from dataclasses import asdict

import pytest
import torch

from studio import recipe
from studio.runs import JobRunner, Run
from studio.training.config import TrainConfig
from studio.training.finetune import param_groups
from studio.training.trainer import Trainer

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio

TIMING = ("epoch_seconds", "elapsed_seconds")


def test_depth_follows_how_well_frozen_features_already_work():
    assert recipe.skill(0.5, 2) == 0 and recipe.skill(1.0, 10) == 1
    assert recipe.fine_tune_depth(0.97, 2, 8)[0] == 6          # close to ImageNet: top quarter trains
    assert recipe.fine_tune_depth(0.75, 10, 8)[0] == 4         # skill 0.72: top half
    frozen, words = recipe.fine_tune_depth(0.40, 10, 8)        # skill 0.33: far from ImageNet
    assert frozen == 0 and "far from" in words and "8 of 8" in words
    # the same accuracy means less with fewer classes (chance is higher)
    assert recipe.fine_tune_depth(0.90, 2, 8)[0] < recipe.fine_tune_depth(0.90, 20, 8)[0]


def test_batch_grows_with_the_data_on_a_gpu_only():
    assert recipe.batch_size(245, gpu=False)[0] == 32 and recipe.batch_size(100_000, gpu=False)[0] == 32
    assert recipe.batch_size(245, gpu=True)[0] == 32       # hymenoptera: 7 steps of 32 already
    assert recipe.batch_size(4_800, gpu=True)[0] == 128    # 37 steps of 128; 256 would give 18
    assert recipe.batch_size(100_000, gpu=True)[0] == recipe.GPU_MAX_BATCH
    for images in (10, 245, 2_047, 2_048, 4_800, 9_000, 100_000):
        size, words = recipe.batch_size(images, gpu=True)
        assert size == 32 or images // size >= recipe.MIN_STEPS_PER_EPOCH
        assert size == recipe.GPU_MAX_BATCH or size == 32 or images // (size * 2) < recipe.MIN_STEPS_PER_EPOCH
        assert str(size) in words


def test_deeper_groups_learn_slower():
    rates = recipe.group_learning_rates(1e-3, 4)
    assert rates == sorted(rates) and len(set(rates)) == 4
    assert rates[-1] == pytest.approx(1e-3 * recipe.BODY_LR_FACTOR)
    assert rates[0] == pytest.approx(rates[-1] * recipe.DEEPEST_LR_FACTOR)
    assert recipe.fine_tune_epochs(245)[0] == 8 and recipe.fine_tune_epochs(20_000)[0] == 3
    assert recipe.fine_tune_lr(245)[0] == recipe.GENTLE_LR < recipe.fine_tune_lr(5000)[0] == recipe.BOLD_LR


def _run(config: TrainConfig, folder) -> tuple[dict, Trainer]:
    resolved = config.resolved()
    run = Run(folder, asdict(resolved))
    trainer = Trainer(resolved, run)
    trainer.train()
    return run.snapshot(), trainer


@pytest.mark.slow
def test_auto_trains_the_head_first_then_the_plan_the_search_chose(small_dataset, tmp_path):
    from studio import faults
    network_steps = []  # training steps through the network (the head stage trains on stored features)
    faults.set_hook("train_step", lambda batch_size: network_steps.append(batch_size))
    try:
        snapshot, trainer = _run(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", epochs=2,
                                             patience=0), tmp_path / "auto")
    finally:
        faults.set_hook("train_step", None)
    history = snapshot["history"]
    assert [h["epoch"] for h in history] == list(range(1, recipe.HEAD_EPOCHS + 3))
    # 48 training photos in whole batches of 32: none in the 5 head epochs, then the search's tries of
    # each plan, then one step per fine-tuning epoch
    tries = sum(plan["steps"] for plan in snapshot["search"]["plans"])
    assert tries > 0 and network_steps == [32] * (tries + 2)
    freeze = snapshot["freeze"]
    assert freeze["frozen_groups"] < freeze["total_groups"] and not freeze["feature_extraction"]
    choices = snapshot["config"]["choices"]
    assert "layer groups trained" in choices["depth"] and "Auto" in choices["freeze"]
    groups = param_groups(trainer.model, 1e-3)
    body_rates = [g["lr"] for g in groups[1:]]
    assert groups[0]["lr"] == 1e-3 and body_rates == sorted(body_rates) and body_rates[-1] < 1e-3
    assert len(groups) - 1 == freeze["total_groups"] - freeze["frozen_groups"]


@pytest.mark.slow
def test_same_config_same_machine_same_result(small_dataset, tmp_path):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="6", epochs=2, seed=7)
    outcomes = []
    for name in ("first", "second"):
        snapshot, trainer = _run(config, tmp_path / name)
        outcomes.append(([{k: v for k, v in h.items() if k not in TIMING} for h in snapshot["history"]],
                         trainer.model.state_dict()))
    assert outcomes[0][0] == outcomes[1][0]
    assert all(torch.equal(v, outcomes[1][1][k]) for k, v in outcomes[0][1].items())
    other, _ = _run(TrainConfig(**{**asdict(config), "seed": 8}), tmp_path / "other-seed")
    assert [h["train_loss"] for h in other["history"]] != [h["train_loss"] for h in outcomes[0][0]]


def test_learning_rate_range_test_finds_the_valley():
    from studio.lr_finder import suggestion, sweep
    # a loss that is best at 1e-2 and explodes above: the sweep stops early and suggests a tenth of 1e-2
    curve = sweep(lambda lr: (math.log10(lr) + 2) ** 2 + 1, 1e-6, 1e2, 80)
    assert len(curve) < 80 and suggestion(curve) == pytest.approx(1e-3, rel=0.6)


@pytest.mark.slow
def test_suggest_a_learning_rate_on_real_photos(small_dataset, capsys):
    from components import train_step
    from studio.cli import main
    out = train_step.suggest_lr(str(small_dataset), "mobilenetv2_100", "auto", 8, runner=RUNNER)
    dropdown, words = out["lr"], out["suggestion"]
    suggested = float(dropdown.value)
    assert 1e-5 < suggested < 1 and "Suggested learning rate" in words
    assert main(["lr-find", str(small_dataset), "--backbone", "mobilenetv2_100", "--freeze", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    losses = [loss for _, loss in result["curve"]]
    assert min(losses) < losses[0] - 0.05  # the head learned something as the rate grew
    assert result["lr"] == pytest.approx(suggested, rel=0.01)  # same data, same seed, same suggestion (2 digits shown)
