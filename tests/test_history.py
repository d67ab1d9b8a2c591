"""Past runs read back from disk: real trained runs, a run cut off by a restart, a corrupt one."""
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from studio import paths
from studio.runs import history
from studio.runs import MODEL_FILE, JobRunner, RunFolder

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


def copy_run(source: str, root: Path, name: str, **status_changes) -> Path:
    """A copy of a real run folder under `root`, with status.json fields rewritten."""
    target = root / name
    shutil.copytree(source, target)
    status = json.loads((target / "status.json").read_text())
    status.update(status_changes)
    (target / "status.json").write_text(json.dumps(status))
    return target


@pytest.mark.slow
def test_a_finished_run_is_listed_with_its_facts(trained_run, small_dataset, tmp_path):
    copy_run(trained_run["run_dir"], tmp_path, trained_run["id"])
    rows = history.list_runs(tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == trained_run["id"] and row["status"] == "finished"
    assert row["data"] == small_dataset.name and row["backbone"] == "mobilenetv2_100"
    assert row["freeze"] == "new head only"
    assert row["best_val_accuracy"] == pytest.approx(trained_run["best_val_accuracy"])
    assert row["best_epoch"] == trained_run["best_epoch"]
    assert row["duration_seconds"] == pytest.approx(trained_run["finished"] - trained_run["started"])
    assert row["started"] == pytest.approx(trained_run["started"]) and row["has_model"]


@pytest.mark.slow
def test_the_default_root_holds_the_real_run(trained_run):
    rows = {row["id"]: row for row in history.list_runs()}
    assert rows[trained_run["id"]]["status"] == "finished"
    assert Path(rows[trained_run["id"]]["run_dir"]).parent == paths.runs_dir()


@pytest.mark.slow
def test_load_run_gives_history_best_confusion_and_choices(trained_run):
    run = history.load_run(trained_run["id"])
    assert run["classes"] == ["ants", "bees"]
    assert [h["epoch"] for h in run["history"]] == [h["epoch"] for h in trained_run["history"]]
    best = next(h for h in RunFolder(trained_run["run_dir"]).history() if h["epoch"] == trained_run["best_epoch"])
    assert run["confusion"] == best["confusion_matrix"] == trained_run["best_confusion"]
    assert sum(map(sum, run["confusion"])) == 20  # 10 validation photos per class
    assert [r["class"] for r in run["per_class"]] == ["ants", "bees"]
    assert run["choices"] == trained_run["config"]["choices"] and "patience" in run["choices"]


@pytest.mark.slow
def test_a_run_cut_off_by_a_restart_is_interrupted_not_lost(trained_run, tmp_path):
    started = trained_run["started"]
    copy_run(trained_run["run_dir"], tmp_path, "cut-off", status="running", finished=None, started=started + 10)
    copy_run(trained_run["run_dir"], tmp_path, "cut-early", status="preparing", finished=None,
             best_val_accuracy=None, best_epoch=None, started=started + 20)
    (tmp_path / "cut-early" / MODEL_FILE).unlink()
    (tmp_path / "cut-early" / "metrics.jsonl").unlink()
    copy_run(trained_run["run_dir"], tmp_path, "older", started=started - 100)
    rows = history.list_runs(tmp_path)
    assert [r["id"] for r in rows] == ["cut-early", "cut-off", "older"]  # newest first
    cut_early, cut_off, older = rows
    assert cut_off["status"] == "interrupted" and cut_off["has_model"]
    assert cut_off["best_val_accuracy"] == pytest.approx(trained_run["best_val_accuracy"])
    assert cut_off["duration_seconds"] == trained_run["history"][-1]["elapsed_seconds"]
    assert cut_early["status"] == "interrupted" and not cut_early["has_model"]
    assert cut_early["best_val_accuracy"] is None and cut_early["duration_seconds"] is None
    assert older["status"] == "finished"
    # nothing was rewritten on disk: it is only reported
    assert json.loads((tmp_path / "cut-off" / "status.json").read_text())["status"] == "running"


@pytest.mark.slow
def test_the_live_run_of_this_process_is_not_interrupted(trained_run, tmp_path):
    RUNNER.wait()
    gate = threading.Event()

    def hold(run):  # a real job of the real manager, kept "running" until released
        run.update(status="running")
        gate.wait(30)
        run.finish("finished")

    live = RUNNER.start({"backbone": "mobilenetv2_100", "data": "x", "freeze": "all"}, hold, runs_root=tmp_path)
    try:
        deadline = time.time() + 10
        while '"running"' not in (live.dir / "status.json").read_text() and time.time() < deadline:
            time.sleep(0.05)
        (tmp_path / "copy-of-live").mkdir()
        for name in ("config.json", "status.json"):  # what a restart finds of a run cut off this early
            shutil.copyfile(live.dir / name, tmp_path / "copy-of-live" / name)
        statuses = {row["id"]: row["status"] for row in history.list_runs(tmp_path, live=RUNNER.current)}
        assert statuses == {live.id: "running", "copy-of-live": "interrupted"}
    finally:
        gate.set()
        RUNNER.wait(30)
    assert {row["id"]: row["status"] for row in history.list_runs(tmp_path)}[live.id] == "finished"


@pytest.mark.slow
def test_unreadable_runs_are_listed_not_fatal(trained_run, tmp_path):
    copy_run(trained_run["run_dir"], tmp_path, "fine")
    broken = copy_run(trained_run["run_dir"], tmp_path, "20200101-120000-broken")
    (broken / "status.json").write_text('{"status": "fini')
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("[1, 2")
    (tmp_path / "not-a-run").mkdir()
    rows = {row["id"]: row for row in history.list_runs(tmp_path)}
    assert set(rows) == {"fine", "20200101-120000-broken", "half"}
    assert rows["fine"]["status"] == "finished"
    assert rows["20200101-120000-broken"]["status"] == "damaged" and "JSONDecodeError" in rows[
        "20200101-120000-broken"]["error"]
    assert rows["20200101-120000-broken"]["started"] == history._started_from_id("20200101-120000-broken")
    assert rows["half"]["status"] == "damaged"
    details = history.load_run("half", tmp_path)
    assert details["summary"]["status"] == "damaged" and details["confusion"] is None


def test_find_run_takes_ids_not_paths(tmp_path):
    (tmp_path / "a").mkdir()
    assert history.find_run("a", tmp_path) == tmp_path / "a"
    for bad in ("../a", "", "b", ".", "a/../a"):
        with pytest.raises(history.RunNotFound):
            history.find_run(bad, tmp_path)


def test_words_for_data_and_freeze():
    assert history.data_name(str(paths.EXAMPLE_DATASET)) == "example"
    assert history.data_name("/tmp/gradio/abc/my photos.zip") == "my photos"
    assert history.data_name("/data/flowers/") == "flowers"
    assert history.freeze_words("auto", None) == "Auto"
    assert history.freeze_words("auto", {"frozen_groups": 6, "total_groups": 8,
                                         "feature_extraction": False}) == "Auto (6 of 8 groups frozen)"
    assert history.freeze_words("all", {"frozen_groups": 8, "total_groups": 8,
                                        "feature_extraction": True}) == "new head only"
    assert history.freeze_words("3", {"frozen_groups": 3, "total_groups": 8,
                                      "feature_extraction": False}) == "3 of 8 groups frozen"
    assert history.freeze_words("0", {"frozen_groups": 0, "total_groups": 8,
                                      "feature_extraction": False}).startswith("nothing frozen")
    assert history.freeze_words("5", None) == "5 groups frozen"


def test_a_run_keeps_its_epochs_as_a_table_with_the_learning_rate(trained_run):
    import pandas as pd

    table = pd.read_csv(Path(trained_run["run_dir"]) / "metrics.csv")
    assert list(table.columns) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                   "val_balanced_accuracy", "val_macro_f1", "lr", "epoch_seconds", "elapsed_seconds"]
    assert table["epoch"].tolist() == [h["epoch"] for h in trained_run["history"]]
    assert table["val_accuracy"].tolist() == [h["val_accuracy"] for h in trained_run["history"]]
    assert table["lr"].iloc[0] > table["lr"].iloc[-1] >= 0   # the schedule glides down


def test_a_run_writes_its_epochs_as_tensorboard_events(trained_run):
    """With tensorboard installed (the [logs] extra; the dev install has it), the run folder's tensorboard/
    holds the epochs: what `tensorboard --logdir` shows."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(Path(trained_run["run_dir"]) / "tensorboard"))
    events.Reload()
    assert {"loss/train", "loss/validation", "accuracy/validation", "learning rate"} <= set(events.Tags()["scalars"])
    shown = events.Scalars("accuracy/validation")
    assert [e.step for e in shown] == [h["epoch"] for h in trained_run["history"]]
    assert [round(e.value, 4) for e in shown] == [round(h["val_accuracy"], 4) for h in trained_run["history"]]
