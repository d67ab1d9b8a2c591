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
