"""Evaluation you can click: the photos behind each confusion-matrix cell and the surest mistakes."""
from pathlib import Path

import pandas as pd
import pytest

from components import evaluation_view, views
from studio import evaluation


def _matches(table, matrix, classes):
    assert len(table) == sum(map(sum, matrix))
    for i, true in enumerate(classes):
        for j, said in enumerate(classes):
            assert ((table.label == true) & (table.predicted == said)).sum() == matrix[i][j], (true, said)


@pytest.mark.slow
def test_predictions_files_match_the_best_and_the_latest_confusion_matrix(trained_run):
    folder, classes = Path(trained_run["run_dir"]), trained_run["classes"]
    table = pd.read_csv(folder / evaluation.PREDICTIONS_FILE)
    _matches(table, trained_run["best_confusion"], classes)
    _matches(pd.read_csv(folder / evaluation.LATEST_PREDICTIONS_FILE), trained_run["confusion"], classes)
    assert table.confidence.between(1 / len(classes), 1).all()
    assert all(Path(p).is_file() for p in table.path)


@pytest.mark.slow
def test_a_cell_opens_exactly_its_photos_most_confident_first(trained_run):
    run_dir, matrix = trained_run["run_dir"], trained_run["best_confusion"]
    cell = evaluation_view.cell_photos(run_dir, "ants", "ants")
    note, gallery = cell["cell_note"], cell["cell_gallery"]
    assert f"**{matrix[0][0]}** validation photo" in note and "(right)" in note
    assert len(gallery) == matrix[0][0]
    confidences = [float(caption.split("(")[1].split("%")[0]) for _, caption in gallery]
    assert confidences == sorted(confidences, reverse=True)
    from PIL import Image
    for thumbnail, _ in gallery:
        with Image.open(thumbnail) as image:
            assert max(image.size) <= evaluation_view.THUMBNAIL
    again = evaluation_view.cell_photos(run_dir, "ants", "ants")["cell_gallery"]
    assert [t for t, _ in again] == [t for t, _ in gallery]  # made once, reused
    cell = evaluation_view.cell_photos(run_dir, "ants", "bees")
    note, gallery = cell["cell_note"], cell["cell_gallery"]
    assert (len(gallery) == matrix[0][1]) and ("wrong" in note or "No validation photo" in note)
    assert evaluation_view.cell_photos(run_dir, None, "bees") == {"cell_note": evaluation_view.PICK_HINT,
                                                                   "cell_gallery": []}
    assert "after the first epoch" in evaluation_view.cell_photos(None, "ants", "ants")["cell_note"]


def test_confident_mistakes_are_wrong_answers_surest_first():
    table = pd.DataFrame({"path": list("abcd"), "label": ["x", "x", "y", "y"], "predicted": ["y", "x", "x", "x"],
                          "confidence": [0.6, 0.99, 0.95, 0.7], "true_class_probability": [0.4, 0.99, 0.05, 0.3]})
    assert evaluation.confident_mistakes(table).path.tolist() == ["c", "d", "a"]
    assert evaluation.cell_photos(table, "y", "x").path.tolist() == ["c", "d"]


def test_clickable_matrix_cells_name_their_class_pair():
    html = views.confusion_html([[3, 1], [0, 4]], ["cat's", "dog"], clickable=True)
    assert html.count("class='ts-cell'") == 4
    assert "data-true='cat&#x27;s' data-predicted='dog'" in html
    assert "ts-cell" not in views.confusion_html([[3, 1], [0, 4]], ["a", "b"])


def test_balanced_accuracy_and_macro_f1_count_every_class_the_same():
    from studio import evaluation

    # 90 photos of a big class all right, 10 of a small class all wrong: 90% accurate, yet half the classes missed
    matrix = [[90, 0], [10, 0]]
    assert evaluation.accuracy(matrix) == 0.9 and evaluation.balanced_accuracy(matrix) == 0.5
    assert abs(evaluation.macro_f1(matrix) - (2 * 0.9 / 1.9) / 2) < 1e-3
    words = evaluation.balance_words(matrix)
    assert "balanced accuracy 50.0%" in words and "9.0x the photos" in words
    assert "largest class" not in evaluation.balance_words([[5, 5], [5, 5]])
    assert evaluation.two_class_words(matrix, ["healthy", "sick"]).startswith(
        "taking **sick** as the positive class: sensitivity 0.0%")
    assert "specificity 100.0%" in evaluation.two_class_words(matrix, ["healthy", "sick"])
    assert evaluation.two_class_words([[1, 0, 0], [0, 1, 0], [0, 0, 1]], ["a", "b", "c"]) is None


def test_per_class_auc_and_precision_recall_from_probabilities():
    import torch

    from studio import evaluation
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    right = torch.nn.functional.one_hot(labels, 4).float() * 0.7 + 0.1   # each photo surest of its own class
    ranked = evaluation.ranking(right, labels, ["a", "b", "c", "never seen"])
    assert ranked["classes"]["a"]["auc"] == 1.0 and ranked["classes"]["b"]["ap"] == 1.0
    assert ranked["classes"]["never seen"] == {"auc": None, "ap": None, "curve": []}   # nothing to rank
    assert ranked["macro_auc"] == 1.0
    swapped = right[:, [1, 0, 2, 3]]   # a and b exchanged: their photos score highest for the other class
    worse = evaluation.ranking(swapped, labels, ["a", "b", "c", "never seen"])
    assert worse["classes"]["a"]["auc"] < 0.5 and worse["classes"]["c"]["auc"] == 1.0
    recall, precision, _ = zip(*worse["classes"]["a"]["curve"])
    assert all(0 <= v <= 1 for v in recall + precision)
    rows = evaluation.with_ranking([{"class": "a", "precision": 1.0}], ranked)
    assert rows[0]["auc"] == 1.0 and rows[0]["ap"] == 1.0


def test_a_finished_run_keeps_its_ranking_and_the_runs_view_draws_it(trained_run):
    from components import views
    from studio import evaluation
    ranked = evaluation.read_ranking(trained_run["run_dir"])
    assert ranked is not None and set(ranked["classes"]) == {"ants", "bees"}
    assert 0.5 < ranked["classes"]["bees"]["auc"] <= 1.0
    table, words = views.precision_recall_curves(ranked)
    assert set(table["class"].str.split(" ").str[0]) == {"ants", "bees"} and "ROC AUC" in words
