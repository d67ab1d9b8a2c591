"""A person's own pretrained weights (issue 17): checked when added, refused with words when broken, then
a backbone like the packaged ones: in the catalog, ranked by the advisor, trained, saved under its
architecture so the model loads without the studio's registry.

The weights are real: the packaged EfficientNet-Lite0 ImageNet tensors, saved the ways people save them
(a training checkpoint, a timm / Hub folder), and damaged the ways files get damaged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from studio import backbones, own_weights
from studio.own_weights import OwnWeightsError

ARCH = "tf_efficientnet_lite0"


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """A workspace of its own, so the weights added here stay out of every other test's catalog."""
    from studio import paths
    packaged = backbones.converted_weights(backbones.lookup(ARCH))   # the shared workspace's conversion
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    backbones.freeze_choices.cache_clear()
    yield {"tensors": load_file(str(packaged)), "weights_dir": paths.weights_dir()}
    backbones.freeze_choices.cache_clear()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_training_checkpoint_is_recognised_checked_and_listed(workspace, tmp_path, capsys):
    checkpoint = tmp_path / "clinic_run.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in workspace["tensors"].items()}, "epoch": 30}, checkpoint)
    before = digest(checkpoint)
    from studio.cli import main
    assert main(["backbones", "--add", str(checkpoint)]) == 0
    assert "Added own:clinic_run: tf_efficientnet_lite0" in capsys.readouterr().out
    assert digest(checkpoint) == before   # the person's file is read, never changed

    entry = own_weights.entry("own:clinic_run")
    assert entry["architecture"] == ARCH and entry["dropped"] == ["classifier.bias", "classifier.weight"]
    row = next(r for r in backbones.catalog() if r["name"] == "own:clinic_run")
    assert row["status"] == backbones.OFFLINE and "your own weights" in row["availability"]
    from studio.models.advisor import usable
    assert "own:clinic_run" in usable()
    assert backbones.freeze_choices("own:clinic_run")["total_groups"] == backbones.freeze_choices(ARCH)["total_groups"]

    model = backbones.create_model("own:clinic_run", num_classes=3)
    state = model.state_dict()
    body = [k for k in workspace["tensors"] if not k.startswith("classifier.")]
    assert all(torch.equal(state[k], workspace["tensors"][k]) for k in body)
    assert model.get_classifier().out_features == 3 and not model.get_classifier().weight.any()


def test_a_hub_folder_brings_its_preprocessing(workspace, tmp_path):
    folder = tmp_path / "hub-save"
    folder.mkdir()
    save_file(workspace["tensors"], str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architecture": ARCH, "num_classes": 1000,
        "pretrained_cfg": {"input_size": [3, 192, 192], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                           "crop_pct": 1.0}}))
    added = own_weights.add(folder, title="x-ray lab")
    assert added["name"] == "own:x-ray-lab"
    prep = backbones.preprocessing(backbones.create_model(added["name"], num_classes=2))
    assert prep["input_size"] == 192 and prep["mean"] == [0.5, 0.5, 0.5] and prep["std"] == [0.25, 0.25, 0.25]


def broken_files(tensors: dict, folder: Path) -> dict[str, tuple[Path, str | None]]:
    """{case: (path, architecture to give)} for the ways a weights file goes wrong."""
    good = folder / "good.safetensors"
    save_file(tensors, str(good))
    cut = folder / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:4096])    # a download that stopped
    nan = folder / "nan.safetensors"
    save_file({k: (v.clone().fill_(float("nan")) if k == "conv_stem.weight" else v) for k, v in tensors.items()},
              str(nan))
    missing = folder / "missing.safetensors"
    save_file({k: v for k, v in tensors.items() if not k.startswith("blocks.6")}, str(missing))
    text = folder / "notes.pth"
    text.write_text("these are not weights")
    whole = folder / "whole_model.pth"
    torch.save([1, 2, 3], whole)
    transformers = folder / "transformers-save"
    transformers.mkdir()
    save_file(tensors, str(transformers / "model.safetensors"))
    (transformers / "config.json").write_text(json.dumps({"architectures": ["ResNetForImageClassification"]}))
    return {"a cut-off download": (cut, None), "NaN weights": (nan, ARCH),
            "another network's weights": (good, "resnet18"), "tensors missing": (missing, ARCH),
            "a text file": (text, None), "a pickled list": (whole, None),
            "a transformers folder": (transformers, None), "an unknown architecture": (good, "no_such_net")}


@pytest.mark.parametrize("case, words", [
    ("a cut-off download", "damaged"), ("NaN weights", "NaN"), ("another network's weights", "is not a resnet18"),
    ("tensors missing", "missing"), ("a text file", "could not be read"), ("a pickled list", "no state dict"),
    ("a transformers folder", "transformers"), ("an unknown architecture", "not an architecture timm knows")])
def test_broken_weights_are_refused_with_words_and_nothing_is_kept(workspace, tmp_path, case, words):
    path, architecture = broken_files(workspace["tensors"], tmp_path)[case]
    with pytest.raises(OwnWeightsError, match=words):
        own_weights.add(path, architecture)
    assert own_weights.entries() == [] and not any(n.startswith("own:") for n in
                                                   (r["name"] for r in backbones.catalog()))


def test_the_cli_refuses_a_broken_file_in_one_line(workspace, tmp_path, capsys):
    path, _ = broken_files(workspace["tensors"], tmp_path)["a cut-off download"]
    from studio.cli import main
    assert main(["backbones", "--add", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("studio: error: cut.safetensors could not be read") and "Traceback" not in err
    assert main(["backbones", "--architecture", ARCH]) != 0   # --architecture without --add


def test_the_model_step_adds_uploaded_weights_and_chooses_them(workspace, tmp_path):
    from components import model_step
    folder = tmp_path / "upload"
    folder.mkdir()
    save_file(workspace["tensors"], str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": ARCH}))
    shown = model_step.add_own_weights([str(folder / "config.json"), str(folder / "model.safetensors")], "", "lab")
    assert shown["backbone"].value == "own:lab" and "Added own:lab" in shown["own_status"]
    assert "own:lab" in [value for _, value in model_step.backbone_choices()]
    refused = model_step.add_own_weights([str(broken_files(workspace["tensors"], tmp_path)["a text file"][0])])
    assert refused["own_status"].startswith("**Not added.**") and "could not be read" in refused["own_status"]
    assert "Choose a weights file first" in model_step.add_own_weights(None)["own_status"]


@pytest.mark.slow
def test_own_weights_train_rank_and_save_under_their_architecture(workspace, tmp_path, small_dataset):
    checkpoint = tmp_path / "lite0.pth"
    torch.save(workspace["tensors"], checkpoint)
    name = own_weights.add(checkpoint, title="plant-lab")["name"]
    from studio.models.advisor import advise, usable
    ranking = advise(str(small_dataset))["ranking"]
    assert sorted(r["backbone"] for r in ranking) == sorted(usable()) and name in usable()

    from studio import modelfile
    from studio.runs import JobRunner
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training
    run = start_training(TrainConfig(data=str(small_dataset), backbone=name, freeze="all", epochs=2,
                                     runs_root=str(tmp_path / "runs")), runner=JobRunner())
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    meta = modelfile.read_metadata(snapshot["model_path"])
    assert meta["backbone"] == ARCH and meta["summary"]["pretrained_weights"] == name
    (tmp_path / "home" / "weights" / "own" / "plant-lab.safetensors").unlink()   # the registry is gone ...
    model, _ = modelfile.load(snapshot["model_path"])                             # ... the model still loads
    assert model.get_classifier().out_features == 2
    from studio.export.modelcard import _model_section
    assert "own pretrained weights (`own:plant-lab`)" in "\n".join(_model_section(meta, meta["summary"]))
