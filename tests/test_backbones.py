"""The packaged weights are real ImageNet weights, and freeze depth does what it says."""
import pytest
import torch

from helpers import example_files
from studio import backbones
from studio.inference import Predictor  # noqa: F401  (import check: engine loads without Gradio)

ANT, BEE = 310, 309  # ImageNet-1k class indices
PACKAGED = [b.name for b in backbones.CATALOG if b.package]


def test_catalog_marks_packaged_backbones_offline():
    rows = {r["name"]: r for r in backbones.catalog()}
    for name in PACKAGED:
        assert rows[name]["status"] == backbones.OFFLINE, rows[name]
    assert backbones.default_backbone() in PACKAGED


@pytest.mark.parametrize("name", PACKAGED)
@pytest.mark.slow
def test_packaged_weights_are_really_pretrained(name):
    """Zero-shot: with its ImageNet head, the backbone calls ants 'ant' and bees 'bee'.

    Random weights would score about 0 of 12 on each (1000 classes); the published
    numbers for these weights are 75-95% on this data.
    """
    from studio.augment import eval_batch
    from studio.data.imaging import decode_square
    from studio.data.pixels import cache_side

    model = backbones.create_model(name, num_classes=1000).eval()
    prep = backbones.preprocessing(model)
    hits = {}
    for label, index in (("ants", ANT), ("bees", BEE)):
        files = example_files("val", label, 12)
        batch = torch.stack([torch.from_numpy(decode_square(f, cache_side(prep))).permute(2, 0, 1) for f in files])
        with torch.no_grad():
            predicted = model(eval_batch(batch, prep)).argmax(1)
        hits[label] = int((predicted == index).sum())
    assert hits["ants"] >= 7 and hits["bees"] >= 7, hits


def test_new_head_starts_at_zero_and_matches_class_count():
    model = backbones.create_model("mobilenetv2_100", num_classes=3)
    head = model.get_classifier()
    assert head.out_features == 3
    assert torch.count_nonzero(head.weight) == 0


def test_freeze_depth_counts_and_grads():
    model = backbones.create_model("mobilenetv2_100", num_classes=2)
    total = len(backbones.layer_groups(model))
    everything = backbones.apply_freeze(model, 0)
    assert everything["trainable_params"] == everything["total_params"]
    head_only = backbones.apply_freeze(model, "all")
    head_params = sum(p.numel() for p in model.get_classifier().parameters())
    assert head_only["trainable_params"] == head_params and head_only["feature_extraction"]
    previous = everything["trainable_params"]
    for depth in range(1, total + 1):
        info = backbones.apply_freeze(model, depth)
        assert info["trainable_params"] < previous
        previous = info["trainable_params"]
    backbones.apply_freeze(model, 2)
    first_group = backbones.layer_groups(model)[0]
    params = dict(model.named_parameters())
    assert not any(params[n].requires_grad for n in first_group)
    assert all(p.requires_grad for p in model.get_classifier().parameters())
    choices = backbones.freeze_choices("mobilenetv2_100")
    assert choices["total_groups"] == total
    assert choices["trainable_params"][2] == backbones.apply_freeze(model, 2)["trainable_params"]


def test_frozen_batchnorm_stays_in_eval_mode_when_trainable_ones_adapt():
    model = backbones.create_model("mobilenetv2_100", num_classes=2)
    backbones.apply_freeze(model, 3)
    model.train()
    backbones.keep_norms_in_eval(model, frozen_only=True)
    frozen = set(backbones.layer_groups(model)[0])
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            weight_frozen = f"{name}.weight" in frozen
            if weight_frozen:
                assert not module.training, name
    assert any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_by_default_every_batchnorm_keeps_its_pretrained_statistics():
    model = backbones.create_model("mobilenetv2_100", num_classes=2)
    backbones.apply_freeze(model, 0)
    model.train()
    backbones.keep_norms_in_eval(model)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert any(p.requires_grad for m in norms for p in m.parameters())  # still trained, statistics fixed


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(backbones.BackboneError, match="not a model timm knows"):
        backbones.create_model("no_such_net_v9", num_classes=2)
    status, message = backbones.availability("no_such_net_v9")
    assert status == backbones.MISSING


def test_a_damaged_weights_cache_is_made_again_from_the_package():
    """A crash or a full disk can leave the converted-weights cache unreadable: the next run must
    not fail on it."""
    from studio import paths
    backbones.create_model("mobilenetv2_100", 2)
    cache = paths.weights_dir() / "mobilenetv2_100.safetensors"
    good = cache.read_bytes()
    cache.write_bytes(b"\x00" * 8 + b"not a header")
    try:
        model = backbones.create_model("mobilenetv2_100", 2)
        assert cache.read_bytes() == good  # converted again, byte for byte the same
        reference = backbones.create_model("mobilenetv2_100", 2)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    finally:
        cache.write_bytes(good)
