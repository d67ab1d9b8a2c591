"""Multi-label groundwork (issue 22): reading a labels CSV with several labels per photo, the data check's
multi-label figures, and the evaluation, thresholds and loss weights; on real photos and real files."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from helpers import EXAMPLE as EXAMPLE_DATA, SHARED_DATASETS, WORKSPACE, example_files
from studio.data.samples import DatasetError
from studio.multilabel import labels as ml
from studio.multilabel import metrics


@pytest.fixture(scope="module")
def photo_folder():
    """Twelve real example photos in one folder, plus one the CSV will not name."""
    root = WORKSPACE / "multilabel"
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    for photo in example_files("train", "ants", 6) + example_files("train", "bees", 7):
        shutil.copyfile(photo, root / "images" / photo.name)
    return root


def _names(folder):
    return sorted(p.name for p in (folder / "images").iterdir())


def test_a_separated_labels_column_is_read_and_checked(photo_folder):
    names = _names(photo_folder)
    rows = [f"images/{n},insect;flower" for n in names[:4]] + [f"images/{n},insect;sky" for n in names[4:8]]
    rows += [f"images/{n},insect" for n in names[8:11]] + [f"images/{names[11]},", "images/gone.jpg,insect"]
    csv = photo_folder / "labels.csv"
    csv.write_text("filename,labels\n" + "\n".join(rows) + "\n")
    sets = ml.read_label_sets(csv)
    assert sets.layout == "separated" and sets.separator == ";" and sets.labels == ["flower", "insect", "sky"]
    assert len(sets.rows) == 12 and sets.rows[0]["labels"] == ["flower", "insect"]
    reasons = {entry["path"].split("/")[-1]: entry["reason"] for entry in sets.skipped}
    assert "file is missing" in reasons["gone.jpg"] and "not named in the CSV" in reasons[names[12]]
    assert sets.matrix().loc[sets.rows[4]["path"]].tolist() == [0, 1, 1]
    report = ml.check(sets, rare_below=5)
    assert report["labels_per_photo"] == {"0": 1, "1": 3, "2": 8}
    assert report["photos_per_label"] == {"flower": 4, "insect": 11, "sky": 4}
    assert report["rare"] == ["flower", "sky"] and len(report["no_label"]) == 1
    assert report["always_together"] == [] and any("no label" in w for w in report["words"])
    assert ml.is_multilabel(pd.read_csv(csv, dtype=str, keep_default_na=False))


def test_zero_one_columns_and_labels_that_always_come_together(photo_folder, tmp_path):
    names = _names(photo_folder)[:6]
    csv = photo_folder / "columns.csv"
    csv.write_text("file_name,cat,dog,collar\n" + "\n".join(
        f"images/{n},{i % 2},{1 - i % 2},{1 - i % 2}" for i, n in enumerate(names)) + "\n")
    sets = ml.read_label_sets(csv)
    assert sets.layout == "columns" and sets.labels == ["cat", "dog", "collar"]
    assert sets.rows[1]["labels"] == ["cat"] and sets.rows[0]["labels"] == ["dog", "collar"]
    assert ml.check(sets)["always_together"] == [["dog", "collar"]]
    assert ml.is_multilabel(pd.read_csv(csv, dtype=str, keep_default_na=False))


def test_single_label_csvs_are_not_taken_for_multi_label(photo_folder):
    single = pd.DataFrame({"filename": ["a.jpg", "b.jpg"], "label": ["golden retriever", "cat"]})
    assert not ml.is_multilabel(single)   # a space inside a class name is not a separator
    assert ml.detect_separator(["a|b", "c", "d|e;f"]) == "|" and ml.detect_separator(["a", "b c"]) == " "
    with pytest.raises(DatasetError, match="no labels column"):
        empty = WORKSPACE / "multilabel" / "nolabels.csv"
        empty.write_text("filename,notes\nimages/x.jpg,hello\n")
        ml.read_label_sets(empty)


def test_posters_are_recognised_as_multi_label():
    if not (SHARED_DATASETS / "posters").is_dir():
        pytest.skip("../shared/datasets/posters is not beside this clone (CI has it)")
    csv = SHARED_DATASETS / "posters" / "labels.csv"
    assert ml.is_multilabel(pd.read_csv(csv, dtype=str, keep_default_na=False))
    sets = ml.read_label_sets(csv)
    report = ml.check(sets)
    assert report["photos"] == 2000 and report["labels"] == 23 and not sets.skipped
    assert set(report["labels_per_photo"]) <= {"1", "2", "3"} and "News" in report["rare"]


def test_thresholds_tuned_per_label_beat_one_half_and_the_figures_add_up():
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(200, 3, generator=generator) < torch.tensor([0.5, 0.2, 0.05])).int()
    # label 0 well scored around 0.5; label 1 scored low (a model unsure of a rarer label); label 2 noise
    scores = torch.stack([0.3 + 0.4 * targets[:, 0] + 0.05 * torch.rand(200, generator=generator),
                          0.1 + 0.25 * targets[:, 1] + 0.05 * torch.rand(200, generator=generator),
                          torch.rand(200, generator=generator)], 1)
    plain = metrics.evaluate(scores, targets, ["a", "b", "c"])
    thresholds = metrics.tune_thresholds(scores, targets)
    tuned = metrics.evaluate(scores, targets, ["a", "b", "c"], thresholds)
    assert plain["per_label"][1]["f1"] == 0.0 and tuned["per_label"][1]["f1"] == 1.0   # 0.5 never says "b"
    assert 0.1 < float(thresholds[1]) < 0.5 and tuned["macro_f1"] > plain["macro_f1"]
    assert tuned["per_label"][0]["auc"] == 1.0 and tuned["per_label"][0]["ap"] == 1.0
    assert plain["map"] == tuned["map"]   # mAP ranks: no threshold in it
    weights = metrics.positive_weights(targets)
    assert weights[0] < weights[1] < weights[2] <= metrics.MAX_POSITIVE_WEIGHT
    found = metrics.mistakes(scores, targets, torch.full((3,), 0.5), 2, [f"p{i}" for i in range(200)])
    yes, no = [p for _, p in found["false_positives"]], [p for _, p in found["false_negatives"]]
    assert yes and no and yes == sorted(yes, reverse=True) and no == sorted(no)   # the surest mistakes first
    assert all(p >= 0.5 for p in yes) and all(p < 0.5 for p in no)


def test_multi_label_data_is_recognised_and_a_person_can_switch_the_task(photo_folder, capsys):
    """Auto reads several labels per photo as a multi-label task; the doctor shows the multi-label check; a
    single-label task is refused in words while photos have several labels, and asked for on class folders,
    multi-label is refused in words too."""
    import json

    from studio.cli import main
    from studio.data.sources import open_dataset
    data = WORKSPACE / "multilabel-data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(photo_folder / "images", data / "images")
    names = _names(photo_folder)
    (data / "labels.csv").write_text("filename,tags\n" + "\n".join(
        f"images/{n},{'insect|flower' if i % 2 else 'insect'}" for i, n in enumerate(names)) + "\n")
    dataset = open_dataset(data)
    assert dataset.is_multilabel and dataset.classes == ["flower", "insect"]
    assert "13 photos, 2 labels" in dataset.multilabel_check["words"][0]
    assert dataset.counts().sum(axis=1).to_dict() == {"flower": 6, "insect": 13}   # a photo counts per label
    assert main(["doctor", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "multi-label" and report["multilabel"]["photos_per_label"] == {"flower": 6, "insect": 13}
    with pytest.raises(DatasetError, match="6 photos in labels.csv have several labels"):
        open_dataset(data, task="single-label")
    with pytest.raises(DatasetError, match="needs a labels CSV"):
        open_dataset(EXAMPLE_DATA, task="multi-label")
    # one label per photo: either kind of task can read it
    (data / "labels.csv").write_text("filename,label\n" + "\n".join(f"images/{n},insect" if i % 2 else
                                                                      f"images/{n},flower"
                                                                      for i, n in enumerate(names)) + "\n")
    assert not open_dataset(data).is_multilabel and open_dataset(data, task="multi-label").is_multilabel


# ---------------------------------------------------------------- training, predicting (the engine, CLI, API)

def test_a_multi_label_run_learns_each_label_and_keeps_its_thresholds(multilabel_run):
    """The one engine trained a yes/no per label: mAP and F1 in the history, thresholds tuned after the last
    epoch and kept in the model file, the scores calibrated (sigmoid), every validation photo's scores kept."""
    import json
    from pathlib import Path

    from studio import modelfile
    from studio.evaluation import SCORE_PREFIX, read_run_table
    from studio.inference import Predictor
    run_dir = Path(multilabel_run["run_dir"])
    assert multilabel_run["task"] == "multi-label" and multilabel_run["classes"] == ["ants", "bees", "grey"]
    assert multilabel_run["best_confusion"] is None and multilabel_run["best_score"]["name"] == "mAP"
    last = multilabel_run["history"][-1]
    assert {"val_map", "val_micro_f1", "val_macro_f1"} <= set(last) and 0 <= last["val_accuracy"] <= 1
    figures = json.loads((run_dir / "multilabel.json").read_text())
    assert figures["map"] > 0.8 and figures["micro_f1"] > 0.75, figures   # three labels a frozen backbone sees
    assert [row["label"] for row in figures["per_label"]] == ["ants", "bees", "grey"]
    meta = modelfile.read_metadata(run_dir / "model.safetensors")
    assert meta["task"] == "multi-label" and len(meta["thresholds"]) == 3
    assert list(figures["thresholds"].values()) == meta["thresholds"]
    assert "threshold per label" in multilabel_run["config"]["choices"]["thresholds"]
    table = read_run_table(run_dir / "predictions.csv")
    assert {SCORE_PREFIX + c for c in meta["classes"]} <= set(table.columns) and len(table) == 12
    # the page's and predict's answers are the kept scores, decided at the kept thresholds
    predictor = Predictor(run_dir / "model.safetensors")
    answers = list(predictor.predict_each(table.path.tolist()))
    near = 1e-3   # the kept scores come from an fp32 pass, as predicting's do (training may run in bf16)
    for answer, (_, row) in zip(answers, table.iterrows()):
        said = {label for label, _ in answer.labels}
        kept = {x for x in row.predicted.split(";") if x}
        for label, score in answer.top:
            assert abs(score - row[SCORE_PREFIX + label]) < near
            cut = meta["thresholds"][meta["classes"].index(label)]
            if abs(score - cut) > near:
                assert (label in said) == (label in kept) == (score >= cut)
        assert all(score < meta["thresholds"][meta["classes"].index(label)] for label, score in answer.near)
    right = sum(row.all_right == "True" for _, row in table.iterrows())
    assert right >= 8, table   # most photos get every label right


def test_multi_label_through_the_cli_and_the_api(multilabel_dataset, capsys, tmp_path):
    """Auto (the head, the plans tried, fine-tuning) on multi-label data from the CLI; the Python API's
    task, thresholds, figures and a label's mistakes; a single-label task refused in words."""
    import json

    from studio import load
    from studio.cli import main
    out = tmp_path / "cli-run"
    assert main(["train", str(multilabel_dataset), "--backbone", "mobilenetv2_100", "--budget", "quick",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "multi-label" and result["multilabel"]["map"] > 0.6, result
    assert result["confusion_matrix"] is None and result["epochs_run"] >= 2
    model = load(out)
    assert model.task == "multi-label" and set(model.thresholds) == {"ants", "bees", "grey"}
    assert model.metrics["map"] == result["multilabel"]["map"]
    mistakes = model.label_mistakes("grey")
    assert set(mistakes) == {"false_positives", "false_negatives"}
    for _path, score in mistakes["false_positives"]:
        assert score >= model.thresholds["grey"]
    with pytest.raises(ValueError, match="not one of the labels"):
        model.label_mistakes("wasps")
    photo = sorted((multilabel_dataset / "images").glob("both*.jpg"))[0]
    answer = model.predict(photo)[0]
    assert answer.labels is not None and {"ants", "bees"} & {label for label, _ in answer.labels}
    assert main(["predict", str(out / "model.safetensors"), str(photo)]) == 0
    printed = capsys.readouterr().out
    assert photo.name in printed and "%" in printed
    assert main(["train", str(multilabel_dataset), "--task", "single-label", "--out", str(tmp_path / "x")]) == 2
    assert "have several labels" in capsys.readouterr().err
