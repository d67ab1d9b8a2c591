"""The backbone advisor (issue 17): its three scores can tell good features from bad, and `studio advise`
ranks every backbone whose weights are here, on real photos, without training any of them."""
from __future__ import annotations

import json

import pytest
import torch

from studio.models import transferability


def clusters(separation: float, n: int = 120, d: int = 32, classes: int = 3, seed: int = 0):
    """Features of `classes` Gaussian clusters `separation` apart (0: labels unrelated to the features)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=generator) * separation
    return centres[labels] + torch.randn(n, d, generator=generator), labels


@pytest.mark.parametrize("score", ["knn", "probe", "logme"])
def test_each_score_prefers_features_that_separate_the_classes(score):
    (good_all, good_all_y), (bad_all, bad_all_y) = clusters(3.0, n=240), clusters(0.0, n=240)
    good, good_y, good_test, good_test_y = good_all[::2], good_all_y[::2], good_all[1::2], good_all_y[1::2]
    bad, bad_y, bad_test, bad_test_y = bad_all[::2], bad_all_y[::2], bad_all[1::2], bad_all_y[1::2]
    if score == "logme":
        high, low = transferability.logme(good, good_y), transferability.logme(bad, bad_y)
    else:
        fn = transferability.knn_accuracy if score == "knn" else transferability.linear_probe_accuracy
        high, low = fn(good, good_y, good_test, good_test_y), fn(bad, bad_y, bad_test, bad_test_y)
        assert high > 0.9 and low < 0.6   # three classes: chance is a third
    assert high > low


def test_logme_grows_with_how_well_the_features_explain_the_labels():
    scores = [transferability.logme(*clusters(separation)) for separation in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert scores == sorted(scores)


@pytest.mark.slow
def test_studio_advise_ranks_every_usable_backbone(small_dataset, capsys):
    from studio.cli import main
    from studio.models.advisor import usable
    here = usable()
    assert "mobilenetv2_100" in here   # the packaged weights (requirements-weights.txt)
    assert main(["advise", str(small_dataset), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ranking = result["ranking"]
    assert sorted(row["backbone"] for row in ranking) == sorted(here)
    keys = [(row["knn_accuracy"], row["probe_accuracy"]) for row in ranking]
    assert keys == sorted(keys, reverse=True)
    for row in ranking:
        assert 0 <= row["knn_accuracy"] <= 1 and 0 <= row["probe_accuracy"] <= 1
        assert row["ms_per_photo"] > 0 and row["params_millions"] > 0
    assert ranking[0]["backbone"] in result["words"]
    assert result["photos"] == {"train": 48, "val": 20}

    assert main(["advise", str(small_dataset), "--backbones", "mobilenetv2_100"]) == 0
    shown = capsys.readouterr().out
    assert "mobilenetv2_100" in shown and "the default" in shown and "k-NN" in shown


@pytest.mark.slow
def test_the_model_step_ranks_the_backbones_and_chooses_the_best(small_dataset):
    from components import model_step
    from studio.models.advisor import usable
    from studio.runs import JobRunner
    runner = JobRunner()
    assert "Choose data first" in model_step.suggest_backbone(None, runner=runner)["advice"]
    shown = model_step.suggest_backbone({"source": str(small_dataset)}, lambda *a, **k: None, runner=runner)
    table, chart = shown["ranking"].value, shown["chart"].value
    assert sorted(table["data"][i][0] for i in range(len(table["data"]))) == sorted(usable())
    assert len(chart["data"]) == len(usable()) and shown["backbone"].value == table["data"][0][0]
    assert "likely" in shown["advice"] or "the default" in shown["advice"]
