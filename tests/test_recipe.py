"""The Auto recipe: head first, then as deep as the data needs, lower rates deeper, reproducible."""
from dataclasses import asdict

import pytest
import torch

from studio import recipe
from studio.runs import Run
from studio.training import TrainConfig, Trainer

TIMING = ("epoch_seconds", "elapsed_seconds")


def test_depth_follows_how_well_frozen_features_already_work():
    assert recipe.skill(0.5, 2) == 0 and recipe.skill(1.0, 10) == 1
    assert recipe.fine_tune_depth(0.97, 2, 8)[0] == 6          # close to ImageNet: top quarter trains
    assert recipe.fine_tune_depth(0.75, 10, 8)[0] == 4         # skill 0.72: top half
    frozen, words = recipe.fine_tune_depth(0.40, 10, 8)        # skill 0.33: far from ImageNet
    assert frozen == 0 and "far from" in words and "8 of 8" in words
    # the same accuracy means less with fewer classes (chance is higher)
    assert recipe.fine_tune_depth(0.90, 2, 8)[0] < recipe.fine_tune_depth(0.90, 20, 8)[0]


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


def test_auto_trains_the_head_first_then_unfreezes_the_top(small_dataset, tmp_path):
    snapshot, trainer = _run(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", epochs=2, patience=0),
                             tmp_path / "auto")
    history = snapshot["history"]
    assert [h["epoch"] for h in history] == list(range(1, recipe.HEAD_EPOCHS + 3))
    head_stage, fine_stage = history[:recipe.HEAD_EPOCHS], history[recipe.HEAD_EPOCHS:]
    # head epochs train on stored features: far cheaper than an epoch through the network
    assert max(h["epoch_seconds"] for h in head_stage) < min(h["epoch_seconds"] for h in fine_stage) / 5
    freeze = snapshot["freeze"]
    assert 0 < freeze["frozen_groups"] < freeze["total_groups"] and not freeze["feature_extraction"]
    choices = snapshot["config"]["choices"]
    assert "layer groups trained" in choices["depth"] and "Auto" in choices["freeze"]
    groups = trainer._param_groups(1e-3)
    body_rates = [g["lr"] for g in groups[1:]]
    assert groups[0]["lr"] == 1e-3 and body_rates == sorted(body_rates) and body_rates[-1] < 1e-3
    assert len(groups) - 1 == freeze["total_groups"] - freeze["frozen_groups"]


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
