"""The Python API (`from studio import train, load`): the README's example runs as written in a
fresh process, and the API is the engine the page uses (same run folder, same checks)."""
import re
import subprocess
import sys

import pytest

from helpers import REPO


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_in_a_fresh_process(small_dataset, tmp_path):
    """Run as written, on the small copy of the example (the same layout) to keep CI short."""
    code = readme_example().replace('"assets/example/hymenoptera"', repr(str(small_dataset)))
    photo = next((small_dataset / "val" / "bees").iterdir())
    code = re.sub(r'photo = ".*"', f"photo = {str(photo)!r}", code)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["epoch 1", "epoch 2", "epoch 3"]
    assert "['ants', 'bees']" in lines[3]
    assert re.match(r"\('(ants|bees)', 0\.\d+\)", lines[4])
    assert "matches the trained model" in lines[5], lines[5]
    assert (tmp_path / "exported-bees" / "model.onnx").is_file()


@pytest.mark.slow
def test_train_returns_what_the_run_folder_says_and_load_gives_it_back(trained_run, tmp_path):
    from studio import load
    model = load(trained_run["run_dir"])
    assert model.classes == trained_run["classes"] and model.status == "finished"
    assert model.accuracy == pytest.approx(trained_run["best_val_accuracy"])
    assert [h["epoch"] for h in model.history] == [h["epoch"] for h in trained_run["history"]]
    from helpers import example_files
    photos = example_files("val", "ants", 3) + [tmp_path / "missing.jpg"]
    answers = model.predict(photos, top_k=2)
    assert [a.image for a in answers] == photos
    assert all(len(a.top) == 2 and a.error is None for a in answers[:3]) and answers[3].error


@pytest.mark.slow
def test_an_exported_model_loads_and_predicts(exports):
    from helpers import example_files
    from studio import load
    exported = load(exports["onnx"].folder)
    assert exported.run_dir is None and exported.classes == ["ants", "bees"]
    assert exported.predict(example_files("val", "bees", 1)[0])[0].top[0][0] in ("ants", "bees")
    with pytest.raises(ValueError, match="run folder"):
        exported.export("onnx", "anywhere")


def test_wrong_settings_and_failures_say_why(small_dataset, tmp_path):
    from studio import TrainingFailed, train
    with pytest.raises(TypeError, match="unknown settings learning_rate.*lr"):
        train(small_dataset, learning_rate=0.1)
    with pytest.raises(ValueError, match="not a freeze setting"):
        train(small_dataset, freeze="banana")
    (tmp_path / "one" / "cats").mkdir(parents=True)
    with pytest.raises(TrainingFailed) as failed:
        train(tmp_path / "one", backbone="mobilenetv2_100")
    assert failed.value.run_dir.is_dir() and str(failed.value)
