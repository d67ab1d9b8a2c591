"""The bench (benchmarks/bench.py): real weights, real photos, one epoch each; the report's shape and
arithmetic, never its times."""
import json
import sys

import pytest
import torch

from helpers import REPO, WORKSPACE, make_subset

sys.path.insert(0, str(REPO / "benchmarks"))   # the bench is a script beside the engine, not part of it
from bench import main, parse_parts  # noqa: E402
from bench_report import GOALS, ratios_and_goals  # noqa: E402
from bench_runs import BenchUsageError  # noqa: E402

CLOSE = dict(rel=0.01, abs=2e-3)   # ratios are computed before rounding, times are rounded to ms


@pytest.fixture(scope="module")
def tiny_dataset():
    """4 training and 2 validation photos per class: every bench part runs in seconds."""
    return make_subset(WORKSPACE / "bench-tiny", train=4, val=2)


def bench(capsys, *args):
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check_run(run, epochs, train_images):
    assert run["epochs"] == epochs and len(run["epoch_seconds"]) == epochs
    # a head epoch on cached features can round to 0.000 s; everything else takes measurable time
    assert all(s >= 0 for s in run["epoch_seconds"]) and run["typical_epoch_seconds"] >= 0
    assert run["total_seconds"] > 0 and run["total_seconds"] >= sum(run["epoch_seconds"]) - 1e-2
    assert run["images_per_second"] > 0 and run["images_per_second_basis"]
    assert 0.0 <= run["best_val_accuracy"] <= 1.0
    assert run["train_images"] == train_images


@pytest.mark.slow
def test_bench_cpu_runs_tutorial_and_studio_and_prints_consistent_ratios(tiny_dataset, capsys):
    code, out, err = bench(capsys, tiny_dataset, "--backbone", "mobilenetv2_100", "--epochs", "1",
                           "--device", "cpu")
    assert code == 0, err
    lines = out.strip().splitlines()
    report = json.loads(lines[-1])
    assert len(lines) > 5 and "ratios:" in out and "studio_finetune" in out  # the table, then the JSON line
    assert "tutorial frozen: epoch 1/1" in err  # progress goes to stderr

    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["cores"] >= 1 and machine["torch"] == torch.__version__
    assert machine["cpu"] and machine["device_name"] and set(machine["load_average"]) == {"start", "end"}
    assert isinstance(report["warnings"], list)
    assert report["backbone"] == "mobilenetv2_100" and report["epochs"] == 1
    assert report["classes"] == ["ants", "bees"]
    assert report["images"] == {"train": 8, "val": 4, "total": 12}
    assert report["parts"] == ["tutorial", "frozen", "finetune", "auto", "pass"]
    assert report["weights"] == "pretrained"

    runs = report["runs"]
    assert set(runs) == {"tutorial_frozen", "tutorial_finetune", "studio_frozen", "studio_finetune", "studio_auto",
                         "one_pass"}
    for name, run in runs.items():
        if name not in ("studio_auto", "one_pass"):
            check_run(run, 1, 8)
    one_pass = runs["one_pass"]
    assert one_pass["images"] == 12 and one_pass["unreadable"] == 0
    assert one_pass["seconds"] == pytest.approx(one_pass["decode_seconds"] + one_pass["forward_seconds"], abs=2e-3)
    auto = runs["studio_auto"]
    assert auto["freeze"] == "auto" and auto["epochs"] > 5  # the head stage, then fine-tuning epochs
    assert runs["studio_frozen"]["freeze"] == "all" and runs["studio_finetune"]["freeze"] == "0"
    assert runs["studio_frozen"]["elapsed_seconds"] > 0 and runs["studio_finetune"]["val_images"] == 4
    # the run's own clock starts after the thread does: never more than the wall time around it
    assert runs["studio_frozen"]["elapsed_seconds"] <= runs["studio_frozen"]["total_seconds"] + 1e-3

    ratios = report["ratios"]
    assert set(ratios) == {"frozen_total_vs_tutorial", "finetune_epoch_vs_tutorial", "frozen_run_vs_one_pass",
                           "auto_total_vs_tutorial_finetune_total"}  # no CUDA ratios on cpu
    assert ratios["frozen_run_vs_one_pass"] == pytest.approx(
        runs["studio_frozen"]["total_seconds"] / one_pass["seconds"], **CLOSE)
    assert ratios["auto_total_vs_tutorial_finetune_total"] == pytest.approx(
        auto["total_seconds"] / runs["tutorial_finetune"]["total_seconds"], **CLOSE)
    assert ratios["frozen_total_vs_tutorial"] == pytest.approx(
        runs["studio_frozen"]["total_seconds"] / runs["tutorial_frozen"]["total_seconds"], **CLOSE)
    assert ratios["finetune_epoch_vs_tutorial"] == pytest.approx(
        runs["studio_finetune"]["typical_epoch_seconds"] / runs["tutorial_finetune"]["typical_epoch_seconds"], **CLOSE)

    goals = report["goals"]
    assert set(goals) == {"frozen_total_vs_tutorial", "frozen_best_val_accuracy", "finetune_epoch_vs_tutorial",
                          "auto_accuracy_minus_best_tutorial", "auto_total_vs_tutorial_finetune_total"}
    best_tutorial = max(runs["tutorial_frozen"]["best_val_accuracy"], runs["tutorial_finetune"]["best_val_accuracy"])
    assert goals["auto_accuracy_minus_best_tutorial"]["value"] == pytest.approx(
        auto["best_val_accuracy"] - best_tutorial, abs=1e-4)
    assert goals["frozen_total_vs_tutorial"]["goal"] == "<= 0.25"
    assert goals["finetune_epoch_vs_tutorial"]["goal"] == "<= 0.6"
    assert goals["frozen_best_val_accuracy"] == {
        "value": runs["studio_frozen"]["best_val_accuracy"], "goal": ">= 0.95",
        "met": runs["studio_frozen"]["best_val_accuracy"] >= 0.95}
    for name in ("frozen_total_vs_tutorial", "finetune_epoch_vs_tutorial"):
        assert goals[name]["value"] == ratios[name]
        assert goals[name]["met"] == (ratios[name] <= GOALS[name][1])


@pytest.mark.slow
def test_bench_only_and_json_only(tiny_dataset, capsys):
    code, out, err = bench(capsys, tiny_dataset, "--backbone", "mobilenetv2_100", "--epochs", "2",
                           "--device", "cpu", "--only", "frozen", "--json-only", "--quiet")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1 and err == ""
    report = json.loads(lines[0])
    assert report["parts"] == ["frozen"] and list(report["runs"]) == ["studio_frozen"]
    check_run(report["runs"]["studio_frozen"], 2, 8)
    assert report["ratios"]["frozen_total_vs_tutorial"] is None  # nothing to compare with
    assert list(report["goals"]) == ["frozen_best_val_accuracy"]


@pytest.mark.slow
def test_bench_mistakes_are_one_clear_line(tiny_dataset, tmp_path, capsys):
    cases = [
        ([tmp_path / "nothing-here"], 2, "does not exist"),
        ([tiny_dataset, "--backbone", "no_such_model"], 2, "no_such_model"),   # refused by the parser
        ([tiny_dataset, "--only", "tutorial,bogus"], 2, "--only"),
        ([tiny_dataset, "--only", "raw", "--device", "cpu"], 2, "CUDA"),
        ([tiny_dataset, "--epochs", "0"], 2, "--epochs"),
    ]
    if not torch.cuda.is_available():
        cases.append(([tiny_dataset, "--device", "cuda"], 2, "CUDA"))
    for args, expected_code, words in cases:
        code, out, err = bench(capsys, *args)
        assert code == expected_code, (args, err)
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("studio: error:") and words in err, (args, err)


@pytest.mark.parametrize("argv,allowed", [
    (("--epochs", "0"), "a whole number, 1 or more"),
    (("--batch-size", "1"), "a whole number, 2 or more"),
    (("--device", "gpu"), "auto, cpu, cuda"),
    (("--only", "frozen,fast"), "tutorial,frozen,finetune,auto,pass,raw"),
    (("--backbone", "nope"), "mobilenetv2_100"),
])
def test_a_bad_flag_fails_in_the_parser_naming_what_is_allowed(argv, allowed, tiny_dataset, capsys):
    code, out, err = bench(capsys, tiny_dataset, *argv)
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("studio: error: ") and allowed in err, err


def test_parts_and_goals_arithmetic_for_both_devices():
    assert parse_parts(None, "cpu") == ("tutorial", "frozen", "finetune", "auto", "pass")
    assert parse_parts(None, "cuda") == ("tutorial", "frozen", "finetune", "auto", "pass", "raw")
    assert parse_parts(" raw , tutorial", "cuda") == ("tutorial", "raw")
    with pytest.raises(BenchUsageError):
        parse_parts("frozen,everything")

    # the CUDA ratios, from made-up measurements (no GPU needed to check the arithmetic)
    runs = {
        "tutorial_frozen": {"_total": 40.0, "_steady": 13.0, "_ips": 20.0, "best_val_accuracy": 0.9},
        "tutorial_finetune": {"_total": 60.0, "_steady": 20.0, "_ips": 100.0, "best_val_accuracy": 0.9},
        "studio_frozen": {"_total": 2.0, "_steady": 0.01, "_ips": 500.0, "best_val_accuracy": 0.96},
        "studio_finetune": {"_total": 3.0, "_steady": 0.5, "_ips": 2000.0, "best_val_accuracy": 0.97},
        "studio_auto": {"_total": 30.0, "_steady": 0.5, "_ips": 2000.0, "best_val_accuracy": 0.89},
        "one_pass": {"_total": 1.6},
        "raw_bf16": {"_train_ips": 2500.0, "_forward_ips": 400.0, "_engine_ips": 4000.0},
    }
    ratios, goals, extra = ratios_and_goals(runs, "cuda", data_images=400)
    assert ratios == {"frozen_total_vs_tutorial": 0.05, "finetune_epoch_vs_tutorial": 0.025,
                      "finetune_vs_raw_bf16": 0.8, "finetune_vs_tutorial_speedup": 20.0,
                      "finetune_vs_raw_bf16_at_engine_batch": 0.5, "frozen_run_vs_synthetic_forward": 2.0,
                      "frozen_run_vs_one_pass": 1.25, "auto_total_vs_tutorial_finetune_total": 0.5}
    assert extra == {"synthetic_forward_seconds": 1.0, "synthetic_forward_images": 400}
    assert goals == {
        "frozen_best_val_accuracy": {"value": 0.96, "goal": ">= 0.95", "met": True},
        "finetune_vs_raw_bf16": {"value": 0.8, "goal": ">= 0.7", "met": True},
        "finetune_vs_tutorial_speedup": {"value": 20.0, "goal": ">= 14", "met": True},
        "frozen_run_vs_one_pass": {"value": 1.25, "goal": "<= 1.5", "met": True},
        "auto_accuracy_minus_best_tutorial": {"value": -0.01, "goal": ">= 0", "met": False},
        "auto_total_vs_tutorial_finetune_total": {"value": 0.5, "goal": "<= 1", "met": True},
    }
    cpu_ratios, cpu_goals, cpu_extra = ratios_and_goals(runs, "cpu", data_images=400)
    assert set(cpu_ratios) == {"frozen_total_vs_tutorial", "finetune_epoch_vs_tutorial", "frozen_run_vs_one_pass",
                               "auto_total_vs_tutorial_finetune_total"} and cpu_extra == {}
    assert set(cpu_goals) == {"frozen_total_vs_tutorial", "frozen_best_val_accuracy", "finetune_epoch_vs_tutorial",
                              "auto_accuracy_minus_best_tutorial", "auto_total_vs_tutorial_finetune_total"}
