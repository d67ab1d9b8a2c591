"""`studio predict` on a folder: one batched fast pass that gives the one-photo-at-a-time answers.

The reference below is the old loop written out (one photo per forward pass, fp32, eager, NCHW,
a fresh copy of the model): the fast pass must give the same top class for every photo, in the
same order, with probabilities within the tolerance `inference` states. Broken files in the folder
are named with a reason and the rest are still classified, for every model format.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers import REPO, WORKSPACE, example_files
from studio import augment, calibration, cli, commands, fastpath, inference, modelfile
from studio.data.imaging import ImageDecodeError, decode_square
from studio.inference import Predictor
from studio.data.pixels import cache_side
from studio.export import bundle, runtimes
from studio.runs import MODEL_FILE

pytestmark = pytest.mark.slow  # every test trains or predicts with the trained run

BROKEN = {"b-empty.jpg": b"", "d-text.png": b"this is not a picture\n", "f-truncated.jpg": None}


def model_of(run) -> Path:
    return Path(run["run_dir"]) / MODEL_FILE


def one_by_one(model_path: Path, images: list) -> torch.Tensor:
    """The old path: a fresh fp32 model, one photo per forward pass, NCHW (the answers to match), with the
    model's calibration temperature as every runtime applies it."""
    model, meta = modelfile.load(model_path)
    temperature = calibration.temperature_of(meta)
    prep, rows = meta["preprocessing"], []
    with torch.no_grad():
        for image in images:
            batch = torch.from_numpy(decode_square(image, cache_side(prep))).permute(2, 0, 1)[None]
            rows.append(calibration.probabilities(model(augment.eval_batch(batch, prep)), temperature)[0])
    return torch.stack(rows)


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    """21 validation photos: two full batches of 8 and a short last one."""
    return example_files("val", "ants", 11) + example_files("val", "bees", 10)


@pytest.fixture(scope="module")
def folder(photos) -> Path:
    """The photos in a nested folder, with broken files between them (sorted names interleave them)."""
    root = WORKSPACE / "predict-folder"
    if root.exists():
        shutil.rmtree(root)
    for i, photo in enumerate(photos):
        target = root / ("sub" if i % 3 == 0 else "") / f"{'aceg'[i % 4]}-{i:02d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, target)
    for name, content in BROKEN.items():
        (root / name).write_bytes(content if content is not None else photos[0].read_bytes()[:300])
    (root / "notes.txt").write_text("not an image name: not listed")
    return root


def listed(root: Path) -> list[Path]:
    return commands._expand_images([str(root)])


def test_training_still_runs_its_feature_pass_as_a_traced_graph(small_dataset, tmp_path):
    """The traced-graph cache moved to studio.fastpath; training's CPU feature pass still uses it."""
    from studio.runs import Run
    from studio.training.config import TrainConfig
    from studio.training.trainer import Trainer
    config = TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=1,
                         feature_views=1).resolved()
    trainer = Trainer(config, Run(tmp_path / "run", {}))
    trainer.train()
    assert isinstance(trainer.ctx.features.forward, torch.jit.ScriptModule)
    assert any(graph is trainer.ctx.features.forward for graph in fastpath._TRACED.values())


def test_fast_pass_gives_the_one_by_one_answers_in_order(trained_run, photos, monkeypatch):
    monkeypatch.setattr(inference, "TRACE_FROM", 1)   # trace even for 21 photos
    monkeypatch.setenv("STUDIO_BF16", "0")
    predictor = Predictor(model_of(trained_run))
    results = list(predictor.predict_each(photos, top_k=2))
    assert isinstance(predictor._graph, torch.jit.ScriptModule)   # the traced graph ran, not the eager model
    reference = one_by_one(model_of(trained_run), photos)
    assert [r.image for r in results] == photos and all(r.error is None for r in results)
    assert [r.top[0][0] for r in results] == [predictor.classes[i] for i in reference.argmax(1)]
    fast = torch.tensor([[dict(r.top)[c] for c in predictor.classes] for r in results])
    assert (fast - reference).abs().max() <= inference.FP32_TOLERANCE
    # the list API the Try page uses answers the same through the same pass
    assert predictor.predict(photos[:3], top_k=1) == [r.top[:1] for r in results[:3]]


def test_bf16_fast_pass_keeps_the_top_class_within_its_tolerance(trained_run, photos, monkeypatch):
    """Forced on: this CPU may lack bf16 instructions, and then bf16 is emulated (slowly: the eager
    path on 10 photos here; tracing it would take half a minute) but gives bf16's answers."""
    monkeypatch.setenv("STUDIO_BF16", "1")
    predictor = Predictor(model_of(trained_run))
    some = photos[:5] + photos[-5:]
    assert predictor.amp
    probs = predictor.probabilities(some)
    reference = one_by_one(model_of(trained_run), some)
    assert probs.argmax(1).tolist() == reference.argmax(1).tolist()
    difference = (probs - reference).abs().max()
    assert 0 < difference <= inference.BF16_TOLERANCE, difference   # above 0: bf16 really ran


def test_folder_broken_files_are_named_and_the_rest_classified_in_order(trained_run, folder, photos):
    files = listed(folder)
    predictor = Predictor(model_of(trained_run))
    results = list(predictor.predict_each(files, top_k=2))
    assert [r.image for r in results] == files
    failed = {Path(r.image).name: r.error for r in results if r.error}
    assert sorted(failed) == sorted(BROKEN) and all("not a readable image" in why for why in failed.values())
    good = [f for f in files if f.name not in BROKEN]
    reference = one_by_one(model_of(trained_run), good)
    assert [r.top[0][0] for r in results if not r.error] == [predictor.classes[i] for i in reference.argmax(1)]
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        predictor.predict([photos[0], folder / "d-text.png"])


def test_cli_json_has_one_line_per_image_in_order_with_errors(trained_run, folder, capsys):
    files = listed(folder)
    code = cli.main(["predict", str(model_of(trained_run)), str(folder), "--json", "--top-k", "1"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == commands.EXIT_ERROR   # some files could not be read: the exit status says so
    assert [row["image"] for row in rows] == [str(f) for f in files]
    errors = {Path(row["image"]).name: row["error"] for row in rows if "error" in row}
    assert sorted(errors) == sorted(BROKEN)
    assert all(len(row["predictions"]) == 1 for row in rows if "error" not in row)
    for name in BROKEN:
        assert f"{folder / name}: not a readable image" in err
    assert f"{len(BROKEN)} of {len(files)} images could not be read" in err and "Traceback" not in err
    reference = one_by_one(model_of(trained_run), [f for f in files if f.name not in BROKEN])
    classes = modelfile.read_metadata(model_of(trained_run))["classes"]
    assert [row["predictions"][0]["class"] for row in rows if "error" not in row] == [
        classes[i] for i in reference.argmax(1)]


def test_studio_predict_folder_json_end_to_end(trained_run, photos, tmp_path):
    """The installed command on a clean folder: exit 0, one JSON line per photo, in sorted order."""
    for i, photo in enumerate(photos):
        shutil.copyfile(photo, tmp_path / f"{i:02d}{photo.suffix}")
    done = subprocess.run([sys.executable, "-m", "studio", "predict", str(model_of(trained_run)), str(tmp_path),
                           "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(row["image"]).name for row in rows] == [f"{i:02d}.jpg" for i in range(len(photos))]
    reference = one_by_one(model_of(trained_run), photos)
    classes = modelfile.read_metadata(model_of(trained_run))["classes"]
    assert [row["predictions"][0]["class"] for row in rows] == [classes[i] for i in reference.argmax(1)]
    assert all(abs(sum(p["probability"] for p in row["predictions"]) - 1) < 1e-3 for row in rows)


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("predict-exports")
    return {fmt: bundle.export_run(trained_run["run_dir"], fmt, root / fmt, check_data=False)
            for fmt in ("onnx", "onnx-int8", "torchscript")}


@pytest.mark.parametrize("fmt,name", [("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx"),
                                      ("torchscript", "model.torchscript.pt")])
def test_exports_run_the_batched_pass_with_broken_files_named(trained_run, exported, folder, fmt, name, monkeypatch):
    """Batches give each photo what the export's own runtime gives it alone (int8 too: its ranges are
    calibrated once, not per batch), and the float exports the trained model's top class."""
    monkeypatch.setattr(inference, "TRACE_FROM", 1)   # only the studio's own model file is ever traced
    files = listed(folder)
    predictor = Predictor(exported[fmt].folder / name)
    assert predictor.format == (runtimes.TORCHSCRIPT if fmt == "torchscript" else runtimes.ONNX)
    assert not predictor.amp and not predictor.channels_last
    results = list(predictor.predict_each(files, top_k=2))
    assert predictor._graph is None
    assert [r.image for r in results] == files
    assert sorted(Path(r.image).name for r in results if r.error) == sorted(BROKEN)
    good = [f for f in files if f.name not in BROKEN]
    with torch.no_grad():
        alone = torch.cat([calibration.probabilities(predictor.model(predictor.tensor([f])), predictor.temperature)
                           for f in good])
    fast = torch.tensor([[dict(r.top)[c] for c in predictor.classes] for r in results if not r.error])
    assert (fast - alone).abs().max() <= inference.FP32_TOLERANCE
    if fmt != "onnx-int8":   # int8 may change an answer; how often is the parity check's business
        reference = one_by_one(model_of(trained_run), good)
        assert fast.argmax(1).tolist() == reference.argmax(1).tolist()


def test_pil_images_and_one_photo_still_work(trained_run, photos):
    """The Try page hands over one PIL image at a time."""
    predictor = Predictor(model_of(trained_run))
    with Image.open(photos[-1]) as image:
        top = predictor.predict([image.copy()], top_k=5)[0]
    reference = one_by_one(model_of(trained_run), [photos[-1]])[0]
    assert top[0][0] == predictor.classes[int(reference.argmax())] and len(top) == 2
    assert predictor._graph is None   # one photo never pays for tracing


def test_predict_refuses_bad_input_in_one_line(trained_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "deeper").mkdir(parents=True)
    (empty / "readme.txt").write_text("no pictures here")
    assert cli.main(["predict", str(model_of(trained_run)), str(empty)]) == commands.EXIT_ERROR
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"studio: error: no images in {empty} (looked for ") and said.endswith(").")
    assert all(kind in said for kind in ("jpg", "png", "heic", "avif", "ppm", "webp"))
    try:   # refused before the model loads, by cmd_predict or by the parser
        code = cli.main(["predict", str(model_of(trained_run)), str(empty), "--top-k", "0"])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == commands.EXIT_USAGE and "top-k" in err and "Traceback" not in err


def test_the_page_keeps_one_model_loaded_until_its_file_changes(trained_run, tmp_path):
    """Try it loads a model once (a second or more) and answers each photo from it, but a run's best model
    is rewritten as it improves: a changed file is loaded again, and so is another model."""
    import os
    import shutil

    from studio.inference import WarmPredictor
    model = tmp_path / "model.safetensors"
    shutil.copyfile(model_of(trained_run), model)
    loaded = WarmPredictor()
    first = loaded(model)
    assert loaded(model) is first
    later = model.stat().st_mtime + 5
    os.utime(model, (later, later))   # what a new best epoch's save does to the file
    again = loaded(model)
    assert again is not first and loaded(model) is again
    assert loaded(model_of(trained_run)) is not again
