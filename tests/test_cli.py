"""`studio` as a person types it: train, predict, export, and clear errors."""
import json
import os
import subprocess
import sys

from conftest import example_files


def studio(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_train_prints_one_json_line_and_predict_names_the_class(small_dataset, tmp_path):
    out = tmp_path / "run"
    result = studio("train", small_dataset, "--backbone", "mobilenetv2_100", "--freeze", "all",
                    "--epochs", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    for key in ("classes", "best_val_accuracy", "epochs_run", "train_seconds", "confusion_matrix", "run_dir",
                "model_path"):
        assert key in summary
    assert summary["classes"] == ["ants", "bees"] and summary["epochs_run"] == 2
    assert summary["run_dir"] == str(out) and os.path.isfile(summary["model_path"])
    assert len(summary["confusion_matrix"]) == 2 and sum(map(sum, summary["confusion_matrix"])) == 20
    assert "%" in result.stderr  # the progress bar goes to stderr

    ant, bee = example_files("val", "ants", 20)[-1], example_files("val", "bees", 20)[-1]
    predicted = studio("predict", summary["model_path"], ant, bee, "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["predictions"][0]["class"] for r in rows] == ["ants", "bees"]
    assert abs(sum(p["probability"] for p in rows[0]["predictions"]) - 1) < 1e-3

    exported = studio("export", out, "--format", "torchscript", "--out", tmp_path / "ts")
    assert exported.returncode == 0, exported.stderr
    ts_path = json.loads(exported.stdout)["path"]
    again = studio("predict", ts_path, bee, "--json")
    assert json.loads(again.stdout)["predictions"][0]["class"] == "bees"


def test_user_mistakes_are_one_clear_line(tmp_path):
    missing = studio("train", tmp_path / "nothing-here")
    assert missing.returncode != 0
    assert missing.stderr.strip().startswith("studio: error:") and "Traceback" not in missing.stderr
    (tmp_path / "one" / "cats").mkdir(parents=True)
    from PIL import Image
    for i in range(3):
        Image.new("RGB", (32, 32)).save(tmp_path / "one" / "cats" / f"{i}.png")
    single = studio("train", tmp_path / "one")
    assert single.returncode == 2 and "two classes" in single.stderr and "Traceback" not in single.stderr
    bad_model = tmp_path / "model.safetensors"
    bad_model.write_bytes(b"garbage")
    broken = studio("predict", bad_model, tmp_path / "one" / "cats" / "0.png")
    assert broken.returncode == 1 and "not a readable" in broken.stderr and "Traceback" not in broken.stderr
    unknown = studio("train", tmp_path / "one", "--backbone", "nope")
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr


def test_help_and_backbones_listing():
    assert studio("--help").returncode == 0
    listing = studio("backbones", "--json")
    names = {row["name"]: row["status"] for row in json.loads(listing.stdout)}
    assert names["mobilenetv2_100"] == "offline"


def test_runs_listing_shows_every_status(trained_run, capsys):
    import shutil
    from pathlib import Path
    from studio.cli import main
    source = Path(trained_run["run_dir"])
    cut_off = source.parent / "20990101-000000-cut-off-copy"
    shutil.copytree(source, cut_off)
    status = json.loads((cut_off / "status.json").read_text())
    (cut_off / "status.json").write_text(json.dumps({**status, "status": "running"}))
    damaged = source.parent / "20990101-000001-damaged-copy"
    shutil.copytree(source, damaged)
    (damaged / "config.json").write_text("{not json")
    try:
        assert main(["runs", "--json"]) == 0
        rows = {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
        assert rows[trained_run["id"]]["status"] == "finished"
        assert rows[cut_off.name]["status"] == "interrupted"
        assert rows[damaged.name]["status"] == "damaged" and "damaged" in rows[damaged.name]["error"]
        assert main(["runs"]) == 0
        text = capsys.readouterr().out
        assert "interrupted" in text and "damaged" in text and trained_run["id"] in text
    finally:
        shutil.rmtree(cut_off)
        shutil.rmtree(damaged)


def test_serving_beyond_this_machine_without_login_warns():
    from studio.cli import exposure_warning
    assert exposure_warning("127.0.0.1", []) is None and exposure_warning("localhost", []) is None
    assert "without login" in exposure_warning("0.0.0.0", [])
    assert exposure_warning("0.0.0.0", [("ann", "pw")]) is None
