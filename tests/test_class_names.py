"""Class names stay text everywhere a run is read back: `0`, `007`, `True`, `NaN`, `null` and
non-Latin names must never become numbers, booleans or missing values (issue 15, item 1)."""
import json
import subprocess
import sys

import pytest

from helpers import TRICKY_CLASS_NAMES, cut_off_run
from studio import evaluation
from studio.runs import history
from studio.training.config import TrainConfig
from studio.training.trainer import resume_training, start_training
from studio.runs import JobRunner

RUNNER = JobRunner()   # this module's trainings: one at a time, as in the studio

pytestmark = pytest.mark.slow  # every test trains the ten-class run or resumes one

NAMES = list(TRICKY_CLASS_NAMES)


@pytest.fixture(scope="module")
def tricky_run(tricky_names_dataset):
    run = start_training(TrainConfig(data=str(tricky_names_dataset), backbone="mobilenetv2_100", freeze="all",
                                     epochs=2, patience=0, feature_views=1), runner=RUNNER)
    RUNNER.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot


def test_the_run_keeps_every_name_as_written(tricky_run):
    assert sorted(tricky_run["classes"]) == sorted(NAMES)
    table = evaluation.read_run_table(f"{tricky_run['run_dir']}/{evaluation.PREDICTIONS_FILE}")
    assert set(table.label) == set(NAMES) and set(table.predicted) <= set(NAMES)
    assert all(isinstance(v, str) for v in [*table.label, *table.predicted, *table.path])
    assert table.confidence.dtype.kind == "f"   # the numbers are still numbers
    samples = history.run_samples(tricky_run["run_dir"], "val")
    assert {label for _, label in samples} == set(NAMES)


def test_every_cell_of_the_matrix_opens_the_photos_it_counts(tricky_run):
    """The reported case: the diagonal cell of class `0` said no photo of 0 was called 0."""
    from components import evaluation_view, runs_step
    run_id = tricky_run["id"]
    shown = history.load_run(run_id)
    assert shown["classes"] == tricky_run["classes"]
    matrix, classes = shown["confusion"], shown["classes"]
    opened = 0
    for i, true_class in enumerate(classes):
        for j, predicted in enumerate(classes):
            cell = evaluation_view.cell_photos(tricky_run["run_dir"], true_class, predicted)
            note, photos = cell["cell_note"], cell["cell_gallery"]
            if matrix[i][j]:
                assert len(photos) == matrix[i][j], (true_class, predicted, note)
                assert f"**{true_class}**" in note and "No validation photo" not in note
                opened += 1
            else:
                assert "No validation photo" in note and photos == []
    assert opened >= 1
    html = runs_step.show_run(run_id, runner=RUNNER)["confusion"]
    for name in NAMES:
        assert f"data-true='{name}'" in html


def test_resuming_does_not_mistake_the_names_for_a_changed_dataset(tricky_names_dataset, tmp_path):
    """samples.csv read back with numeric types made `007` into 7: "the dataset changed"."""
    config = TrainConfig(data=str(tricky_names_dataset), backbone="mobilenetv2_100", freeze="all", epochs=3,
                         patience=0, feature_views=1)
    cut_off_run(config, 2, tmp_path / "run")
    resumed = resume_training(tmp_path / "run", runner=RUNNER)
    RUNNER.wait()
    final = resumed.snapshot()
    assert final["status"] == "finished", final["error"]


def test_predict_and_the_export_name_the_classes_as_text(tricky_run, tmp_path, tricky_names_dataset):
    from studio.export import bundle
    model = f"{tricky_run['run_dir']}/model.safetensors"
    photo = next((tricky_names_dataset / "val" / "007").iterdir())
    done = subprocess.run([sys.executable, "-m", "studio", "predict", model, str(photo), "--json",
                           "--top-k", str(len(NAMES))], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(p["class"] for p in answer["predictions"]) == sorted(NAMES)

    made = bundle.export_run(tricky_run["run_dir"], "bundle", tmp_path / "export", check_data=True)
    folder = tmp_path / "export"
    meta = json.loads((folder / "model.json").read_text())
    assert meta["classes"] == tricky_run["classes"]
    card = next(folder.glob("*.md")).read_text()
    for name in NAMES:
        assert f"`{name}`" in card
    assert made is not None
