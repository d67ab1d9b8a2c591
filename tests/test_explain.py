"""Where the model looked (Grad-CAM, the grad-cam package) on real photos and real weights: the layer is found
from each model, the heatmap is of the class asked about, and `studio explain` writes one picture per photo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from helpers import example_files
from studio import backbones
from studio.explain import Explainer, target_layer
from studio.inference import Predictor

OFFLINE = [b.name for b in backbones.CATALOG if b.package]


@pytest.mark.parametrize("name", OFFLINE + ["vit_small_patch16_224"])
def test_every_packaged_backbone_and_a_transformer_get_a_heatmap(name):
    """The four offline backbones (their real weights) and a ViT (patch tokens laid back on their grid)."""
    if name in OFFLINE:
        model = backbones.create_model(name, num_classes=3)
    else:
        model = timm.create_model(name, pretrained=False, num_classes=3)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.05, generator=torch.Generator().manual_seed(0))
    prep = backbones.preprocessing(model)   # (a new head starts at zero, and a zero head looks nowhere)
    layer, reshape = target_layer(model, prep["input_size"])
    assert (reshape is None) == (name in OFFLINE)   # convolutional: a spatial map; the ViT: its tokens
    assert not any(layer is m for m in model.get_classifier().modules())
    found = Explainer(model, ["a", "b", "c"], prep).explain(example_files("val", "bees", 1)[0])
    size = prep["input_size"]
    assert found.heat.shape == (size, size) and found.overlay.size == (size, size)
    assert 0 <= found.heat.min() and found.heat.max() <= 1 and found.heat.std() > 0   # a map, not a flat field


@pytest.mark.slow
def test_the_heatmap_follows_the_bee_and_is_of_the_class_asked(trained_run, tmp_path):
    """A bee photo pasted into the left half of a grey picture: looking for a bee, the model looks left."""
    predictor = Predictor(Path(trained_run["run_dir"]) / "model.safetensors")
    explainer = Explainer.of(predictor)
    left = []
    for photo in example_files("val", "bees", 6):
        canvas = Image.new("RGB", (448, 224), (128, 128, 128))
        canvas.paste(Image.open(photo).convert("RGB").resize((224, 224)), (0, 0))
        found = explainer.explain(canvas, "bees")
        heat = found.heat
        left.append(heat[:, :heat.shape[1] // 2].sum() / heat.sum())
        assert found.class_name == "bees" and 0 < found.probability <= 1
    assert np.median(left) > 0.6, left
    # asked for the other class, the map changes
    other = explainer.explain(example_files("val", "bees", 1)[0], "ants")
    same = explainer.explain(example_files("val", "bees", 1)[0], "bees")
    assert other.class_name == "ants" and not np.allclose(other.heat, same.heat)
    # the Predictor's own model is untouched (the explainer hooks a copy)
    assert predictor.model is not explainer.model


@pytest.mark.slow
def test_studio_explain_writes_a_heatmap_per_photo_and_names_what_it_cannot_read(trained_run, tmp_path):
    photos = example_files("val", "bees", 2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    out = subprocess.run([sys.executable, "-m", "studio", "explain", trained_run["run_dir"], *map(str, photos),
                          str(broken), "--out", str(tmp_path / "heat"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr            # one photo could not be read: said, the others done
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(line["path"]).name for line in lines] == [p.name for p in photos]
    for line in lines:
        assert Path(line["heatmap"]).is_file() and line["class"] in ("ants", "bees")
        assert Image.open(line["heatmap"]).size == (224, 224)
    assert "broken.jpg" in out.stderr
    refused = subprocess.run([sys.executable, "-m", "studio", "explain", trained_run["run_dir"], str(photos[0]),
                              "--out", str(tmp_path / "x"), "--class", "wasps"], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "'wasps' is not one of the model's classes" in refused.stderr


@pytest.mark.slow
def test_try_it_shows_where_the_model_looked(trained_run):
    from components import try_step
    from studio.runs import JobRunner

    bee = Image.open(example_files("val", "bees", 1)[0])
    out = try_step.where_it_looked(bee, trained_run["run_dir"], runner=JobRunner())
    assert out["heatmap"] is not None and out["heatmap"].size == (224, 224)
    assert "Where the model looked to answer" in out["heatmap_note"]
    assert try_step.where_it_looked(None, trained_run["run_dir"], runner=JobRunner())["heatmap"] is None


def test_an_exported_onnx_file_cannot_be_explained_and_says_what_can():
    from studio.explain import ExplainError

    with pytest.raises(ExplainError, match="model.safetensors"):
        Explainer(object(), ["a"], {"input_size": 224})


@pytest.mark.slow
def test_the_photos_behind_a_cell_and_the_sure_mistakes_show_where_the_model_looked(trained_run):
    from components import evaluation_view

    run = trained_run["run_dir"]
    plain = evaluation_view.cell_photos(run, "bees", "bees")["cell_gallery"]
    looked = evaluation_view.cell_photos(run, "bees", "bees", looked=True)["cell_gallery"]
    assert len(looked) == len(plain) > 0 and [c for _, c in looked] == [c for _, c in plain]
    assert all(f.endswith("-looked.jpg") for f, _ in looked) and not any(f.endswith("-looked.jpg") for f, _ in plain)
    assert Image.open(looked[0][0]).size[0] <= evaluation_view.THUMBNAIL
    mistakes = evaluation_view.confident_mistakes(run, looked=True)["mistakes"]
    assert all(f.endswith("-looked.jpg") for f, _ in mistakes)
