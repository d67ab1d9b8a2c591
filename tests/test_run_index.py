"""Runs written anywhere (`studio train --out`) are listed by `studio runs` and the Runs page,
folders that moved or were deleted are tolerated, and `studio runs PATH...` finds folders the
studio never knew (issue 15, item 4)."""
import json
import shutil
import subprocess
import sys

import pytest

from components import runs_step
from studio import paths
from studio.runs import history
from studio.runs import index as run_index
from studio.runs import JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio


def studio(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def listed_ids(*paths_given):
    done = studio("runs", *paths_given, "--json")
    assert done.returncode == 0, done.stderr
    return {json.loads(line)["run_dir"]: json.loads(line)["id"] for line in done.stdout.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def out_run(small_dataset, tmp_path_factory):
    """A real run trained from the CLI into a folder outside the workspace."""
    folder = tmp_path_factory.mktemp("elsewhere") / "experiment-1"
    done = studio("train", small_dataset, "--backbone", "mobilenetv2_100", "--freeze", "all", "--epochs", "1",
                  "--out", folder, "--quiet")
    assert done.returncode == 0, done.stderr
    assert not folder.resolve().is_relative_to(paths.runs_dir().resolve())
    return folder.resolve()


@pytest.mark.slow
def test_a_run_trained_with_out_is_listed_everywhere(out_run):
    assert listed_ids().get(str(out_run)) == out_run.name            # `studio runs`
    rows = {row["run_dir"]: row for row in history.list_runs()}       # the engine
    assert rows[str(out_run)]["status"] == "finished"
    listing = runs_step.list_runs(runner=RUNNER)                                   # the Runs page
    table, picker = listing["table"], listing["run"]
    assert out_run.name in set(table.Run) and out_run.name in [value for _, value in picker.choices]
    summary = runs_step.show_run(out_run.name, runner=RUNNER)["summary"]
    assert "Finished" in summary
    assert history.find_run(out_run.name) == out_run


@pytest.mark.slow
def test_moved_and_deleted_folders_are_tolerated_and_found_again_by_path(out_run, tmp_path):
    moved = tmp_path / "moved" / "experiment-copy"
    shutil.copytree(out_run, tmp_path / "original")
    run_index.remember(tmp_path / "original")
    assert str(tmp_path / "original") in listed_ids()

    (tmp_path / "moved").mkdir()
    shutil.move(tmp_path / "original", moved)
    assert str(tmp_path / "original") not in listed_ids()             # gone from the list, no error
    assert tmp_path / "original" in history.missing_runs()
    table = runs_step.list_runs(runner=RUNNER)["table"]
    assert "experiment-copy" not in set(table.Run)

    assert str(moved) in listed_ids(moved.parent)                     # a folder of runs, given by path
    assert str(moved) in listed_ids()                                 # and remembered from then on
    assert "experiment-copy" in set(runs_step.list_runs(runner=RUNNER)["table"].Run)


@pytest.mark.slow
def test_runs_with_the_same_folder_name_each_open_their_own_folder(out_run, tmp_path):
    twins = [tmp_path / place / out_run.name for place in ("a", "b")]
    for twin in twins:
        shutil.copytree(out_run, twin)
        run_index.remember(twin)
    ids = listed_ids()
    mine = [ids[str(folder)] for folder in (out_run, *twins)]
    assert len(set(mine)) == 3
    for run_id, folder in zip(mine, (out_run, *twins)):
        assert history.find_run(run_id) == folder


@pytest.mark.slow
def test_a_path_without_runs_is_named_in_words(tmp_path):
    (tmp_path / "empty").mkdir()
    done = studio("runs", tmp_path / "empty", tmp_path / "nowhere")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no run folder inside it" in done.stderr and "no such folder" in done.stderr
