"""Several labels per photo on the page's handlers, without a browser: the Data step's words, check and Kind of task
switch, the Train step's live view, the Runs view's words, per-label table and each label's mistakes, and Try
it's labels, on the real multi-label data and run (tests/conftest.py: multilabel_dataset, multilabel_run)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from PIL import Image

from components import data_step, model_step, multilabel_view, runs_step, train_step, try_step, views
from studio import paths
from studio.inference import Prediction
from studio.runs import JobRunner

RUNNER = JobRunner()


def shown(part) -> bool:
    """Shown on the page: a component by visible=True, a layout by not having the hiding class."""
    if isinstance(part, (gr.Row, gr.Column, gr.Accordion)):
        return views.HIDDEN not in (part.elem_classes or [])
    return part.visible is True


# ---- Data step -------------------------------------------------------------------------------------------

def test_data_step_says_multilabel_and_shows_the_check(multilabel_dataset):
    out = data_step.describe(str(multilabel_dataset))
    source, summary = out["data_source"], out["summary"]
    assert source == {"source": str(multilabel_dataset), "prefix_separator": None, "multilabel": True}
    assert "Several labels per photo: a multi-label task (3 labels, 60 photos)" in summary
    assert "labels per photo on average" in summary   # the check's words (its "always together": test_multilabel)
    assert "| label | train | val | note |" in summary and "| grey |" in summary   # photos per label
    assert set(out["chart"]["class"]) == {"ants", "bees", "grey"}
    captions = {caption for _, caption in out["gallery"]}
    assert "ants + bees + grey" in captions or "ants + bees" in captions   # each photo with all of its labels
    task = data_step.show_task(source)
    assert shown(task["task"]) and task["task"].value == "auto" and "several labels per photo" in task["task_note"]
    assert task["chart"].title.startswith("Photos per label")
    assert not shown(data_step.show_task(None)["task"])


def test_switching_the_kind_of_task_goes_to_training_or_is_refused_in_words(multilabel_dataset):
    source = data_step.describe(str(multilabel_dataset))["data_source"]
    refused = data_step.switch_task(source, "single-label")
    assert set(refused) == {"task", "task_note"}   # the data stays as it was
    assert refused["task"].value == "auto" and "Not switched to one class per photo" in refused["task_note"]
    assert "have several labels" in refused["task_note"] and "Traceback" not in refused["task_note"]

    asked = data_step.switch_task({**source, "unlabeled": "/some/photos"}, "multi-label")
    chosen = asked["data_source"]
    assert chosen["task"] == "multi-label" and chosen["multilabel"] and chosen["unlabeled"] == "/some/photos"
    assert "as you chose" in asked["task_note"] and "multi-label task" in asked["summary"]
    config = train_step.page_config(chosen, "mobilenetv2_100", "manual", 100, 2, "Auto", "auto")
    assert config.task == "multi-label"
    assert train_step.page_config(source, "mobilenetv2_100", "manual", 100, 2, "Auto", "auto").task == "auto"

    example = data_step.use_example()["data_source"]
    refused = data_step.switch_task(example, "multi-label")
    assert "Not switched to several labels per photo" in refused["task_note"] and "labels CSV" in refused["task_note"]
    assert data_step.show_task(example)["task_note"].startswith("Auto reads this data as **one class per photo**")


def test_tools_for_one_class_per_photo_say_so_for_several_labels(multilabel_dataset):
    source = data_step.describe(str(multilabel_dataset))["data_source"]
    assert model_step.suggest_backbone(source, runner=RUNNER)["advice"] == model_step.MULTILABEL_ADVICE
    assert "several labels per photo" in train_step.suggest_lr(source, "mobilenetv2_100", "auto", 0,
                                                                 runner=RUNNER)["suggestion"]


# ---- Train step ------------------------------------------------------------------------------------------

@pytest.mark.slow   # the real multi-label run
def test_the_live_view_draws_map_and_f1_and_a_per_label_table(multilabel_run):
    key = train_step.run_key(multilabel_run)
    out = train_step._multilabel_poll(multilabel_run, key, "status", "progress")
    assert set(out) == set(train_step.POLLED)
    scores, table = out["scores"], out["per_class"]
    assert set(scores.series) == {"mAP", "micro-F1", "macro-F1"} and len(scores) == 3 * len(multilabel_run["history"])
    assert list(table.columns[:5]) == ["label", "precision", "recall", "f1", "support"] and "auc" in table.columns
    assert list(table.label) == ["ants", "bees", "grey"]
    assert out["seen"]["multilabel"] is True
    parts = train_step.layout(key, out["seen"])
    assert shown(parts["scores"]) and not shown(parts["accuracy"]) and not shown(parts["confusion"])
    assert shown(parts["per_class"]) and not shown(parts["photos_box"])
    assert parts["per_class"].label.startswith("Per-label results")
    single = train_step.layout(key, {"key": key})
    assert shown(single["accuracy"]) and not shown(single["scores"]) and shown(single["confusion"])


@pytest.mark.slow   # the real multi-label run
def test_status_line_speaks_of_map_never_of_accuracy(multilabel_run):
    finished = views.status_line(multilabel_run)
    assert finished.startswith("**Finished.** Best validation mAP ") and "Runs** shows each label" in finished
    running = {**multilabel_run, "status": "running", "advice": None}
    line = views.status_line(running)
    assert "validation mAP" in line and "every label right on" in line and "accuracy" not in line
    stopped = views.status_line({**multilabel_run, "status": "stopped"})
    assert "The best model so far (mAP" in stopped


# ---- Runs view -------------------------------------------------------------------------------------------

def run_id(snapshot: dict) -> str:
    return snapshot["run_dir"].rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.slow   # the real multi-label run
def test_runs_view_shows_a_multilabel_run_in_its_own_words(multilabel_run):
    rid = run_id(multilabel_run)
    listed = runs_step.list_runs(rid, runner=RUNNER)
    line = listed["table"].set_index("Run").loc[rid]
    assert line["Best accuracy"].startswith("mAP 0.")   # never the share with every label right as "accuracy"
    assert any(label.endswith("(finished)") and ", mAP 0." in label for label, _ in listed["run"].choices)

    shown_run = runs_step.show_run(rid, runner=RUNNER)
    summary = shown_run["summary"]
    for words in ("several labels per photo, best validation mAP", "micro-F1", "macro-F1", "Every label right on",
                  "Thresholds", "ants 0.", "bees 0.", "grey 0."):
        assert words in summary, words
    assert "balanced accuracy" not in summary

    labels = runs_step.show_labels(rid)
    table = labels["label_table"]
    assert list(table.columns) == ["label", "threshold", "precision", "recall", "f1", "support", "auc", "ap"]
    assert list(table.label) == ["ants", "bees", "grey"] and table.threshold.between(0, 1).all()
    assert set(labels["scores"].series) == {"mAP", "micro-F1", "macro-F1"}
    assert labels["label"].choices == [("ants", "ants"), ("bees", "bees"), ("grey", "grey")]
    parts = runs_step.run_layout(rid)
    assert shown(parts["scores"]) and shown(parts["multilabel"]) and not shown(parts["accuracy"])
    assert not shown(parts["row"]) and not shown(parts["photos_box"]) and not shown(parts["wrong_folder"])
    photos = runs_step.run_photos(rid)   # the confusion matrix's photo browser has nothing to show
    assert photos["cell_gallery"] == [] and "per label" in photos["mistakes_note"]


@pytest.mark.slow   # the real multi-label run
def test_a_labels_mistakes_are_the_engines_surest_first(multilabel_run):
    folder = multilabel_run["run_dir"]
    table, labels = multilabel_view._answers(folder)
    thresholds = multilabel_view.thresholds_of(folder, labels)
    figures = json.loads((Path(folder) / "multilabel.json").read_text())
    assert thresholds == pytest.approx(figures["thresholds"])
    for name in labels:
        found = multilabel_view.mistakes(table, labels, name, thresholds, limit=1000)
        said_wrongly, missed, having = found["counts"]
        scores, has = table["p:" + name], pd.Series([name in cell.split(";") for cell in table.label])
        assert said_wrongly == int(((scores >= thresholds[name]) & ~has).sum())
        assert missed == int(((scores < thresholds[name]) & has).sum()) and having == int(has.sum())
        assert list(found["false_positives"].score) == sorted(found["false_positives"].score, reverse=True)
        assert list(found["false_negatives"].score) == sorted(found["false_negatives"].score)
        shown_photos = multilabel_view.label_photos(folder, name)
        assert f"**{name}** (threshold {thresholds[name]:.2f})" in shown_photos["label_note"]
        assert len(shown_photos["false_positives"]) == min(said_wrongly, multilabel_view.MISTAKES_SHOWN)
        for _, caption in shown_photos["false_positives"] + shown_photos["false_negatives"]:
            assert caption.startswith("scored ") and " · has: " in caption
    assert multilabel_view.label_photos(folder, None)["label_note"] == multilabel_view.PICK_LABEL
    assert multilabel_view.label_photos(None, "ants")["false_positives"] == []


@pytest.mark.slow   # the real multi-label run
def test_clicking_a_row_picks_its_label(multilabel_run):
    table = runs_step.show_labels(run_id(multilabel_run))["label_table"]
    event = gr.SelectData(None, {"index": [1, 4], "value": 8, "row_value": list(table.iloc[1])})
    assert multilabel_view.pick_row(table, event) == {"label": "bees"}


@pytest.mark.slow   # the real multi-label run
def test_comparing_runs_draws_map_and_refuses_accuracy_against_map(multilabel_run):
    rid = run_id(multilabel_run)
    copies = {}
    for name, task in (("again", "multi-label"), ("single", "single-label")):
        target = paths.runs_dir() / f"{rid}-{name}"
        shutil.copytree(multilabel_run["run_dir"], target)
        status = json.loads((target / "status.json").read_text())
        (target / "status.json").write_text(json.dumps({**status, "task": task, "started": status["started"] + 60}))
        copies[name] = target
    try:
        both = runs_step.compare_runs(rid, copies["again"].name, runner=RUNNER)
        chart = both["compare"]
        assert isinstance(chart, pd.DataFrame) and "Validation mAP per epoch" in both["compare_note"]
        assert chart.value.tolist()[:1] == [multilabel_run["history"][0]["val_map"]]
        assert runs_step.compare_titles(rid, copies["again"].name).y_title == "validation mAP"
        mixed = runs_step.compare_runs(rid, copies["single"].name, runner=RUNNER)
        assert mixed["compare"] is None and "not drawn on one chart" in mixed["compare_note"]
    finally:
        for target in copies.values():
            shutil.rmtree(target, ignore_errors=True)


# ---- Try it ----------------------------------------------------------------------------------------------

@pytest.mark.slow   # the real multi-label run
def test_try_it_lists_every_label_above_its_threshold_and_the_near_misses(multilabel_run, multilabel_dataset):
    photo = Image.open(multilabel_dataset / "images" / "both1.jpg")
    out = try_step.classify(photo, multilabel_run["run_dir"], runner=RUNNER)
    advice = out["advice"]
    assert out["label"] is None   # no one-answer box for several labels
    assert "**Found** (each at or above its own threshold):" in advice and "(its threshold " in advice
    assert try_step.where_it_looked(photo, multilabel_run["run_dir"], runner=RUNNER)["heatmap_note"].startswith(
        "Where the model looked for **")

    thresholds = {"ants": 0.6, "bees": 0.3, "grey": 0.5}
    found = Prediction(None, top=[], labels=[("ants", 0.9)], near=[("grey", 0.4)],
                       familiarity={"shift": 1.0, "percentile": 0.5, "unfamiliar": False})
    words = try_step.labels_advice(found, thresholds)
    assert words.startswith("**The model finds 1 label:** ants.") and "looks like your training photos" in words
    assert "- **ants** 90% (its threshold 60%)" in words
    assert "**Below threshold**" in words and "- **grey** 40% (its threshold 50%)" in words
    nothing = try_step.labels_advice(Prediction(None, labels=[], near=[("bees", 0.2)]), thresholds)
    assert nothing.startswith("**No label reached its threshold:**") and "**Found**" not in nothing
    odd = Prediction(None, labels=[("ants", 0.7)], near=[],
                     familiarity={"shift": 3.0, "percentile": 0.999, "unfamiliar": True})
    assert try_step.labels_advice(odd, thresholds).startswith("**Maybe none of these, so the model is unsure:**")
