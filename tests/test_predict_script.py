"""The bundle's predict.py: the studio's preprocessing with Pillow and numpy alone, and the studio's answers.

It runs in a fresh isolated interpreter where the studio, timm and torch cannot be
imported (as on a machine with only its requirements.txt installed), on real
example photos and on the awkward pixel modes the studio itself handles.
"""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import example_files
from studio.export import bundle
from studio.inference import Predictor
from studio.runs import MODEL_FILE
from test_export import NOT_NEEDED, fresh_python

RUN_SCRIPT = """
import runpy, sys
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def template():
    spec = importlib.util.spec_from_file_location("studio_predict_template", bundle.TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def awkward_images(tmp_path_factory) -> list[Path]:
    """One real photo saved in the modes and forms that trip up naive loaders."""
    folder = tmp_path_factory.mktemp("awkward")
    photo = Image.open(example_files("val", "bees", 3)[-1]).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF: rotate 90 degrees to display
    photo.save(folder / "rotated.jpg", exif=exif)
    photo.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    alpha = photo.convert("LA")
    alpha.putalpha(Image.linear_gradient("L").resize(photo.size))
    alpha.save(folder / "grey-alpha.png")
    photo.convert("L").save(folder / "grey.jpg")
    photo.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.asarray(photo.convert("L"), dtype=np.uint16) * 200)).save(folder / "sixteen-bit.png")
    photo.resize((photo.width * 3, photo.height // 2)).save(folder / "wide.gif")
    photo.save(folder / "plain.webp")
    return sorted(folder.iterdir())


@pytest.mark.slow
def test_template_preprocessing_is_the_studios_to_the_bit(trained_run, awkward_images):
    predictor = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE)
    script = template()
    photos = example_files("val", "ants", 6) + example_files("train", "bees", 6) + awkward_images
    for photo in photos:
        studio_input = predictor.tensor([photo])[0].numpy()
        standalone = script.preprocess(photo, predictor.prep)
        assert standalone.dtype == np.float32 and standalone.shape == studio_input.shape
        assert np.array_equal(standalone, studio_input), photo.name


def _run(script: Path, args: list[str], blocked: list[str], cwd: Path):
    return fresh_python(RUN_SCRIPT.format(argv=[str(script), *map(str, args)]), blocked, cwd)


@pytest.mark.slow
def test_bundle_predict_py_runs_with_only_its_requirements(exports, trained_run, awkward_images, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in example_files("val", "ants", 10) + example_files("val", "bees", 10) + awkward_images:
        shutil.copyfile(photo, folder / f"{photo.parent.name}-{photo.name}")
    (folder / "broken.jpg").write_bytes(b"not a photo")
    result = _run(exports["bundle"].folder / "predict.py", [folder, "--json", "--top-k", "2"],
                  NOT_NEEDED + ["torch"], tmp_path)
    assert result.returncode == 1, result.stderr  # one unreadable photo: reported, the others classified
    assert "broken.jpg: not a readable image" in result.stderr and "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE)
    files = sorted(p for p in folder.iterdir() if p.name != "broken.jpg")
    assert [Path(r["image"]).name for r in rows] == [p.name for p in files]
    for row, answer in zip(rows, expected.predict(files, top_k=2)):
        assert row["predictions"][0]["class"] == answer[0][0], row
        assert abs(row["predictions"][0]["probability"] - answer[0][1]) < 1e-3, (row, answer)


@pytest.mark.slow
def test_predict_py_runs_torchscript_with_torch_alone(exports, trained_run, tmp_path):
    bee, ant = example_files("val", "bees", 1)[0], example_files("val", "ants", 1)[0]
    result = _run(exports["torchscript"].folder / "predict.py", [ant, bee], NOT_NEEDED + ["onnxruntime"], tmp_path)
    assert result.returncode == 0, result.stderr
    expected = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE).predict([ant, bee], top_k=3)
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, photo, answer in zip(lines, (ant, bee), expected):
        assert line.startswith(f"{photo}: {answer[0][0]} "), (line, answer)
        shown = float(line.split(": ")[1].split(",")[0].split()[1].rstrip("%"))
        assert abs(shown - answer[0][1] * 100) <= 0.051, (line, answer)


@pytest.mark.slow
def test_predict_py_runs_tflite_with_litert_alone(exports, trained_run, tmp_path):
    bee, ant = example_files("val", "bees", 1)[0], example_files("val", "ants", 1)[0]
    result = _run(exports["tflite"].folder / "predict.py", [ant, bee], NOT_NEEDED + ["onnxruntime", "torch"],
                  tmp_path)
    assert result.returncode == 0, result.stderr
    expected = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE).predict([ant, bee], top_k=3)
    for line, photo, answer in zip(result.stdout.splitlines(), (ant, bee), expected):
        assert line.startswith(f"{photo}: {answer[0][0]} "), (line, answer)


@pytest.mark.slow
def test_predict_py_explains_what_is_wrong(exports, tmp_path):
    script = exports["onnx-int8"].folder / "predict.py"
    bee = example_files("val", "bees", 1)[0]
    missing_runtime = _run(script, [bee], NOT_NEEDED + ["torch", "onnxruntime"], tmp_path)
    assert missing_runtime.returncode == 1 and "pip install onnxruntime" in missing_runtime.stderr
    cut = tmp_path / "cut.onnx"
    data = exports["onnx-int8"].model_files[0].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    damaged = _run(script, [bee, "--model", cut], NOT_NEEDED + ["torch"], tmp_path)
    assert damaged.returncode == 1 and "Traceback" not in damaged.stderr
    assert damaged.stderr.startswith("predict.py: error: cut.onnx is not a readable ONNX model"), damaged.stderr
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copyfile(script, lonely / "predict.py")
    nothing = _run(lonely / "predict.py", [bee], NOT_NEEDED + ["torch"], tmp_path)
    assert nothing.returncode == 1 and "no model file beside predict.py" in nothing.stderr


def test_template_is_lint_clean():
    import pyflakes.api as pyflakes  # a dev dependency: the check runs everywhere the tests do
    from pyflakes.reporter import Reporter
    import io
    out = io.StringIO()
    assert pyflakes.checkPath(str(bundle.TEMPLATE), Reporter(out, out)) == 0, out.getvalue()
