"""Adapting a model to a new site from unlabeled photos (issue 18, part 2), on a real trained run and
real photos: colour-inverted, turned copies of the example photos stand in for the new site."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import WORKSPACE, shifted_copies
from studio import load
from studio.adapt import AdaptError, start_adaptation
from studio.adapt.selftrain import Schedule
from studio.runs import JobRunner

QUICK = Schedule(shares=(0.3, 0.6), epochs_per_round=1)   # two short rounds: the whole path, in seconds


def _studio(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, timeout=600)


def test_adapt_writes_a_run_that_predict_and_the_api_take(trained_run, small_dataset, tmp_path):
    source = Path(trained_run["run_dir"])
    source_model = (source / "model.safetensors").read_bytes()
    new_site = shifted_copies(small_dataset)
    out = tmp_path / "adapted"
    done = _studio("adapt", str(source), str(new_site), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "finished" and not report["refused"], report
    assert report["photos_found"] == report["photos_used"] == 20
    assert 0 < report["pseudo_labelled"] <= 20
    assert report["val_accuracy_after"] >= report["val_accuracy_before"] - report["allowed_drop"]
    assert isinstance(report["shift_before"], float) and isinstance(report["shift_after"], float)
    assert "Adapted on 20 new photos" in report["words"]
    # a run folder like any other: predict takes its model, the API loads it with what adapting did
    assert {"model.safetensors", "familiarity.safetensors", "samples.csv", "status.json", "config.json",
            "adaptation.csv"} <= {p.name for p in out.iterdir()}
    with open(out / "adaptation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {r["answer"] for r in rows} <= {"ants", "bees"}
    predicted = _studio("predict", str(out / "model.safetensors"), rows[0]["path"], "--json")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["predictions"], predicted.stderr
    adapted = load(out)
    assert adapted.adaptation["photos_used"] == 20 and adapted.accuracy == report["val_accuracy_after"]
    assert json.loads((out / "config.json").read_text())["adapted_from"] == str(source)
    assert (source / "model.safetensors").read_bytes() == source_model, "the original run was changed"


def test_photos_of_one_class_only_are_refused_for_their_class_mix(trained_run, small_dataset, tmp_path):
    """Every ant photo and no bee: self-training would push bees' look into ants, so it says no."""
    only_ants = tmp_path / "only-ants"
    only_ants.mkdir()
    for path in sorted(small_dataset.rglob("ants/*.jpg")):
        shutil.copyfile(path, only_ants / f"{path.parent.parent.name}-{path.name}")
    out = tmp_path / "refused"
    done = _studio("adapt", trained_run["run_dir"], str(only_ants), "--out", str(out))
    assert done.returncode == 1
    assert "very different mix of classes" in done.stderr and "bees" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "model.safetensors").exists()


def test_an_adaptation_that_hurts_the_validation_photos_is_refused(trained_run, small_dataset):
    """A learning rate far too high wrecks the model: the validation check catches it and keeps no model."""
    run = start_adaptation(trained_run["run_dir"], [shifted_copies(small_dataset)], runner=JobRunner(),
                           out=WORKSPACE / "wrecked", schedule=Schedule(shares=(1.0,), epochs_per_round=3, lr=3.0))
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "failed"
    assert snapshot["adaptation"]["refused"] and "Adapting was refused" in snapshot["error"]
    assert not (WORKSPACE / "wrecked" / "model.safetensors").exists()


def test_what_cannot_be_adapted_says_so_at_once(trained_run, small_dataset, tmp_path):
    runner = JobRunner()
    with pytest.raises(AdaptError, match="original run stays"):
        start_adaptation(trained_run["run_dir"], [small_dataset / "val"], runner=runner, out=trained_run["run_dir"])
    with pytest.raises(AdaptError, match="No photos were found"):
        start_adaptation(trained_run["run_dir"], [tmp_path], runner=runner)
    with pytest.raises(AdaptError, match="no trained model"):
        start_adaptation(tmp_path, [small_dataset / "val"], runner=runner)
    few = tmp_path / "few"
    few.mkdir()
    for path in sorted((small_dataset / "val").rglob("*.jpg"))[:5]:
        shutil.copyfile(path, few / path.name)
    run = start_adaptation(trained_run["run_dir"], [few], runner=runner, out=tmp_path / "few-run", schedule=QUICK)
    run.wait()
    assert run.snapshot()["status"] == "failed" and "at least 20" in run.snapshot()["error"]


def test_the_api_adapts_and_returns_the_new_model(trained_run, small_dataset, tmp_path):
    model = load(trained_run["run_dir"])
    adapted = model.adapt(shifted_copies(small_dataset), out=tmp_path / "api-adapted")
    assert adapted.run_dir == tmp_path / "api-adapted" and adapted.adaptation["pseudo_labelled"] > 0
    assert adapted.predict(sorted((small_dataset / "val").rglob("*.jpg"))[0])[0].top


def test_labelled_new_site_photos_decide_and_are_never_trained_on(trained_run, small_dataset, tmp_path):
    """--check-with: a few labelled photos from the new site (inverted training photos, by class). The
    adapted model is kept only if it does at least as well on them; they are left out of the new photos."""
    from PIL import Image, ImageOps
    new_site = shifted_copies(small_dataset)
    check = tmp_path / "labelled-new-site"
    for label in ("ants", "bees"):
        (check / label).mkdir(parents=True)
        for path in sorted((small_dataset / "train" / label).glob("*.jpg"))[:4]:
            ImageOps.invert(Image.open(path).convert("RGB")).rotate(90, expand=True).save(check / label / path.name)
    run = start_adaptation(trained_run["run_dir"], [new_site, check], runner=JobRunner(), out=tmp_path / "checked",
                           schedule=QUICK, check_with=check)
    run.wait()
    snapshot = run.snapshot()
    found = snapshot["adaptation"]
    assert found["photos_found"] == 20, "the labelled check photos were among the photos adapted to"
    site = found["site_check"]
    assert site["photos"] == 8 and 0 <= site["before"] <= 1 and 0 <= site["after"] <= 1
    kept = snapshot["status"] == "finished"
    assert kept == (site["after"] >= site["before"]), (snapshot["status"], site)
    assert kept or "labelled photos from the new site" in snapshot["error"]
    with pytest.raises(AdaptError, match="classes the model does not know"):
        (check / "wasps").mkdir()
        (check / "ants" / sorted(p.name for p in (check / "ants").iterdir())[0]).rename(check / "wasps" / "w.jpg")
        start_adaptation(trained_run["run_dir"], [new_site], runner=JobRunner(), check_with=check)


def test_the_try_step_takes_labelled_new_site_photos_as_a_zip(trained_run, small_dataset, tmp_path):
    """The page's optional box: a .zip of class folders reaches the adaptation as its check (a zip with a
    class the model does not know is refused at once, in words; a good one decides and is reported)."""
    import zipfile

    from PIL import Image, ImageOps

    from components import try_step
    new_site = sorted(shifted_copies(small_dataset).rglob("*.jpg"))
    archive = tmp_path / "labelled-site.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for label in ("ants", "wasps"):
            path = sorted((small_dataset / "train" / "ants").glob("*.jpg"))[0]
            ImageOps.invert(Image.open(path).convert("RGB")).save(tmp_path / "p.jpg")
            zipped.write(tmp_path / "p.jpg", f"site/{label}/{label}.jpg")
    refused = try_step.adapt_to_photos(list(map(str, new_site)), trained_run["run_dir"], runner=JobRunner(),
                                       check_with=str(archive))
    assert refused["adapt_words"].startswith("**Could not adapt:**") and "wasps" in refused["adapt_words"]
    assert "run_dir" not in refused
    not_a_zip = try_step.adapt_to_photos(list(map(str, new_site)), trained_run["run_dir"], runner=JobRunner(),
                                         check_with=str(new_site[0]))
    assert "is not a .zip" in not_a_zip["adapt_words"]


def test_site_like_views_shrink_soften_and_never_mirror():
    """The labelled photos' views while adapting: a real example photo, its left third marked white. No view
    ever shows the mark at the right edge (a mirror would, and would turn a left arrow into a right one:
    the studio's usual mirrored crops do, as the check of the test itself shows); site-like views are
    softer than the usual ones (less fine detail)."""
    from studio import augment
    import numpy as np
    import torch
    from PIL import Image

    from helpers import example_files
    from studio.adapt import views

    photo = np.asarray(Image.open(example_files("train", "bees", 1)[0]).convert("RGB").resize((128, 128))).copy()
    photo[:, :40] = 255
    pixels = torch.from_numpy(photo).permute(2, 0, 1).unsqueeze(0).repeat(64, 1, 1, 1)
    prep = {"input_size": 112, "mean": [0.0] * 3, "std": [1 / 255] * 3}   # views come back as 0-255 pixels
    shown = {}
    for chosen in views.CANDIDATES:
        x = views.show(pixels, prep, 112, chosen, torch.Generator().manual_seed(0)).float()
        assert not (x[..., -8:].mean(dim=(1, 2, 3)) > 240).any(), chosen.name   # never mirrored
        shown[chosen.name] = (x[..., 1:] - x[..., :-1]).abs().mean().item()   # fine detail
    mirrored = augment.random_resized_crop(pixels.float(), 112, torch.Generator().manual_seed(0), flip=True)
    assert (mirrored[..., -8:].mean(dim=(1, 2, 3)) > 240).any()   # the check sees a mirror when there is one
    assert shown["site-like"] < 0.8 * shown["as trained"]      # softer
    assert views.SITE_LIKE.smallest < 1 and views.AS_TRAINED.smallest == 1
    # "as trained" follows the source run: a run trained with other-cameras views keeps them while adapting
    assert views.for_source("as trained", {"augment_strength": "other-cameras"}) is views.SITE_LIKE
    assert views.for_source("as trained", {"augment_strength": "normal"}) is views.AS_TRAINED
    assert views.for_source("as trained", {}) is views.AS_TRAINED
    assert views.for_source("site-like", {"augment_strength": "normal"}) is views.SITE_LIKE
    # training's "other-cameras" augmentation is the same site-like view (studio train --augment-strength)
    from studio.training.context import model_input
    trained = model_input(pixels, prep, torch.Generator().manual_seed(0), "other-cameras", 112).float()
    assert torch.equal(trained, views.show(pixels, prep, 112, views.SITE_LIKE, torch.Generator().manual_seed(0)))
