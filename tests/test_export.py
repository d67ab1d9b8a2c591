"""Exported files load where the studio is not, and give the studio's answers.

Every format is exported from a real training run, reloaded by its own runtime
in a fresh Python process that cannot import the studio or timm, and compared
with the trained model on real validation photos. Damaged or mismatched files
must give a clear error, never a crash.
"""
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import example_files
from studio import cli, commands, modelfile
from studio.export import bundle, formats, parity, runtimes
from studio.inference import Predictor
from studio.runs import MODEL_FILE

pytestmark = pytest.mark.slow  # every test exports or reloads the trained run

# Loaded before any script these tests run in a fresh interpreter: the listed packages cannot be
# imported there, as on a machine where only the export's own requirements are installed.
BLOCKER = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Block())
"""
NOT_NEEDED = ["studio", "components", "timm", "torchvision", "gradio", "safetensors", "pandas", "huggingface_hub"]


def fresh_python(code: str, blocked: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a new isolated interpreter (-I: no cwd, PYTHONPATH or user site) with `blocked` unimportable."""
    script = BLOCKER.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-I", "-W", "ignore", "-c", script], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={"PATH": "/usr/bin:/bin"})


def validation_batch(trained_run, per_class: int = 10):
    """Real validation photos of the run, as the studio feeds them to the model, and the trained model's logits."""
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    images = example_files("val", "ants", per_class) + example_files("val", "bees", per_class)
    predictor = Predictor(model_path)
    batch = predictor.tensor(images)
    with torch.no_grad():
        logits = predictor.model(batch)
    return batch, logits, torch.tensor([0] * per_class + [1] * per_class)


def test_readme_snippet_loads_the_model_file_without_the_studio(trained_run, tmp_path):
    """The README's few lines of timm/safetensors give the same logits as the studio."""
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = readme.split("<!-- load-snippet -->")[1].split("```python")[1].split("```")[0]
    image = example_files("val", "bees", 1)[0]
    predictor = Predictor(model_path)
    batch = predictor.tensor([image])
    torch.save(batch, tmp_path / "batch.pt")
    script = textwrap.dedent(snippet).replace('"model.safetensors"', repr(str(model_path)))
    script += textwrap.dedent(f"""
        import torch
        x = torch.load({str(tmp_path / 'batch.pt')!r})
        print(json.dumps(model(x).tolist()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    logits = torch.tensor(json.loads(result.stdout.strip().splitlines()[-1]))
    with torch.no_grad():
        expected = predictor.model(batch)
    assert torch.allclose(logits, expected, atol=1e-4)


RUNTIME_SCRIPTS = {
    # each reads the file the way the README shows, with nothing but its runtime and numpy
    "torchscript": """
        import json, numpy as np, torch
        extra = {{"transfer_studio.json": ""}}
        model = torch.jit.load({path!r}, _extra_files=extra)
        with torch.no_grad():
            logits = model(torch.from_numpy(np.load({batch!r}))).numpy()
        print(json.dumps({{"logits": logits.tolist(), "meta": json.loads(extra["transfer_studio.json"])}}))
    """,
    "onnx": """
        import json, numpy as np, onnxruntime as ort
        session = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
        meta = json.loads(session.get_modelmeta().custom_metadata_map["transfer_studio"])
        shape = session.get_inputs()[0].shape
        logits = session.run(None, {{"image": np.load({batch!r})}})[0]
        print(json.dumps({{"logits": logits.tolist(), "meta": meta, "input_shape": shape}}))
    """,
    "tflite": """
        import json, numpy as np
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter
        model = Interpreter(model_path={path!r})
        model.allocate_tensors()
        image, out = model.get_input_details()[0], model.get_output_details()[0]["index"]
        rows = []
        for photo in np.load({batch!r}):
            model.set_tensor(image["index"], photo[None])
            model.invoke()
            rows.append(model.get_tensor(out)[0].tolist())
        flat = schema.Model.GetRootAs(open({path!r}, "rb").read(), 0)
        entries = [flat.Metadata(i) for i in range(flat.MetadataLength())]
        text = next(bytes(flat.Buffers(e.Buffer()).DataAsNumpy()).decode() for e in entries
                    if e.Name() == b"transfer_studio")
        print(json.dumps({{"logits": rows, "meta": json.loads(text), "input_shape": image["shape"].tolist()}}))
    """,
}


@pytest.mark.parametrize("fmt,name", [("torchscript", "model.torchscript.pt"), ("onnx", "model.onnx"),
                                      ("onnx-int8", "model.int8.onnx"), ("bundle", "model.onnx"),
                                      ("tflite", "model.tflite"), ("tflite-int8", "model.int8.tflite")])
def test_each_format_reloads_in_a_fresh_process_and_matches(exports, trained_run, tmp_path, fmt, name):
    batch, expected, labels = validation_batch(trained_run)
    np.save(tmp_path / "batch.npy", batch.numpy())
    runtime = "torchscript" if name.endswith(".pt") else "tflite" if name.endswith(".tflite") else "onnx"
    blocked = NOT_NEEDED + (["onnxruntime", "onnx"] if runtime == "torchscript" else
                            ["torch", "onnxruntime", "onnx"] if runtime == "tflite" else ["torch"])
    path = exports[fmt].folder / name
    code = RUNTIME_SCRIPTS[runtime].format(path=str(path), batch=str(tmp_path / "batch.npy"))
    result = fresh_python(code, blocked, tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    logits = torch.tensor(out["logits"])
    assert out["meta"]["classes"] == ["ants", "bees"] and out["meta"]["preprocessing"]["input_size"] == 224
    assert logits.shape == expected.shape  # a batch of 20 through a file traced with a batch of 1
    if runtime == "onnx":
        assert out["input_shape"][0] == "batch" and out["meta"]["export"]["opset"] == formats.OPSET
    agree = (logits.argmax(1) == expected.argmax(1)).float().mean().item()
    if runtime == "tflite":
        assert out["input_shape"] == [1, 3, 224, 224]   # LiteRT's converter fixes the batch at one photo
    if formats.FORMATS[fmt].tolerance == formats.INT8:
        probs, reference = torch.softmax(logits, 1), torch.softmax(expected, 1)
        assert agree >= 0.9, agree
        assert (probs.argmax(1) == labels).float().mean() >= (reference.argmax(1) == labels).float().mean() - 0.1
        assert (probs - reference).abs().max() < 0.25
    else:
        assert agree == 1.0
        assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()


@pytest.mark.parametrize("fmt,subfolder", [("bundle", ""), ("onnx", "timm")])
def test_the_export_is_a_folder_timm_loads_with_its_class_names(exports, trained_run, tmp_path, fmt, subfolder):
    """timm.create_model("local-dir:...") in a fresh process that cannot import the studio: the class names and
    preprocessing come from timm's config.json, and the answers are the trained model's."""
    batch, expected, _ = validation_batch(trained_run)
    np.save(tmp_path / "batch.npy", batch.numpy())
    folder = exports[fmt].folder / subfolder
    code = f"""
        import json, numpy as np, timm, torch
        model = timm.create_model("local-dir:{folder}", pretrained=True).eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(np.load("{tmp_path / 'batch.npy'}")))
        cfg = model.pretrained_cfg
        print(json.dumps({{"labels": cfg["label_names"], "input": list(cfg["input_size"]), "crop": cfg["crop_pct"],
                          "mean": list(cfg["mean"]), "logits": logits.tolist()}}))
    """
    result = fresh_python(code, ["studio", "components", "gradio"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    prep = modelfile.read_metadata(Path(trained_run["run_dir"]) / MODEL_FILE)["preprocessing"]
    assert out["labels"] == ["ants", "bees"] and out["input"] == [3, prep["input_size"], prep["input_size"]]
    assert out["crop"] == prep["crop_pct"] and out["mean"] == list(prep["mean"])
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-4)


def test_a_timm_hub_folder_is_read_back_for_predict_and_as_own_weights(exports, trained_run, tmp_path, capsys):
    """A folder timm's own save_for_hf wrote (no studio description in the weights) predicts with its label
    names, from the Python API and `studio predict`; an export's timm/ folder is taken as own weights."""
    import timm
    from timm.models._hub import save_for_hf

    from studio import own_weights

    model, meta = modelfile.load(Path(trained_run["run_dir"]) / MODEL_FILE)
    plain = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=2)
    plain.load_state_dict(model.state_dict())
    save_for_hf(plain, str(tmp_path / "from-timm"), model_config={"label_names": ["ants", "bees"]},
                safe_serialization=True)
    bee = example_files("val", "bees", 20)[-1]
    reference = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE)
    folder = Predictor(tmp_path / "from-timm")
    assert folder.classes == ["ants", "bees"] and folder.temperature == 1.0   # timm's folder: uncalibrated
    raw = torch.softmax(reference.model(reference.tensor([bee])), 1)[0]
    assert abs(folder.predict([bee])[0][0][1] - raw.max().item()) < 1e-3
    capsys.readouterr()
    assert cli.main(["predict", str(tmp_path / "from-timm"), str(bee), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["class"] == "bees"
    # the export's timm folder keeps the calibration
    assert Predictor(exports["onnx"].folder / "timm").temperature == reference.temperature
    added = own_weights.add(exports["onnx"].folder / "timm", title="exported ants and bees")
    assert own_weights.architecture(added["name"]) == "mobilenetv2_100"


def test_onnx_files_carry_the_metadata_other_tools_read_and_name_their_exporter(exports):
    import ast

    import onnx

    for fmt in ("onnx", "onnx-int8", "bundle"):
        path = next(p for p in exports[fmt].model_files if p.suffix == ".onnx")
        proto = onnx.load(str(path))
        props = {p.key: p.value for p in proto.metadata_props}
        assert ast.literal_eval(props["names"]) == {"0": "ants", "1": "bees"} and props["task"] == "classify"
        assert json.loads(props["imgsz"]) == [224, 224] and json.loads(props["class_names"]) == ["ants", "bees"]
        assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {formats.OPSET}
        exporter = json.loads(props["transfer_studio"])["export"]["exporter"]
        assert exporter.startswith("torch.export-based"), exporter   # torch's current exporter took MobileNetV2


def test_without_the_current_exporter_onnx_falls_back_and_says_why(trained_run, tmp_path, monkeypatch):
    """Where torch.export cannot take a model (or onnxscript is missing), the TorchScript-based exporter writes
    the file; its deprecation notice is the only warning silenced, and the description names the fallback."""
    import warnings

    import onnx

    from studio.export import converters

    real = torch.onnx.export

    def no_current_exporter(*args, **kwargs):
        if kwargs.get("dynamo"):
            raise ModuleNotFoundError("No module named 'onnxscript'")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", no_current_exporter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = converters.export_onnx(Path(trained_run["run_dir"]) / MODEL_FILE, tmp_path / "model.onnx")
    assert not [w for w in caught if "legacy TorchScript-based" in str(w.message)]
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    exporter = json.loads(props["transfer_studio"])["export"]["exporter"]
    assert exporter.startswith("TorchScript-based") and "onnxscript" in exporter, exporter
    batch, expected, _ = validation_batch(trained_run)
    logits = runtimes.open_model(path)[0](batch)
    assert torch.allclose(torch.as_tensor(logits), expected, atol=1e-4)


def test_the_card_carries_the_yaml_the_hub_reads(exports, trained_run):
    import yaml

    for fmt, result in exports.items():
        text = (result.folder / "README.md").read_text()
        assert text.startswith("---\n"), fmt
        front = yaml.safe_load(text.split("---\n")[1])
        assert front["library_name"] == "timm" and front["pipeline_tag"] == "image-classification"
        assert front["license"] == "bsd-3-clause" and "mobilenetv2_100" in front["tags"]
        metrics = front["model-index"][0]["results"][0]["metrics"]
        assert metrics[0] == {"type": "accuracy", "name": "validation accuracy",
                              "value": round(trained_run["best_val_accuracy"], 4)}
        assert "# Model card" in text and "## Licence" in text
    config = json.loads((exports["bundle"].folder / "config.json").read_text())
    assert config["pretrained_cfg"]["license"] == "bsd-3-clause" and "tag" not in config["pretrained_cfg"]


def test_parity_figures_for_every_format(exports, trained_run):
    trained = exports["onnx"].parity["trained"]
    assert trained["accuracy"] == pytest.approx(trained_run["best_val_accuracy"], abs=1e-4)
    for fmt, result in exports.items():
        report = result.parity
        assert report["images"] == 20 and report["unreadable"] == 0 and report["checked"]
        assert [row["file"] for row in report["exports"]] == list(formats.FORMATS[fmt].files)
        for row in report["exports"]:
            assert row["ok"] is True, (fmt, row)
            assert row["bytes"] == (result.folder / row["file"]).stat().st_size and row["latency_ms"] > 0
            assert row["accuracy_trained"] == trained["accuracy"]
            if formats.FORMATS[fmt].tolerance == formats.FLOAT:
                assert row["agree"] == 20 and row["max_probability_difference"] < parity.FLOAT_MAX_DIFFERENCE
                assert row["verdict"] == "matches the trained model on 20/20 validation photos"
            else:
                assert "accuracy" in row["verdict"] and "points" in row["verdict"]
        assert not result.flagged and result.verdict().startswith(report["exports"][0]["file"])
    assert exports["bundle"].verdict() == ("model.safetensors and model.onnx each matches the trained model on "
                                           "20/20 validation photos.")
    int8 = exports["onnx-int8"].model_files[0].stat().st_size
    assert int8 < 0.4 * exports["onnx"].model_files[0].stat().st_size
    assert "| model.int8.onnx | onnxruntime " in parity.table_markdown(exports["onnx-int8"].parity)
    assert exports["tflite-int8"].model_files[0].stat().st_size < 0.4 * exports["tflite"].model_files[0].stat().st_size
    assert "| model.tflite | LiteRT (ai-edge-litert " in parity.table_markdown(exports["tflite"].parity)


def test_zip_holds_everything_and_the_card_states_the_facts(exports, trained_run):
    for fmt, result in exports.items():
        with zipfile.ZipFile(result.zip_path) as archive:
            names = set(archive.namelist())
            description = json.loads(archive.read("model.json"))
            requirements = archive.read("requirements.txt").decode()
        # the familiarity reference travels with a studio model file, so the export can still tell unfamiliar photos
        beside = {"familiarity.safetensors"} if "model.safetensors" in formats.FORMATS[fmt].files else set()
        # timm's config.json beside model.safetensors (the bundle's own, or a timm/ folder's copy)
        timm_files = ({"config.json"} if "model.safetensors" in formats.FORMATS[fmt].files
                      else {"timm/config.json", "timm/model.safetensors", "timm/README.md"})
        assert names == {*formats.FORMATS[fmt].files, "model.json", "README.md", "predict.py", "requirements.txt",
                         *beside, *timm_files}
        assert description["classes"] == ["ants", "bees"] and description["export"]["format"] == fmt
        assert set(description["files"]) == set(formats.FORMATS[fmt].files) and description["parity"]["ok"]
        assert ("torch" in requirements) == (fmt == "torchscript") and "pillow" in requirements
    with zipfile.ZipFile(exports["bundle"].zip_path) as archive:
        assert archive.read("model.safetensors") == (Path(trained_run["run_dir"]) / MODEL_FILE).read_bytes()
        card = archive.read("README.md").decode()
    for fact in ("MobileNetV2", "new head only", "| ants | 24 | 10 |", "| bees | 24 | 10 |", "Confusion matrix",
                 "precision", "Intended use and limits", "python predict.py", "matches the trained model on 20/20",
                 "data check", "Transfer Studio", "## Licence", "bsd-3-clause", "balanced accuracy",
                 "taking **bees** as the positive class: sensitivity"):
        assert fact in card, fact
    accuracy = f"{trained_run['best_val_accuracy']:.1%}"
    assert f"Accuracy **{accuracy}**" in card
    temperature = trained_run["calibration"]["temperature"]
    assert (f"calibrated on 20 validation photos (logits divided by {temperature:.2f}" in card
            or (temperature == 1.0 and "not calibrated" in card)), card
    assert "maybe none of these" in card and "studio shift" in card


def test_predict_accepts_every_exported_format(exports, trained_run, capsys):
    bee = example_files("val", "bees", 20)[-1]
    reference = Predictor(Path(trained_run["run_dir"]) / MODEL_FILE).predict([bee])[0]
    sources = [exports["torchscript"].folder / "model.torchscript.pt", exports["onnx"].folder / "model.onnx",
               exports["onnx-int8"].folder / "model.int8.onnx", exports["bundle"].folder, exports["onnx"].zip_path,
               exports["onnx-int8"].zip_path, exports["tflite"].folder / "model.tflite",
               exports["tflite-int8"].zip_path]
    for source in sources:
        predictor = Predictor(source)
        top = predictor.predict([bee])[0]
        assert top[0][0] == reference[0][0] == "bees", source
        tolerance = 0.05 if "int8" in str(predictor.path) else 1e-4
        assert abs(top[0][1] - reference[0][1]) < tolerance, (source, top, reference)
    assert Predictor(exports["onnx-int8"].zip_path).format == runtimes.ONNX
    assert Predictor(exports["bundle"].zip_path).format == runtimes.SAFETENSORS
    assert Predictor(exports["tflite-int8"].zip_path).format == runtimes.TFLITE
    capsys.readouterr()
    assert cli.main(["predict", str(exports["onnx-int8"].zip_path), str(bee), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["class"] == "bees"


def test_export_from_the_command_line(trained_run, tmp_path, capsys):
    bee = example_files("val", "bees", 20)[-1]
    out = tmp_path / "exported"
    result = subprocess.run([sys.executable, "-m", "studio", "export", trained_run["run_dir"], "--format",
                             "onnx", "--out", str(out), "--zip"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["path"] == str(out / "model.onnx") and summary["parity"]["ok"]
    assert set(summary["files"]) == {"model.onnx", "model.json", "README.md", "predict.py", "requirements.txt",
                                     "timm/config.json", "timm/model.safetensors", "timm/README.md"}
    assert zipfile.is_zipfile(summary["zip"]) and summary["verdict"] == (
        "model.onnx matches the trained model on 20/20 validation photos.")
    # one line per phase off a terminal
    assert "Checking model.onnx against the trained model" in result.stderr and "\r" not in result.stderr
    assert cli.main(["predict", summary["zip"], str(bee), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["class"] == "bees"
    assert sorted(cli.build_parser()._subparsers._group_actions[0].choices["export"]._option_string_actions[
        "--format"].choices) == sorted([*formats.FORMATS, "model"])


# ---------------------------------------------------------------- damaged and mismatched files

def _onnx_with(source: Path, target: Path, meta: dict | None) -> Path:
    import onnx
    proto = onnx.load(str(source))
    del proto.metadata_props[:]
    if meta is not None:
        proto.metadata_props.add(key=runtimes.ONNX_META, value=json.dumps(meta))
    onnx.save(proto, str(target))
    return target


def test_damaged_and_foreign_model_files_give_clear_errors(trained_run, tmp_path):
    model_path = Path(trained_run["run_dir"]) / MODEL_FILE
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(model_path.read_bytes()[:5000])
    with pytest.raises(modelfile.ModelFileError):
        Predictor(truncated)
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(modelfile.ModelFileError, match="not a Transfer Studio model"):
        Predictor(tmp_path / "foreign.safetensors")
    with pytest.raises(modelfile.ModelFileError, match="does not exist"):
        Predictor(tmp_path / "nothing.safetensors")
    (tmp_path / "noise.onnx").write_bytes(b"this is not a model at all")
    with pytest.raises(modelfile.ModelFileError, match="not a readable model file"):
        Predictor(tmp_path / "noise.onnx")


def test_damaged_and_mismatched_exports_give_clear_errors(exports, tmp_path):
    onnx_file = exports["onnx"].folder / "model.onnx"
    meta = runtimes.open_model(onnx_file)[1]
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    with pytest.raises(modelfile.ModelFileError, match="not a readable ONNX model"):
        Predictor(cut)
    with pytest.raises(modelfile.ModelFileError, match="carries no class names"):
        Predictor(_onnx_with(onnx_file, tmp_path / "bare.onnx", None))
    with pytest.raises(modelfile.ModelFileError, match="gives 2 scores but its description names 3 classes"):
        Predictor(_onnx_with(onnx_file, tmp_path / "three.onnx", {**meta, "classes": ["a", "b", "c"]}))
    wrong_size = {**meta, "preprocessing": {**meta["preprocessing"], "input_size": 300}}
    with pytest.raises(modelfile.ModelFileError, match="does not accept the 300 px input"):
        Predictor(_onnx_with(onnx_file, tmp_path / "size.onnx", wrong_size))
    with pytest.raises(modelfile.ModelFileError, match="damaged description"):
        Predictor(_onnx_with(onnx_file, tmp_path / "odd.onnx", {"classes": "ants"}))
    script = exports["torchscript"].folder / "model.torchscript.pt"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(script.read_bytes()[:4000])
    with pytest.raises(modelfile.ModelFileError, match="not a readable TorchScript file"):
        Predictor(broken)
    empty = tmp_path / "empty-export"
    empty.mkdir()
    (empty / "model.json").write_text("{}")
    with pytest.raises(modelfile.ModelFileError, match="holds no model file"):
        Predictor(empty)


def test_cli_errors_are_one_line(exports, tmp_path, capsys):
    cut = tmp_path / "cut.onnx"
    data = (exports["onnx"].folder / "model.onnx").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    bee = example_files("val", "bees", 1)[0]
    assert cli.main(["predict", str(cut), str(bee)]) == commands.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("studio: error: cut.onnx is not a readable ONNX model") and "Traceback" not in err
    assert cli.main(["export", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert "neither a run folder nor a run id" in capsys.readouterr().err


def test_a_run_whose_photos_are_gone_is_exported_but_not_called_checked(trained_run, tmp_path):
    import shutil
    run = tmp_path / "moved-run"
    shutil.copytree(trained_run["run_dir"], run)
    samples = (run / "samples.csv").read_text().replace("/small/", "/gone/")
    (run / "samples.csv").write_text(samples)
    (run / "predictions.csv").unlink()
    result = bundle.export_run(run, "onnx", tmp_path / "out", check_data=False)
    assert not result.parity["checked"] and result.parity["unreadable"] == 20
    assert result.verdict().startswith("Not checked") and not result.flagged
    with pytest.raises(bundle.ExportError, match="training photos"):
        bundle.export_run(run, "onnx-int8", tmp_path / "int8")


def test_openvino_reads_the_onnx_export_as_it_is(exports, trained_run):
    """OpenVINO opens model.onnx directly (no conversion step) and gives onnxruntime's answers, at any batch size.
    f32 is asked for: on a CPU with bf16 (AMX, AVX512-BF16) OpenVINO computes in bf16 unless told."""
    import openvino
    batch, expected, _ = validation_batch(trained_run)
    compiled = openvino.Core().compile_model(str(exports["onnx"].folder / "model.onnx"), "CPU",
                                             {"INFERENCE_PRECISION_HINT": "f32"})
    for rows in (batch[:1], batch[:5], batch):
        logits = torch.from_numpy(compiled(rows.numpy())[0])
        assert logits.shape == (len(rows), 2)
        assert torch.allclose(logits, expected[:len(rows)], atol=1e-3), (logits - expected[:len(rows)]).abs().max()


def test_tflite_without_its_converter_says_how_to_get_it(trained_run, tmp_path, monkeypatch):
    from studio.export import bundle
    from studio.export.writers import ExportError
    monkeypatch.setenv("STUDIO_LITERT_PYTHON", "")
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "fresh-home"))   # no converter environment made here
    with pytest.raises(ExportError, match="studio setup-tflite"):
        bundle.export_run(trained_run["run_dir"], "tflite", tmp_path / "out")
    assert not (tmp_path / "out" / "model.tflite").exists()


def test_the_pixels_in_onnx_takes_uint8_and_normalises_inside(exports, trained_run):
    """model.uint8.onnx takes the resized, centre-cropped photo as uint8 and gives the trained model's logits:
    an app skips the scaling and mean/std."""
    import onnxruntime as ort
    batch, expected, _ = validation_batch(trained_run)
    session = ort.InferenceSession(str(exports["onnx-uint8"].folder / "model.uint8.onnx"),
                                   providers=["CPUExecutionProvider"])
    image = session.get_inputs()[0]
    assert image.type == "tensor(uint8)" and image.shape[0] == "batch"
    meta = json.loads(session.get_modelmeta().custom_metadata_map["transfer_studio"])
    assert meta["export"]["input"] == "uint8 pixels"
    pixels = runtimes.normalised_to_pixels(batch.numpy(), meta["preprocessing"])
    logits = torch.from_numpy(session.run(None, {image.name: pixels})[0])
    assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()
