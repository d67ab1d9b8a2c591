"""Optimizer, schedule, freeze schedule and augmentation strength: each choice does what it says."""
import pytest
import torch

from studio import augment, backbones, optim
from studio.runs import Run
from studio.training.config import TrainConfig
from studio.training.trainer import Trainer


def _rates(name: str, steps: int = 100) -> list[float]:
    factor = optim.multiplier(name, steps)
    return [factor(s) for s in range(steps)]


def test_warmup_cosine_rises_then_falls_to_nothing():
    rates = _rates("warmup-cosine")
    assert rates[0] == pytest.approx(0.1) and max(rates) == pytest.approx(1.0)
    assert rates.index(max(rates)) == 9 and rates[-1] < 0.01
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))


def test_one_cycle_starts_low_peaks_at_thirty_percent_and_ends_far_below():
    rates = _rates("one-cycle")
    assert rates[0] == pytest.approx(optim.ONE_CYCLE_START)
    assert rates.index(max(rates)) in (29, 30) and rates[-1] < 1e-3


def test_constant_is_flat():
    assert set(_rates("constant")) == {1.0}


def test_schedule_keeps_the_ratio_between_layer_groups():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = optim.make_optimizer("sgd", [{"params": [params[0]], "lr": 1e-2}, {"params": [params[1]], "lr": 1e-4}],
                               1e-2, 0.0)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    schedule = optim.make_schedule("one-cycle", opt, 50)
    for _ in range(20):
        opt.step()
        schedule.step()
        head, deep = (g["lr"] for g in opt.param_groups)
        assert head / deep == pytest.approx(100)


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="adamw, sgd"):
        TrainConfig(data="x", backbone="mobilenetv2_100", optimizer="adam").resolved()
    with pytest.raises(ValueError, match="one-cycle"):
        TrainConfig(data="x", backbone="mobilenetv2_100", schedule="step").resolved()
    with pytest.raises(ValueError, match="at least 1 in Auto"):
        TrainConfig(data="x", backbone="mobilenetv2_100", head_epochs=0).resolved()


def test_sgd_gets_larger_automatic_rates_and_says_so():
    adamw = TrainConfig(data="x", backbone="mobilenetv2_100", freeze="5").resolved()
    sgd = TrainConfig(data="x", backbone="mobilenetv2_100", freeze="5", optimizer="sgd").resolved()
    assert sgd.lr == pytest.approx(10 * adamw.lr)
    assert "SGD" in sgd.choices["optimizer"] and "cosine" in sgd.choices["optimizer"]


def test_stronger_augmentation_changes_the_photos_more(small_dataset, tmp_path):
    from studio.data.imaging import decode_square
    files = sorted(small_dataset.glob("train/*/*"))[:8]
    batch = torch.stack([torch.from_numpy(decode_square(f, 256)).permute(2, 0, 1) for f in files])
    prep = {"input_size": 224, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    clean = augment.eval_batch(batch, prep)
    change = {}
    for strength in ("light", "strong"):
        config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", augment_strength=strength).resolved()
        trainer = Trainer(config, Run(tmp_path / strength, {}))
        trainer.ctx.prep = prep
        change[strength] = (trainer.ctx.input(batch, augmented=True) - clean).abs().mean().item()
    assert change["strong"] > 1.1 * change["light"], change  # same seed: equal if strength were ignored


@pytest.mark.slow
def test_other_cameras_augmentation_trains_and_says_what_it_does(small_dataset):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="6", epochs=1, batch_size=16,
                         augment_strength="other-cameras").resolved()
    assert config.choices["augment"].startswith("other cameras augmentation (as asked)")
    assert "never mirrored" in config.choices["augment"]
    from studio.training.trainer import start_training
    run = start_training(config)
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert snapshot["history"][-1]["train_loss"] > 0 and "other cameras" in snapshot["config"]["choices"]["augment"]
    assert snapshot["engine"]["train_size"] == 224   # the full size on a CPU too: smaller crops undo these views


def test_other_cameras_fine_tunes_every_layer_at_full_size_unless_told_otherwise(small_dataset, tmp_path):
    from studio.training.finetune import train_size
    asked = dict(data=str(small_dataset), backbone="mobilenetv2_100", augment_strength="other-cameras", device="cpu")
    auto = TrainConfig(**asked).resolved()
    assert (auto.freeze, auto.head_epochs, auto.epochs) == ("0", 0, 8)
    assert "every layer" in auto.choices["freeze"] and "other-cameras" in auto.choices["freeze"]
    assert auto.lr is not None   # a fixed plan, so a fixed rate (Auto's search would have picked one)
    told = TrainConfig(**asked, freeze="6", epochs=3).resolved()
    assert (told.freeze, told.epochs) == ("6", 3)     # a person's own depth and epochs stand
    assert TrainConfig(**asked, epochs=2).resolved().epochs == 2
    usual = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", device="cpu").resolved()
    assert usual.freeze == "auto"
    sizes = {}
    for name, config in (("other-cameras", auto), ("usual", usual)):
        ctx = Trainer(config, Run(tmp_path / name, {})).ctx
        ctx.prep = {"input_size": 224}   # read from the backbone when training starts
        sizes[name] = train_size(ctx)    # a CPU's choice
    assert sizes["other-cameras"] == 224 > sizes["usual"], sizes


@pytest.mark.slow
def test_manual_depth_with_a_freeze_schedule_trains_the_head_alone_first(small_dataset, tmp_path):
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="8", epochs=1, head_epochs=2,
                         batch_size=16, patience=0).resolved()
    run = Run(tmp_path / "run", {})
    trainer = Trainer(config, run)
    trainer.train()
    snapshot = run.snapshot()
    assert [h["epoch"] for h in snapshot["history"]] == [1, 2, 3]
    assert "head alone" in config.choices["head_epochs"]
    # stage 2 unfroze exactly the chosen layers (the best epoch may still be a head-only one)
    groups = backbones.layer_groups(trainer.model)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert not trainable & {n for g in groups[:8] for n in g}
    assert {n for g in groups[8:] for n in g} <= trainable
    assert snapshot["freeze"]["frozen_groups"] == 8
