"""The Runs tab's handlers, called as Gradio calls them, on real runs in the studio's runs folder."""
import json
import shutil
from operator import itemgetter

import pandas as pd
import pytest
from PIL import Image

from components import export_step, runs_step, session, try_step
from helpers import example_files, free_port
from studio import paths
from studio.runs import MODEL_FILE, JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


pytestmark = pytest.mark.slow  # every test uses the trained run or trains one

# the handlers' answers by name, in the order the tests read them
LISTED = itemgetter("table", "run", "other")
SHOWN = itemgetter("summary", "loss", "accuracy", "confusion", "per_class", "choices")
COMPARED = itemgetter("compare", "compare_note")
USED = itemgetter("run_dir", "tabs", "use_message")
RESUMED = itemgetter("tabs", "use_message")


@pytest.fixture()
def past_runs(trained_run):
    """Copies of the real run in the studio's own runs folder: one cut off by a restart, one without a model."""
    made = {}
    for name, status, keep_model in (("interrupted", "running", True), ("no-model", "preparing", False)):
        target = paths.runs_dir() / f"{trained_run['id']}-{name}"
        shutil.copytree(trained_run["run_dir"], target)
        status_file = target / "status.json"
        status_file.write_text(json.dumps({**json.loads(status_file.read_text()), "status": status,
                                           "finished": None}))
        if not keep_model:
            (target / MODEL_FILE).unlink()
        made[name] = target.name
    yield made
    for name in made.values():
        shutil.rmtree(paths.runs_dir() / name, ignore_errors=True)


def test_list_runs_fills_the_table_and_both_dropdowns(trained_run, past_runs):
    table, picker, other = LISTED(runs_step.list_runs(runner=RUNNER))
    assert list(table.columns) == ["Started", "Data", "Backbone", "Freeze", "Best accuracy", "Duration",
                                   "Status", "Run"]
    lines = table.set_index("Run")
    assert lines.loc[trained_run["id"], "Status"] == "Finished"
    assert lines.loc[past_runs["interrupted"], "Status"].startswith("Interrupted")
    assert lines.loc[trained_run["id"], "Best accuracy"] == f"{trained_run['best_val_accuracy']:.1%}"
    ids = [value for _, value in picker.choices]
    newest_readable = table[table.Status != "Damaged (files unreadable)"].Run.iloc[0]
    assert set(ids) == set(table.Run) and picker.value == newest_readable  # newest first, newest chosen
    assert list(table.Started) == sorted(table.Started, reverse=True)
    assert other.choices[0] == runs_step.NO_COMPARISON and other.value == ""
    _, picker, other = LISTED(runs_step.list_runs(trained_run["id"], past_runs["interrupted"], runner=RUNNER))
    assert (picker.value, other.value) == (trained_run["id"], past_runs["interrupted"])
    _, picker, other = LISTED(runs_step.list_runs("deleted-run", "deleted-too", runner=RUNNER))
    assert picker.value == ids[0] and other.value == ""


def test_show_run_draws_curves_matrix_and_choices(trained_run, past_runs):
    summary, loss, accuracy, confusion, per_class, choices = SHOWN(runs_step.show_run(trained_run["id"], runner=RUNNER))
    epochs = len(trained_run["history"])
    assert "Finished" in summary and "mobilenetv2_100" in summary and "new head only" in summary
    assert "balanced accuracy" in summary and "macro-F1" in summary and "sensitivity" in summary
    assert isinstance(loss, pd.DataFrame) and len(loss) == 2 * epochs and len(accuracy) == 2 * epochs
    assert set(accuracy.series) == {"train", "validation"}
    assert "ants" in confusion and "bees" in confusion and "<table" in confusion
    assert list(per_class["class"]) == ["ants", "bees"] and 0.5 < per_class["auc"].min() <= 1
    assert "What the studio chose" in choices

    summary = runs_step.show_run(past_runs["interrupted"], runner=RUNNER)["summary"]
    assert "Interrupted" in summary and "still try and export" in summary
    summary, loss, accuracy, *_ = SHOWN(runs_step.show_run(past_runs["no-model"], runner=RUNNER))
    assert "no model" in summary

    summary, loss, accuracy, confusion, per_class, choices = SHOWN(runs_step.show_run(None, runner=RUNNER))
    assert summary == runs_step.PICK_A_RUN and loss is None and accuracy is None and per_class.empty
    summary, loss, *_ = SHOWN(runs_step.show_run("../../etc", runner=RUNNER))
    assert "not a run id" in summary and loss is None


def test_compare_overlays_two_runs_validation_accuracy(trained_run, past_runs):
    chart, note = COMPARED(runs_step.compare_runs(trained_run["id"], past_runs["interrupted"], runner=RUNNER))
    epochs = len(trained_run["history"])
    # the copies started in the same second as the original: the ids name them apart
    assert set(chart.series) == {trained_run["id"], past_runs["interrupted"]} and len(chart) == 2 * epochs
    expected = [h["val_accuracy"] for h in trained_run["history"]]
    assert chart[chart.series == trained_run["id"]].value.tolist() == pytest.approx(expected)
    assert trained_run["id"] in note

    later = paths.runs_dir() / f"{trained_run['id']}-later"
    shutil.copytree(paths.runs_dir() / past_runs["interrupted"], later)
    status = json.loads((later / "status.json").read_text())
    (later / "status.json").write_text(json.dumps({**status, "started": status["started"] + 3600}))
    try:
        chart, note = COMPARED(runs_step.compare_runs(trained_run["id"], later.name, runner=RUNNER))
    finally:
        shutil.rmtree(later)
    names = sorted(set(chart.series))
    assert len(names) == 2 and all(name.startswith("small ") for name in names) and names[0] != names[1]
    assert runs_step.compare_runs(trained_run["id"], "", runner=RUNNER)["compare"] is None
    assert "same run" in runs_step.compare_runs(trained_run["id"], trained_run["id"], runner=RUNNER)["compare_note"]


def test_an_interrupted_run_can_be_tried_and_exported(past_runs):
    run_dir, tabs, message = USED(runs_step.try_run(past_runs["interrupted"]))
    assert tabs.selected == "try" and run_dir == str(paths.runs_dir() / past_runs["interrupted"])
    label = try_step.classify(Image.open(example_files("val", "bees", 30)[-1]), run_dir, runner=RUNNER)["label"]
    assert set(label) == {"ants", "bees"}
    assert session.model_path(run_dir, runner=RUNNER).parent.name == past_runs["interrupted"]

    run_dir, tabs, message = USED(runs_step.export_run(past_runs["interrupted"]))
    assert tabs.selected == "export" and "Export" in message
    exported = export_step.export_model("bundle", run_dir, runner=RUNNER)
    path, message = exported["file"], exported["message"]
    assert path.endswith(f"{past_runs['interrupted']}-bundle.zip") and "Ready: " in message
    assert export_step.target_words(run_dir).endswith(f"**{past_runs['interrupted']}**.")

    run_dir, tabs, message = USED(runs_step.try_run(past_runs["no-model"]))
    assert "no model" in message and not isinstance(run_dir, str)
    assert "Choose a run" in runs_step.try_run(None)["use_message"]


def test_runs_api_through_the_real_server(trained_run, past_runs):
    from gradio_client import Client

    from components.app import launch
    demo, url = launch(port=free_port(), block=False)
    try:
        client = Client(url, verbose=False)
        table, picker, other = client.predict(api_name="/list_runs")
        assert trained_run["id"] in [row[-1] for row in table["data"]]
        summary, loss, accuracy, confusion, per_class, pr_curves, pr_note, choices = client.predict(
            trained_run["id"], api_name="/show_run")
        assert "Finished" in summary and len(accuracy["data"]) == 2 * len(trained_run["history"])
        assert "auc" in per_class["headers"] and "ROC AUC" in pr_note and pr_curves["data"]
        chart, note = client.predict(trained_run["id"], past_runs["interrupted"], api_name="/compare_runs")
        assert len(chart["data"]) == 2 * len(trained_run["history"])
        assert "Using run" in client.predict(past_runs["interrupted"], api_name="/try_run")
    finally:
        demo.close()


def test_resume_carries_on_a_failed_run_and_shows_it_on_the_train_tab(small_dataset):
    """Resume appears only for a run with a saved epoch, continues it in its own folder, and says why not
    when it cannot (a finished run)."""
    from helpers import cut_off_run
    from studio.training.config import TrainConfig

    run = cut_off_run(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=3,
                                  patience=0), saving_epoch=2)
    assert run.snapshot()["status"] == "failed" and "disk is full" in run.snapshot()["error"]
    assert runs_step.can_resume(run.id).visible is True

    tabs, message = RESUMED(runs_step.resume_run(run.id, runner=RUNNER))
    assert tabs.selected == "train" and "Resuming" in message
    RUNNER.wait()
    final = RUNNER.current.snapshot()
    assert final["id"] == run.id and final["status"] == "finished"
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
    assert runs_step.can_resume(run.id).visible is False   # finished: nothing left to carry on

    tabs, message = RESUMED(runs_step.resume_run(run.id, runner=RUNNER))
    assert "Cannot resume" in message and "nothing to resume" in message
    assert "Choose a run" in runs_step.resume_run(None, runner=RUNNER)["use_message"]
