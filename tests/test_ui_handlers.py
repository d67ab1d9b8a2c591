"""UI handlers called as Gradio calls them, without a browser."""
import zipfile
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from components import data_step, export_step, model_step, train_step, try_step, views
from studio import backbones
from studio.inference import Predictor
from studio.runs import JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


def test_example_data_is_described():
    out = data_step.use_example()
    source, summary, chart, gallery, skipped = (out[name] for name in ("data_source", "summary", "chart", "gallery",
                                                                       "skipped"))
    findings, report, paths, uploaded = out["findings"], out["report"], out["paths"], out["uploaded"]
    assert source == {"source": uploaded, "prefix_separator": None}
    assert "no problems found" in findings and paths == {}
    assert '"trainable": true' in open(report).read()
    assert source and "2 classes" in summary and "398" in summary
    assert set(chart["class"]) == {"ants", "bees"} and chart.images.sum() == 398
    assert {caption for _, caption in gallery} == {"ants", "bees"}
    assert list(skipped.columns) == ["path", "reason"]


def test_upload_zip_and_wrong_file(small_dataset, tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in small_dataset.rglob("*.jpg"):
            zf.write(file, "wrapped/" + str(file.relative_to(small_dataset)))
    out = data_step.use_upload(str(archive))
    assert out["data_source"] and "68 images" in out["summary"]
    out = data_step.use_upload(str(tmp_path / "notes.txt"))
    assert out["data_source"] is None and ".zip" in out["summary"]
    out = data_step.use_upload(None)
    assert out["data_source"] is None


def test_freeze_explanation_follows_the_slider():
    total = backbones.freeze_choices("mobilenetv2_100")["total_groups"]
    head_only = model_step.freeze_explanation("mobilenetv2_100", total)
    everything = model_step.freeze_explanation("mobilenetv2_100", 0)
    assert "Feature extraction" in head_only and "Full fine-tuning" in everything
    assert "(100.0%)" in everything
    shown = model_step.on_backbone_change("tf_efficientnet_lite0")
    assert "EfficientNet-Lite0" in shown["details"] and "Feature extraction" in shown["explanation"]
    shown = model_step.on_backbone_change("tf_efficientnet_lite0", "auto")
    assert shown["explanation"] == model_step.AUTO_WORDS
    shown = model_step.on_mode_change("mobilenetv2_100", "manual", 3)
    assert shown["freeze"].visible is True and "Trains" in shown["explanation"]
    labels = dict((value, label) for label, value in model_step.backbone_choices())
    assert "offline" in labels["mobilenetv2_100"]


def test_train_handlers_without_data_or_model():
    message = train_step.start(None, "mobilenetv2_100", "manual", 8, 2, "Auto", 32, runner=RUNNER)["status"]
    assert "Choose data first" in message
    assert train_step.freeze_argument("mobilenetv2_100", 8) == "all"
    assert train_step.freeze_argument("mobilenetv2_100", 3) == "3"


def test_views_escape_user_text_and_shape_curves():
    html = views.confusion_html([[3, 1], [0, 4]], ["<script>x</script>", "b"])
    assert "<script>" not in html and "&lt;script&gt;" in html
    frame = views.curves([{"epoch": 1, "train_loss": 1.0, "val_loss": 0.8, "train_accuracy": 0.5,
                           "val_accuracy": 0.6}], "accuracy")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2 and set(frame.series) == {"train", "validation"}
    assert list(frame.epoch) == ["1", "1"]  # short runs: epochs as labels, one whole-number tick each
    long_run = [{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_accuracy": 0.5, "val_accuracy": 0.5}
                for e in range(1, views.EPOCH_LABELS_UP_TO + 2)]
    assert views.curves(long_run, "loss").epoch.dtype == "int64"  # long runs: numbers (Vega's ticks are whole)
    assert "No training yet" in views.status_line(None)
    epoch = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.4, "train_accuracy": 0.8, "val_accuracy": 0.9}
    # the moment between an epoch being recorded and being kept as the best: no best yet
    running = {"status": "running", "history": [epoch], "epochs": 3, "best_val_accuracy": None, "phase": ""}
    assert views.status_line(running) == "**Training.** Epoch 1 of 3, validation accuracy 90%, still improving."
    later = {**running, "history": [epoch, {**epoch, "epoch": 2, "val_accuracy": 0.8}], "best_val_accuracy": 0.9}
    assert "Epoch 2 of 3, validation accuracy 80%, best so far 90%" in views.status_line(later)
    assert "no model" in views.status_line({**running, "status": "finished", "history": []})


@pytest.mark.slow
def test_try_and_export_with_a_trained_run(trained_run):
    from PIL import Image
    from helpers import example_files
    image = Image.open(example_files("val", "bees", 30)[-1])
    answer = try_step.classify(image, trained_run["run_dir"], runner=RUNNER)
    label, advice = answer["label"], answer["advice"]
    assert set(label) == {"ants", "bees"} and abs(sum(label.values()) - 1) < 1e-4
    assert "bees" in advice or "unsure" in advice
    exported = export_step.export_model("torchscript", trained_run["run_dir"], runner=RUNNER)
    path, message = exported["file"], exported["message"]
    assert path.endswith("-torchscript.zip") and "Ready: " in message
    assert "matches the trained model on 20/20 validation photos" in message and "| model.torchscript.pt |" in message
    assert export_step.format_key("TorchScript (.pt: runs with PyTorch alone)") == "bundle"  # unknown: default
    assert Predictor(path).format == "torchscript"
    label = try_step.classify(None, trained_run["run_dir"], runner=RUNNER)["label"]
    assert label is None


def test_data_step_shows_findings_and_their_files(tmp_path):
    import test_doctor
    root = test_doctor.build_corpus(tmp_path / "flawed")
    out = data_step.describe(str(root))
    source, findings, picker, leave_out = out["data_source"], out["findings"], out["picker"], out["leave_out"]
    paths, finding_list = out["paths"], out["findings_state"]
    assert {f["kind"] for f in finding_list} >= {"exact_duplicates", "train_val_leak"}
    assert source and "Problem:" in findings and "train val leak" in findings
    assert picker.value not in data_step.UNVIEWABLE and picker.value in paths
    assert set(leave_out.value) == {"exact_duplicates", "train_val_leak"}
    thumbnails = data_step.finding_gallery("train_val_leak", paths)
    assert sorted(caption for _, caption in thumbnails) == ["ants/a2.jpg", "ants/resized a2.jpg"]
    assert data_step.finding_gallery(None, paths) == []


@pytest.mark.slow
def test_flat_zip_with_class_in_file_names_is_previewed_then_used(tmp_path):
    from helpers import example_files
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for label in ("ants", "bees"):
            for i, file in enumerate(example_files("train", label, 12)):
                zf.write(file, f"photos/{label}-{i:03d}.jpg")
        zf.writestr("photos/README.txt", "not an image")
    out = data_step.use_upload(str(archive))
    source, summary, uploaded = out["data_source"], out["summary"], out["uploaded"]
    assert source is None and "one folder" in summary and uploaded == str(archive)
    preview = data_step.preview_prefix(uploaded, "-")
    table, note = preview["prefix_table"], preview["prefix_note"]
    assert list(table["class"][:2]) == ["ants", "ants"] and "**2 classes**: ants (12), bees (12)" in note
    note = data_step.preview_prefix(uploaded, "+")["prefix_note"]
    assert "No classes" in note
    out = data_step.use_prefix(uploaded, "-")
    source, summary, chart = out["data_source"], out["summary"], out["chart"]
    assert source["prefix_separator"] == "-" and "2 classes" in summary and chart.images.sum() == 24
    train_step.start(source, "mobilenetv2_100", "manual", 100, 1, "Auto", 32, [], runner=RUNNER)
    RUNNER.wait()
    snapshot = RUNNER.current.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert snapshot["classes"] == ["ants", "bees"] and snapshot["dataset"]["train"] + snapshot["dataset"]["val"] == 24


@pytest.mark.slow
def test_outlier_suggestion_is_added_and_its_files_left_out_only_when_ticked(small_dataset):
    example = data_step.use_example()
    source, finding_list = example["data_source"], example["findings_state"]
    out = data_step.look_for_outliers(source, finding_list, [])
    note, markdown, leave_out, paths = out["outlier_note"], out["findings"], out["leave_out"], out["paths"]
    assert any(p.endswith("imageNotFound.gif") for p in paths["outliers"]), note
    assert "outliers" in markdown and "Suggestion" in markdown
    assert ("Pictures that don't look like their class (suggestion)", "outliers") in leave_out.choices
    assert "outliers" not in leave_out.value  # a suggestion is never applied unasked

    # training leaves out exactly the files the page showed, when ticked
    import pandas as pd
    victim = sorted((small_dataset / "train" / "ants").iterdir())[0]
    shown = [{"kind": "outliers", "severity": "info", "message": "", "paths": [str(victim)], "exclude": [str(victim)]}]
    assert train_step._chosen_files([], shown, ("outliers",)) == {}
    train_step.start(str(small_dataset), "mobilenetv2_100", "manual", 100, 1, "Auto", 32, ["outliers"], shown,
                     runner=RUNNER)
    RUNNER.wait()
    snapshot = RUNNER.current.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    used = pd.read_csv(Path(snapshot["run_dir"]) / "samples.csv").path.tolist()
    assert str(victim) not in used and len(used) == 67
    assert {"path": str(victim), "reason": "left out: outliers"} in snapshot["dataset"]["skipped"]


@pytest.mark.slow
def test_auto_run_shows_what_it_chose_and_why(small_dataset):
    started = train_step.start(str(small_dataset), "mobilenetv2_100", "auto", 0, 1, "Auto", "auto", [], runner=RUNNER)
    message, run_dir = started["status"], started["run_dir"]
    assert run_dir and "Starting" in message
    RUNNER.wait()
    outputs = train_step.poll(None, runner=RUNNER)
    status, choices = outputs["status"], outputs["choices"]
    assert status.startswith("**Finished"), status
    assert "What the studio chose" in choices and "layer groups trained" in choices and "learning rate" in choices
    assert RUNNER.current.snapshot()["freeze"]["feature_extraction"] is False  # the top was fine-tuned
    assert RUNNER.current.snapshot()["config"]["batch_size"] == 32 and "photos per training step" in choices


@pytest.mark.slow
def test_advanced_settings_reach_the_run(small_dataset):
    train_step.start(str(small_dataset), "mobilenetv2_100", "manual", 8, 2, "0.01", 16, [], [],
                     0.05, 0.0, 0, False, "off", "adapt", 5.0, runner=RUNNER)
    RUNNER.wait()
    config = RUNNER.current.snapshot()["config"]
    assert RUNNER.current.snapshot()["status"] == "finished"
    assert (config["weight_decay"], config["label_smoothing"], config["patience"], config["augment"],
            config["class_weighting"], config["batchnorm"], config["seed"], config["lr"], config["batch_size"]) == (
        0.05, 0.0, 0, False, "off", "adapt", 5, 0.01, 16)


@pytest.mark.slow
def test_the_once_a_second_tick_sends_plain_text_only(trained_run):
    """Gradio rebuilds a component for every update it is sent (gr.skip() included): the tick that ten
    open pages send every second must carry none, and its key must change only with new results."""
    tick = train_step.watch(runner=RUNNER)
    status, progress, key = tick["status"], tick["progress"], tick["run_key"]
    for value in (status, progress, key):
        assert not isinstance(value, dict), value
    assert status.startswith("**Finished") and key == train_step.run_key(RUNNER.current.snapshot())
    assert train_step.watch(runner=RUNNER)["run_key"] == key  # nothing new: the heavy refresh is not triggered again


@pytest.mark.slow
def test_each_step_shows_only_what_applies(trained_run):
    """Parts with nothing in them are hidden (in the page, so a chart keeps its element): the Data step's
    overview, checks and report until data is chosen, the Train step's results until an epoch has
    finished and Stop while nothing trains, Try it and Export's controls until there is a model."""
    def shown(part):  # rows and columns are hidden by a class, components by visible="hidden"
        return views.HIDDEN not in part.elem_classes if isinstance(part, (gr.Row, gr.Column)) else part.visible is True

    parts = data_step.show_what_applies(None, None, {}, [], data_step._skipped(None), None)
    assert {name: shown(part) for name, part in parts.items()} == dict.fromkeys(
        ["overview", "skipped", "checks", "picker", "leave_out", "report", "finding_files"], False)
    chosen = data_step.show_what_applies({"source": "x"}, None, {}, [], data_step._skipped(None), "/r.json")
    assert {name: shown(part) for name, part in chosen.items()} == {
        "overview": True, "skipped": False, "checks": True, "picker": False, "leave_out": False, "report": True,
        "finding_files": False}
    skipped = data_step._skipped([{"path": "a.txt", "reason": "not an image"}])
    assert shown(data_step.show_what_applies({"source": "x"}, None, {}, [], skipped, None)["skipped"])
    def stop_and_results(key):
        parts = train_step.layout(key)
        return [shown(parts["stop"]), shown(parts["results"])]
    assert stop_and_results(None) == [False, False]
    assert stop_and_results(["run", 0, "preparing", 0]) == [True, False]
    assert stop_and_results(["run", 2, "finished", 3]) == [False, True]
    parts = try_step.readiness(trained_run["run_dir"], runner=RUNNER)  # before a model: see test_browser_layout.py
    note, ready = parts["no_model"], parts["ready"]
    assert not shown(note) and shown(ready)
    parts = export_step.readiness(trained_run["run_dir"], runner=RUNNER)
    words, options = parts["target"], parts["ready"]
    assert words == export_step.target_words(trained_run["run_dir"]) and shown(options)


def test_a_big_confusion_matrix_is_compact_and_says_it_scrolls():
    names = [f"kind {k}" for k in range(30)]
    big = views.confusion_html([[1] * 30 for _ in names], names, clickable=True)
    assert "ts-confusion-compact" in big and "Scroll inside the matrix to see all 30 classes" in big
    assert "title='kind 29'" in big  # a header cut short keeps its full name as a tooltip
    small = views.confusion_html([[3, 1], [0, 4]], ["a", "b"])
    assert "compact" not in small and "Scroll" not in small
