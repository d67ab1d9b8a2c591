"""Calibrated confidence and familiarity (issue 18, part 1) on a real trained run and real photos."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from helpers import shifted_copies
from studio import calibration, modelfile
from studio.inference import Predictor


def test_temperature_fixes_overconfidence():
    """Logits made 4x sharper: the fitted T grows 4x with them and the calibration error comes down."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (2000,), generator=generator)
    honest = torch.randn(2000, 5, generator=generator)
    honest[torch.arange(2000), labels] += 1.5
    base = calibration.fit_temperature(honest, labels)
    result = calibration.calibrate(honest * 4, labels)
    assert abs(result["temperature"] / base - 4) < 0.2
    assert result["error_after"] < result["error_before"] / 2


def test_too_few_photos_keep_the_model_as_it_is():
    assert calibration.fit_temperature(torch.randn(5, 3), torch.zeros(5, dtype=torch.long)) == 1.0


def test_finished_run_is_calibrated_and_knows_its_photos(trained_run):
    run_dir = Path(trained_run["run_dir"])
    assert trained_run["calibration"]["photos"] == 20
    meta = modelfile.read_metadata(run_dir / "model.safetensors")
    assert meta["calibration"]["temperature"] == trained_run["calibration"]["temperature"]
    assert (run_dir / "familiarity.safetensors").is_file()
    assert "Confidence calibrated on 20 validation photos" in trained_run["config"]["choices"]["calibration"]


def test_a_head_only_model_calibrates_on_the_features_it_already_has(small_dataset, tmp_path):
    """The head-only run's calibration reuses the head stage's features; the result matches a fresh pass over
    the photos, and a changed backbone is noticed (then the photos are passed again)."""
    from studio import familiarity
    from studio.runs import Run
    from studio.training import calibrate
    from studio.training.config import TrainConfig
    from studio.training.trainer import Trainer

    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=2,
                         feature_views=1).resolved()
    trainer = Trainer(config, Run(tmp_path / "run", {}))
    trainer.train()
    ctx = trainer.ctx
    rows = familiarity.reference_sample(len(ctx.train_px), config.seed)
    kept = ctx.kept_features
    assert kept is not None and kept.fit(ctx.model, rows) and len(kept.val) == len(ctx.val_px)
    reused = calibrate.run(ctx)
    reference = familiarity.Familiarity.load(ctx.run.folder.familiarity)
    ctx.kept_features = None
    fresh = calibrate.run(ctx)
    again = familiarity.Familiarity.load(ctx.run.folder.familiarity)
    assert abs(reused["temperature"] - fresh["temperature"]) <= 0.05 * fresh["temperature"], (reused, fresh)
    assert reused["photos"] == fresh["photos"] and reference.reference.shape == again.reference.shape
    assert torch.allclose(reference.val_distances.float(), again.val_distances.float(), atol=0.02)
    with torch.no_grad():
        next(ctx.model.parameters()).add_(0.01)
    assert not kept.fit(ctx.model, rows)


def test_shift_cli_tells_inverted_photos_from_validation_photos(trained_run, small_dataset):
    run_dir = trained_run["run_dir"]
    shifted = shifted_copies(small_dataset)

    def shift_of(photos):
        out = subprocess.run([sys.executable, "-m", "studio", "shift", str(run_dir), str(photos), "--json"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    familiar, unfamiliar = shift_of(small_dataset / "val"), shift_of(shifted)
    assert 0.8 < familiar["shift"] < 1.25
    assert unfamiliar["shift"] > familiar["shift"]
    assert {"path", "shift", "unfamiliar"} <= set(unfamiliar["photos"][0])
    assert len(unfamiliar["photos"]) == len(list(shifted.glob("*.jpg")))


def test_predictions_carry_calibrated_probabilities_and_familiarity(trained_run, small_dataset):
    predictor = Predictor(Path(trained_run["run_dir"]) / "model.safetensors")
    photo = sorted((small_dataset / "val").rglob("*.jpg"))[0]
    answer = next(predictor.predict_each([photo], top_k=2, familiarity=True))
    assert answer.familiarity is not None and "percentile" in answer.familiarity
    plain = next(predictor.predict_each([photo], top_k=2))
    assert abs(answer.top[0][1] - plain.top[0][1]) < 1e-3
    logits = predictor.model(predictor.tensor([photo]))
    expected = calibration.probabilities(logits, predictor.temperature).max().item()
    assert abs(plain.top[0][1] - expected) < 2e-2


def test_try_step_says_none_of_these_for_an_unfamiliar_photo(trained_run, small_dataset):
    import dataclasses

    from components import try_step
    predictor = Predictor(Path(trained_run["run_dir"]) / "model.safetensors")
    answer = next(predictor.predict_each([sorted((small_dataset / "val").rglob("*.jpg"))[0]], familiarity=True))
    far = dataclasses.replace(answer, familiarity={"shift": 3.0, "percentile": 1.0, "unfamiliar": True})
    assert far.unsure and "none of these" in try_step.advice_for(far)
    assert "unlike your training photos" in try_step.advice_for(far)


def test_check_new_photos_lists_a_zip_and_loose_files_most_unfamiliar_first(trained_run, small_dataset, tmp_path):
    """The Try step's *Check new photos*: a .zip of inverted photos and two loose validation photos, one of
    them a broken file: every photo is listed by the name the person knows (inside the zip: its path there),
    most unfamiliar first, and the broken one is named with its reason."""
    import zipfile

    from components import try_step
    from studio.runs import JobRunner
    shifted = shifted_copies(small_dataset)
    archive = tmp_path / "new-site.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(shifted.glob("*.jpg"))[:6]:
            zf.write(path, f"camera2/{path.name}")
    familiar = sorted((small_dataset / "val").rglob("*.jpg"))[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    shown = try_step.check_photos([str(archive), *map(str, familiar), str(broken)], trained_run["run_dir"],
                                  runner=JobRunner())
    table = shown["check_table"]
    assert len(table) == 8 and list(table.columns) == try_step.CHECK_COLUMNS
    assert set(table["photo"]) == ({f"camera2/{p.name}" for p in sorted(shifted.glob("*.jpg"))[:6]}
                                   | {p.name for p in familiar})
    assert list(table["shift"]) == sorted(table["shift"], reverse=True)
    assert "broken.jpg" in shown["check_words"] and "could not be read" in shown["check_words"]
    assert "shift" in shown["check_words"]
    empty = try_step.check_photos([], trained_run["run_dir"], runner=JobRunner())
    assert "Drop some new photos" in empty["check_words"] and empty["check_table"].empty
