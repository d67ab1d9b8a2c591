"""Exports of a multi-label model decide like the trained model, label by label.

A multi-label model answers yes or no per label (its sigmoid score at or above the label's threshold), so
every format is checked on those decisions: the parity check on the run's real validation photos, `studio
predict` on each exported file, predict.py without the studio, the card's wording, and exports broken on
purpose (thresholds, temperature, task or weights changed), which the check must flag.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch

from studio import cli, modelfile
from studio.export import bundle, converters, formats, parity, runtimes
from studio.inference import Predictor
from studio.multilabel import decide, metrics
from studio.multilabel.dataset import label_matrix
from studio.runs import MODEL_FILE, history
from test_export import NOT_NEEDED, fresh_python
from test_predict_script import RUN_SCRIPT

pytestmark = pytest.mark.slow  # a real multi-label run, exported in every format

# every format but TFLite, whose converter is slow (test_tflite_exports_decide_label_by_label has it), and plain
# ONNX, whose file the bundle holds (model.onnx, the same converter); the bundle is also the timm / Hub folder
FORMATS = ["bundle", "torchscript", "onnx-uint8", "onnx-int8"]
MARGIN = 0.25   # int8 formats are compared only on decisions this far from the threshold (their scores move)


@pytest.fixture(scope="module")
def ml_exports(multilabel_run, tmp_path_factory):
    """The multi-label run exported once in each of FORMATS (the bundle zipped and with the data check)."""
    root = tmp_path_factory.mktemp("ml-exports")
    return {fmt: bundle.export_run(multilabel_run["run_dir"], fmt, root / fmt,
                                   zip_path=root / f"{fmt}.zip" if fmt == "bundle" else None,
                                   check_data=fmt == "bundle")
            for fmt in FORMATS}


def model_path(run) -> Path:
    return Path(run["run_dir"]) / MODEL_FILE


def validation(run) -> tuple[list[str], torch.Tensor]:
    """The run's validation photos and their 0/1 targets, from samples.csv's ';'-joined labels."""
    rows = history.run_samples(Path(run["run_dir"]), "val")
    classes = modelfile.read_metadata(model_path(run))["classes"]
    return [path for path, _ in rows], label_matrix([label for _, label in rows], classes)


def labels_of(predictor: Predictor, photos: list[str]) -> list[set[str]]:
    return [set(said) for said in predictor.decide(predictor.probabilities(photos))]


def test_every_format_matches_the_trained_model_label_by_label(ml_exports, multilabel_run):
    photos, targets = validation(multilabel_run)
    meta = modelfile.read_metadata(model_path(multilabel_run))
    reference = Predictor(model_path(multilabel_run))
    expected = metrics.evaluate(reference.probabilities(photos), targets, meta["classes"],
                                torch.tensor(meta["thresholds"]))
    for fmt, result in ml_exports.items():
        report = result.parity
        assert report["task"] == "multi-label" and report["tolerance"] == parity.MULTILABEL_TOLERANCE_WORDS
        assert report["checked"] and report["images"] == len(photos) == 12 and report["unreadable"] == 0
        # the figures stand for what metrics.evaluate says of the model file at its own thresholds
        assert report["trained"]["micro_f1"] == pytest.approx(expected["micro_f1"], abs=1e-4)
        assert report["trained"]["accuracy"] == pytest.approx(expected["exact_match"], abs=1e-4)
        for row in report["exports"]:
            assert row["decisions"] == len(photos) * len(meta["classes"]), (fmt, row)
            assert row["micro_f1_trained"] == report["trained"]["micro_f1"]
            if formats.FORMATS[fmt].tolerance == formats.FLOAT:
                assert row["ok"] is True, (fmt, row)
                assert row["decisions_agree"] == row["decisions"] and row["agree"] == len(photos)
                assert row["max_probability_difference"] <= parity.FLOAT_MAX_DIFFERENCE
                assert row["verdict"] == "matches the trained model: the same labels on 12/12 validation photos"
            else:   # the verdict follows the stated bounds; int8 moves scores, so a close call may flip
                within = (row["agreement"] >= parity.INT8_MIN_AGREEMENT and
                          -row["micro_f1_change"] <= parity.INT8_MAX_MICRO_F1_DROP)
                assert row["ok"] is within and row["agreement"] >= 0.9, (fmt, row)
                said = row["verdict"]   # a pass counts the decisions agreed, a flag the pairs the same
                assert ("yes/no label decisions" in said or "yes/no decision on" in said) and "micro-F1" in said
        table = parity.table_markdown(report)
        assert "| Micro-F1 | Every label right |" in table and "Same yes/no decisions" in table
        assert parity.LABELS_TABLE_WORDS in table and "| Accuracy |" not in table
    assert ml_exports["bundle"].verdict() == ("model.safetensors and model.onnx each matches the trained model: "
                                              "the same labels on 12/12 validation photos.")


def test_each_exports_own_thresholds_give_the_trained_labels(ml_exports, multilabel_run):
    """Each file, opened on its own with its own description, says the trained model's labels: float formats on
    every validation photo, int8 on every photo-label decision not within MARGIN of its threshold."""
    photos, _ = validation(multilabel_run)
    reference = Predictor(model_path(multilabel_run))
    trained_scores = reference.probabilities(photos)
    cuts = torch.tensor(reference.thresholds)
    expected = labels_of(reference, photos)
    clear = (trained_scores - cuts).abs() >= MARGIN
    assert clear.sum() >= 12   # enough decisions made clearly to compare the int8 files on
    for fmt, result in ml_exports.items():
        for path in result.model_files:
            exported = Predictor(path)
            assert exported.multilabel and exported.thresholds == reference.thresholds, path
            if formats.FORMATS[fmt].tolerance == formats.FLOAT:
                assert labels_of(exported, photos) == expected, path
            else:
                said = exported.probabilities(photos) >= cuts
                assert torch.equal(said[clear], (trained_scores >= cuts)[clear]), path
    # int8 calibrated on the training photos, whatever their labels (not only those with one label)
    train = history.run_samples(Path(multilabel_run["run_dir"]), "train")
    quantized = runtimes.OnnxModel(ml_exports["onnx-int8"].model_files[0]).meta["export"]["quantization"]
    assert f"{min(len(train), 64)} calibration photos" in quantized


def test_studio_predict_gives_the_model_files_labels_for_every_export(ml_exports, multilabel_run, capsys):
    photos, _ = validation(multilabel_run)
    photos = photos[:6]
    reference = Predictor(model_path(multilabel_run))
    expected = [sorted(label for label, _ in p.labels) for p in reference.predict_each(photos)]
    sources = [path for fmt in FORMATS if formats.FORMATS[fmt].tolerance == formats.FLOAT
               for path in ml_exports[fmt].model_files] + [ml_exports["bundle"].zip_path]
    for source in sources:
        capsys.readouterr()
        assert cli.main(["predict", str(source), *photos, "--json"]) == 0, source
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [sorted(item["label"] for item in row["labels"]) for row in rows] == expected, source
    hub = json.loads((ml_exports["torchscript"].folder / "timm" / "config.json").read_text())["transfer_studio"]
    assert hub["task"] == "multi-label" and hub["thresholds"] == reference.thresholds   # the timm / Hub folder too


def test_predict_py_prints_each_label_at_or_above_its_threshold(ml_exports, multilabel_run, tmp_path):
    photos, _ = validation(multilabel_run)
    reference = Predictor(model_path(multilabel_run))
    answers = list(reference.predict_each(photos, top_k=3))
    script = ml_exports["bundle"].folder / "predict.py"   # runs the bundle's ONNX copy, numpy and onnxruntime only
    result = fresh_python(RUN_SCRIPT.format(argv=[str(script), *photos, "--json"]), NOT_NEEDED + ["torch"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["image"] for row in rows] == photos
    for row, answer in zip(rows, answers):
        assert {item["label"] for item in row["labels"]} == {label for label, _ in answer.labels}, (row, answer)
        for item in row["labels"]:
            assert abs(item["probability"] - dict(answer.labels)[item["label"]]) < 1e-3
        assert len(row["predictions"]) == 3   # every label's score, likeliest first, beside the decision
        assert [item["probability"] for item in row["predictions"]] == sorted(
            (item["probability"] for item in row["predictions"]), reverse=True)

    # the TorchScript export's predict.py, torch alone, in words: the labels given, then the near-misses
    script = ml_exports["torchscript"].folder / "predict.py"
    result = fresh_python(RUN_SCRIPT.format(argv=[str(script), *photos[:4]]), NOT_NEEDED + ["onnxruntime"], tmp_path)
    assert result.returncode == 0, result.stderr
    for line, photo, answer in zip(result.stdout.splitlines(), photos, answers):
        said, _, near = line.removeprefix(f"{photo}: ").partition(" (below threshold: ")
        given = {part.rsplit(" ", 1)[0] for part in said.split(", ")} - {"none of the labels"}
        assert given == {label for label, _ in answer.labels}, (line, answer)
        below = {part.rsplit(" ", 1)[0] for part in near.rstrip(")").split(", ") if part}
        assert below == {label for label, _ in answer.near}, (line, answer)


def _described_as(source: Path, target: Path, **changes) -> Path:
    """A copy of an ONNX export whose description says something else (a field set to None is removed)."""
    shutil.copyfile(source, target)
    meta = runtimes.OnnxModel(target).meta
    meta.update(changes)
    converters.describe_onnx(target, {k: v for k, v in meta.items() if v is not None})
    return target


def _perturbed(model_file: Path, target: Path) -> Path:
    """The model file with one label's output moved (its bias raised by 3), its description kept."""
    model, meta = modelfile.load(model_file)
    with torch.no_grad():
        model.get_classifier().bias[1] += 3.0
    modelfile.save(model, target, meta["backbone"], meta["classes"], meta["preprocessing"], meta.get("summary"),
                   task=meta["task"])
    modelfile.update_metadata(target, calibration=meta["calibration"], thresholds=meta["thresholds"])
    return target


def test_parity_flags_an_export_that_decides_otherwise(ml_exports, multilabel_run, tmp_path):
    """Thresholds, temperature, task or weights changed in an export: the check must say it differs."""
    trained = model_path(multilabel_run)
    meta = modelfile.read_metadata(trained)
    onnx_file = ml_exports["bundle"].folder / "model.onnx"
    broken = {
        "thresholds": _described_as(onnx_file, tmp_path / "thresholds.onnx", thresholds=[0.999] * 3),
        "temperature": _described_as(onnx_file, tmp_path / "temperature.onnx",
                                     calibration={**meta["calibration"], "temperature": 3.0}),
        "task": _described_as(onnx_file, tmp_path / "task.onnx", task=None, thresholds=None),
        "weights": _perturbed(trained, tmp_path / "weights.safetensors"),
    }
    photos = parity.validation_photos(Path(multilabel_run["run_dir"]), meta)
    report = parity.check(trained, [onnx_file, *broken.values()], photos)
    rows = {row["file"]: row for row in report["exports"]}
    assert rows["model.onnx"]["ok"] is True and not report["ok"]
    for why, path in broken.items():
        row = rows[path.name]
        assert row["ok"] is False, (why, row)
        assert "Check it before you use it" in row["verdict"] or "Export it again" in row["verdict"], row
    assert rows["thresholds.onnx"]["decisions_agree"] < rows["thresholds.onnx"]["decisions"]
    assert rows["temperature.onnx"]["max_probability_difference"] > parity.FLOAT_MAX_DIFFERENCE
    assert "single-label" in rows["task.onnx"]["verdict"]
    assert rows["weights.safetensors"]["decisions_agree"] < rows["weights.safetensors"]["decisions"]
    assert parity.table_markdown(report).count(" ⚠ |") == len(broken)


def test_the_card_describes_a_multi_label_model(ml_exports, multilabel_run):
    import yaml

    run_dir = Path(multilabel_run["run_dir"])
    meta = modelfile.read_metadata(model_path(multilabel_run))
    figures = decide.read(run_dir)
    text = (ml_exports["bundle"].folder / "README.md").read_text()
    front, card = yaml.safe_load(text.split("---\n")[1]), text.split("---\n", 2)[2]
    assert "multi-label-classification" in front["tags"]
    assert front["model-index"][0]["results"][0]["metrics"][:3] == [
        {"type": "map", "name": "validation mAP", "value": figures["map"]},
        {"type": "f1", "name": "validation micro-F1", "value": figures["micro_f1"]},
        {"type": "f1", "name": "validation macro-F1", "value": figures["macro_f1"]}]
    assert "multi-label image classifier" in card and "answers yes or no for each of 3 labels" in card
    for label, threshold in zip(meta["classes"], meta["thresholds"]):
        assert f"| {label} | {threshold:.3f} |" in card   # the thresholds table
    assert f"mAP **{figures['map']:.3f}**" in card and f"micro-F1 **{figures['micro_f1']:.3f}**" in card
    assert "| label | threshold | precision | recall | F1 | photos with it | ROC AUC | AP |" in card
    for row in figures["per_label"]:
        assert f"| {row['label']} | {figures['thresholds'][row['label']]:.3f} | {row['precision']:.2f} |" in card
    # photos per label, a photo counted once for each of its labels
    counted = {split: [label for _, label in history.run_samples(run_dir, split)] for split in ("train", "val")}
    for name in meta["classes"]:
        row = [name, *(str(sum(name in cell.split(";") for cell in counted[split])) for split in ("train", "val"))]
        assert "| " + " | ".join(row) + " |" in card, row
    assert f"| **photos** | {len(counted['train'])} | {len(counted['val'])} |" in card
    assert "labels per photo on average" in card   # the multi-label data check ran on these photos
    assert "Too few validation images" not in card  # counted per label, not per ';'-joined cell
    assert "Micro-F1 | Every label right |" in card and parity.MULTILABEL_TOLERANCE_WORDS in card
    for wrong in ("Confusion matrix", "highest probability is its answer", "always answers with one of these",
                  "Accuracy **", "below 60% probability"):
        assert wrong not in card, wrong


def test_onnx_files_tell_other_tools_they_are_multi_label(ml_exports, multilabel_run):
    import onnx

    meta = modelfile.read_metadata(model_path(multilabel_run))
    for path in (ml_exports["bundle"].folder / "model.onnx", *ml_exports["onnx-uint8"].model_files,
                 *ml_exports["onnx-int8"].model_files):
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["multi_label"] == "true" and props["activation"] == "sigmoid", path
        assert json.loads(props["thresholds"]) == meta["thresholds"]
        assert json.loads(props["transfer_studio"])["task"] == "multi-label"


def test_tflite_exports_decide_label_by_label(multilabel_run, litert_converter, tmp_path):
    """TFLite (float): LiteRT's file decides every label as the trained model does, in the studio and in
    predict.py with the LiteRT runtime alone."""
    result = bundle.export_run(multilabel_run["run_dir"], "tflite", tmp_path / "tflite", check_data=False)
    row = result.parity["exports"][0]
    assert row["ok"] is True and row["decisions_agree"] == row["decisions"] == 36, row
    photos, _ = validation(multilabel_run)
    answers = list(Predictor(model_path(multilabel_run)).predict_each(photos[:4]))
    run = fresh_python(RUN_SCRIPT.format(argv=[str(result.folder / "predict.py"), *photos[:4], "--json"]),
                       NOT_NEEDED + ["onnxruntime", "torch"], tmp_path)
    assert run.returncode == 0, run.stderr
    for line, answer in zip(run.stdout.splitlines(), answers):
        assert {item["label"] for item in json.loads(line)["labels"]} == {label for label, _ in answer.labels}
