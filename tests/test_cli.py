"""`studio` as a person types it: train, predict, export, and clear errors."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers import example_files, free_port


def studio(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


@pytest.mark.slow
def test_train_json_is_one_line_and_the_log_one_line_per_epoch(small_dataset, tmp_path):
    """stderr is a pipe here, as in CI or under nohup: no redrawn bar, one line per phase and per epoch."""
    out = tmp_path / "run"
    result = studio("train", small_dataset, "--backbone", "mobilenetv2_100", "--freeze", "all",
                    "--epochs", "2", "--out", out, "--json")
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

    log = result.stderr.splitlines()
    assert "\r" not in result.stderr and "\033" not in result.stderr
    assert len(log) == len(set(log)), log                  # each phase once, not a line per redraw
    epochs = [line for line in log if "validation accuracy" in line]
    assert [line.split(":")[0] for line in epochs] == ["Epoch 1 of 2", "Epoch 2 of 2"], log
    best = summary["history"][0]["val_accuracy"]
    assert f"validation accuracy {best:.1%}" in epochs[0]
    assert len(log) < 15 and not any("%" in line for line in log if line not in epochs), log   # no bar

    ant, bee = example_files("val", "ants", 20)[-1], example_files("val", "bees", 20)[-1]
    predicted = studio("predict", summary["model_path"], ant, bee, "--json")
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["predictions"][0]["class"] for r in rows] == ["ants", "bees"]
    assert abs(sum(p["probability"] for p in rows[0]["predictions"]) - 1) < 1e-3

    exported = studio("export", out, "--format", "torchscript", "--out", tmp_path / "ts")
    assert exported.returncode == 0, exported.stderr
    assert "\r" not in exported.stderr
    ts_path = json.loads(exported.stdout)["path"]
    again = studio("predict", ts_path, bee, "--json")
    assert json.loads(again.stdout)["predictions"][0]["class"] == "bees"


@pytest.mark.slow
def test_train_ends_with_a_summary_for_a_person_and_quiet_shows_no_progress(small_dataset, tmp_path):
    out = tmp_path / "run"
    result = studio("train", small_dataset, "--backbone", "mobilenetv2_100", "--freeze", "all",
                    "--epochs", "2", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    text = result.stdout
    assert not text.lstrip().startswith("{") and "{" not in text   # words, not JSON
    status = json.loads((out / "status.json").read_text())
    model = out / "model.safetensors"
    assert model.is_file()
    assert f"Best: epoch {status['best_epoch']}, validation accuracy {status['best_val_accuracy']:.1%}" in text
    assert f"Run:    {out}" in text and f"Model:  {model}" in text
    assert f"studio predict {model} " in text and f"studio export {out} " in text
    assert len(text.splitlines()) <= 8


def test_version_is_the_package_version():
    from importlib.metadata import version
    result = studio("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"studio {version('transfer-studio')}"


def test_plain_studio_and_serve_flags_alone_mean_serve():
    from studio.cli import with_command
    assert with_command([]) == ["serve"]
    assert with_command(["--host", "0.0.0.0", "--port", "7999"]) == ["serve", "--host", "0.0.0.0", "--port", "7999"]
    assert with_command(["--help"]) == ["--help"] and with_command(["--version"]) == ["--version"]
    assert with_command(["train", "data"]) == ["train", "data"]


@pytest.mark.slow
def test_serve_flags_work_without_the_word_serve(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "studio", "--port", str(port), "--host", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore", "STUDIO_HOME": str(tmp_path / "home")})
    try:
        deadline, page = time.monotonic() + 240, None
        while time.monotonic() < deadline and server.poll() is None and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.status, response.read().decode(errors="replace")
            except OSError:
                time.sleep(0.5)
        assert server.poll() is None, server.stderr.read()
        assert page is not None and page[0] == 200 and "Transfer Studio" in page[1]
    finally:
        server.terminate()
        server.wait(30)


# (arguments, words the one-line error must hold): DATA is a real dataset, OUT a run folder that must not appear
FREEZE_WORDS = "auto (the recipe decides), all (only the new head trains) or a whole number"
TRAIN = ("train", "DATA", "--out", "OUT")
BAD_FLAGS = [
    (TRAIN + ("--freeze", "banana"), FREEZE_WORDS),
    (TRAIN + ("--freeze", "-1"), FREEZE_WORDS),
    (TRAIN + ("--freeze", "1.5"), FREEZE_WORDS),
    (TRAIN + ("--epochs", "0"), "a whole number, 1 or more"),
    (TRAIN + ("--epochs", "two"), "a whole number, 1 or more"),
    (TRAIN + ("--lr", "0"), "above 0"),
    (TRAIN + ("--lr", "nan"), "above 0"),
    (TRAIN + ("--batch-size", "1"), "a whole number, 2 or more"),
    (TRAIN + ("--seed", "-1"), "a whole number, 0 or more"),
    (TRAIN + ("--val-fraction", "1.5"), "between 0 and 1"),
    (TRAIN + ("--val-fraction", "0"), "between 0 and 1"),
    (TRAIN + ("--device", "tpu"), "auto, cpu, cuda"),
    (TRAIN + ("--prefix-sep", ""), "e.g. _"),
    (TRAIN + ("--exclude", "duplicates"), "'exact_duplicates', 'near_duplicates'"),
    (TRAIN + ("--views", "0"), "a whole number, 1 or more"),
    (TRAIN + ("--batchnorm", "keep"), "'pretrained', 'adapt'"),
    (TRAIN + ("--optimizer", "adam"), "'adamw', 'sgd'"),
    (TRAIN + ("--schedule", "linear"), "'warmup-cosine'"),
    (TRAIN + ("--head-epochs", "-1"), "a whole number, 0 or more"),
    (TRAIN + ("--head-epochs", "0"), "--freeze all or a number"),
    (TRAIN + ("--augment-strength", "huge"), "'light', 'normal', 'strong'"),
    (TRAIN + ("--weight-decay", "-0.1"), "0 or more"),
    (TRAIN + ("--label-smoothing", "1"), "from 0 up to (not including) 1"),
    (TRAIN + ("--patience", "-2"), "a whole number, 0 or more"),
    (TRAIN + ("--class-weighting", "maybe"), "'auto', 'on', 'off'"),
    (TRAIN + ("--train-size", "big"), "auto or a whole number of pixels, 32 or more"),
    (TRAIN + ("--train-size", "8"), "auto or a whole number of pixels, 32 or more"),
    (TRAIN + ("--memory-budget", "-5"), "a whole number, 0 or more"),
    (TRAIN + ("--backbone", "nope"), "mobilenetv2_100, tf_efficientnet_lite0"),
    (("train", "DATA", "--out", "FILE"), "is a file: give a folder"),
    (("export", "RUN", "--format", "zip", "--out", "OUT"),
     "'bundle', 'torchscript', 'onnx', 'onnx-uint8', 'onnx-int8', 'tflite'"),
    (("export", "RUN", "--out", "FILE"), "is a file: give a folder"),
    (("export", "RUN"), "required: --out"),
    (("predict", "MODEL", "photo.jpg", "--top-k", "three"), "--top-k"),
    (("lr-find", "DATA", "--freeze", "most"), FREEZE_WORDS),
    (("lr-find", "DATA", "--device", "tpu"), "auto, cpu, cuda"),
    (("doctor", "DATA", "--val-fraction", "-1"), "between 0 and 1"),
    (("serve", "--port", "0"), "a whole number from 1 to 65535"),
    (("--port", "http"), "a whole number from 1 to 65535"),
    (("trian", "DATA"), "'serve', 'train', 'doctor'"),
]


@pytest.mark.parametrize("argv,allowed", BAD_FLAGS, ids=[" ".join(a[1:] if a[0] == "train" else a)
                                                          for a, _ in BAD_FLAGS])
def test_a_bad_flag_value_fails_before_any_work_naming_what_is_allowed(argv, allowed, small_dataset, tmp_path,
                                                                        capsys):
    from studio.cli import main
    (tmp_path / "a-file").write_text("not a folder")
    where = {"DATA": small_dataset, "OUT": tmp_path / "out", "FILE": tmp_path / "a-file", "RUN": tmp_path / "run",
             "MODEL": tmp_path / "model.safetensors"}
    code = main([str(where.get(a, a)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("studio: error: ") and allowed in err, err
    assert not (tmp_path / "out").exists()                         # no run folder: nothing was started
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_cuda_is_refused_at_once_where_there_is_no_gpu(small_dataset, tmp_path, capsys):
    """Checked on a machine without a GPU (CI's); on a GPU machine `--device cuda` must be taken."""
    import torch

    from studio.cli import device_name, main
    if torch.cuda.is_available():
        assert device_name("cuda") == "cuda"
        return
    code = main(["train", str(small_dataset), "--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "No CUDA GPU" in err and "--device cpu" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_bad_flag_in_a_fresh_process_writes_nothing(small_dataset, tmp_path):
    """The reported case, as typed: no traceback, no run folder, and the backbone never loaded (a fresh
    workspace keeps no converted weights)."""
    home = tmp_path / "home"
    for argv in (("train", small_dataset, "--freeze", "banana", "--out", tmp_path / "run"),
                 ("lr-find", small_dataset, "--backbone", "nope")):
        result = studio(*argv, env={"STUDIO_HOME": str(home)}, timeout=120)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
        assert not (tmp_path / "run").exists()
        assert not home.exists() or not any(home.rglob("*")), list(home.rglob("*"))


@pytest.mark.slow
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


@pytest.mark.slow
def test_help_and_backbones_listing():
    assert studio("--help").returncode == 0
    listing = studio("backbones", "--json")
    names = {row["name"]: row["status"] for row in json.loads(listing.stdout)}
    assert names["mobilenetv2_100"] == "offline"


@pytest.mark.slow
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
    from studio.commands import exposure_warning
    assert exposure_warning("127.0.0.1", []) is None and exposure_warning("localhost", []) is None
    assert "without login" in exposure_warning("0.0.0.0", [])
    assert exposure_warning("0.0.0.0", [("ann", "pw")]) is None


def test_the_command_line_is_built_and_checked_without_loading_torch():
    """`studio --help` and a wrong flag answer at once: loading torch and timm takes seconds on a small CPU."""
    probe = ("import sys; from studio.cli import build_parser; parser = build_parser(); "
             "parser.parse_args(['train', 'data', '--freeze', 'all', '--optimizer', 'sgd', '--epochs', '3']); "
             "print(sorted(m for m in ('torch', 'timm', 'gradio') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
