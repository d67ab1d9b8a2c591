"""Settings declared once (studio.config): the CLI, the page and a saved run agree on every default,
and `studio train --config RUN_DIR` repeats a run."""
import json
import shlex
from dataclasses import asdict, fields
from pathlib import Path

import gradio as gr
import pytest

from components import settings_panel, train_step
from studio import config as settings_module
from studio.cli import build_parser, main
from studio.config import command_line, read_saved, settings, typed_values
from studio.training.config import TrainConfig

# one valid value other than the default, per user-facing setting
OTHER_VALUES = {
    "val_fraction": 0.3, "test_fraction": 0.15, "prefix_separator": "_", "task": "multi-label",
    "exclude": ["near_duplicates", "outliers"],
    "memory_budget_mb": 512, "backbone": "tf_efficientnet_lite0", "freeze": "3", "batchnorm": "adapt",
    "train_size": 192, "feature_views": 3, "epochs": 7, "head_epochs": 2, "lr": 0.0005, "batch_size": 12,
    "optimizer": "sgd", "schedule": "one-cycle", "weight_decay": 0.01, "label_smoothing": 0.2, "patience": 5,
    "class_weighting": "on", "augment": False, "augment_strength": "strong", "seed": 11, "device": "cpu",
    "budget": "1h30m", "unlabeled": str(Path(__file__).resolve().parent),   # a folder that is there
    "leave_out_list": str(Path(__file__).resolve()),   # a file that is there
    "gpus": 2, "processes": 3,
}


def parsed(argv: list[str]) -> dict:
    args = build_parser().parse_args(argv)
    return typed_values(args, TrainConfig)


def test_every_field_is_a_declared_setting_with_help():
    declared = {s.name: s for s in settings(TrainConfig)}
    assert set(declared) == {f.name for f in fields(TrainConfig)} - {"choices"}
    flags = [s.flag for s in declared.values() if s.flag]
    assert len(flags) == len(set(flags))
    for s in declared.values():
        assert s.help and s.group in settings_module.GROUPS, s
    # every user-facing setting has a value to round-trip below: a new one must be added there
    assert set(OTHER_VALUES) == {s.name for s in declared.values() if s.user_facing}


def test_no_flag_means_the_dataclass_default():
    assert parsed(["train", "photos"]) == {}
    assert TrainConfig(data="photos", **parsed(["train", "photos"])) == TrainConfig(data="photos")


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_the_repeat_command_reads_back_as_the_same_config(name):
    """command_line() writes what the CLI parses back into exactly that setting, and nothing else."""
    config = TrainConfig(data="/data/my photos", **{name: OTHER_VALUES[name]})
    line = command_line(config)
    argv = shlex.split(line)
    assert argv[:3] == ["studio", "train", "/data/my photos"]
    assert TrainConfig(data=argv[2], **parsed(argv[1:])) == config, line


def test_keep_all_and_several_excludes():
    assert parsed(["train", "x", "--keep-all"]) == {"exclude": []}
    assert "--keep-all" in command_line(TrainConfig(data="x", exclude=[]))
    assert parsed(["train", "x", "--exclude", "tiny_images", "--exclude", "outliers"]) == {
        "exclude": ["tiny_images", "outliers"]}


def test_files_left_out_by_hand_are_named_as_not_carried():
    line = command_line(TrainConfig(data="x", exclude_files={"/a.jpg": "left out: outliers"}))
    assert line.endswith("# not carried: 1 file you left out by hand")


def test_the_untouched_advanced_panel_asks_for_the_defaults():
    """Built from the settings, the panel's widgets show the defaults; left alone they change nothing."""
    with gr.Blocks():
        widgets = settings_panel.render(train_step.ADVANCED)
    assert len(widgets) == len(train_step.ADVANCED)
    assert settings_panel.values_as_settings(train_step.ADVANCED, [w.value for w in widgets]) == {}
    declared = settings_module.by_name(TrainConfig)
    for name, w in zip(train_step.ADVANCED, widgets):
        words = declared[name].page_help or declared[name].help
        assert w.label == declared[name].label and w.info.lower().startswith(words[:20].lower())


def test_the_page_command_is_what_the_page_starts(small_dataset):
    """The command the page shows, typed into a terminal, asks for the same run as Start."""
    source = {"source": str(small_dataset), "prefix_separator": None}
    controls = ("mobilenetv2_100", "manual", 6, 3, "0.001", 16, ["exact_duplicates"], [],
                0.001, 0.0, 0, False, "on", "adapt", 4, "sgd", "constant", 1, "light")
    shown = train_step.repeat_command(source, *controls)
    line = shown.split("```bash\n")[1].split("\n```")[0]
    argv = shlex.split(line)
    from_terminal = TrainConfig(data=argv[2], **parsed(argv[1:]))
    assert from_terminal == train_step.page_config(source, *controls)


def test_a_config_file_that_cannot_be_used_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "typo.json").write_text(json.dumps({"data": "x", "epoch": 3}))
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, words in (("missing.json", "does not exist"), ("bad.json", "not a readable JSON"),
                        ("typo.json", "'epoch' is not a setting"), ("list.json", "should be a JSON object")):
        assert main(["train", "--config", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()


def test_resume_refuses_other_settings(tmp_path, capsys):
    """--resume carries on with the run's own settings: a flag beside it would be silently ignored."""
    assert main(["train", "--resume", str(tmp_path), "--epochs", "9"]) == 2
    assert "--config RUN_DIR" in capsys.readouterr().err


def test_a_json_file_of_settings_is_a_config(small_dataset, tmp_path):
    file = tmp_path / "settings.json"
    file.write_text(json.dumps({"data": str(small_dataset), "freeze": "all", "epochs": 4, "owner": "ann"}))
    assert read_saved(file, TrainConfig) == {"data": str(small_dataset), "freeze": "all", "epochs": 4}  # not who ran it


@pytest.mark.slow
def test_config_repeats_a_run_and_flags_change_it(small_dataset, tmp_path, capsys):
    """A run repeated from its folder trains the same model (same seed, same machine); a flag given
    beside --config changes only that setting."""
    first, again, changed = tmp_path / "first", tmp_path / "again", tmp_path / "changed"
    assert main(["train", str(small_dataset), "--backbone", "mobilenetv2_100", "--freeze", "all", "--epochs", "2",
                 "--views", "1", "--seed", "3", "--label-smoothing", "0.05", "--out", str(first), "--json",
                 "--quiet"]) == 0
    assert main(["train", "--config", str(first), "--out", str(again), "--json", "--quiet"]) == 0
    assert main(["train", "--config", str(first / "config.json"), "--epochs", "1", "--out", str(changed),
                 "--json", "--quiet"]) == 0
    one, two, three = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    asked = [json.loads((d / "config.json").read_text())["asked"] for d in (first, again, changed)]
    assert asked[0] == asked[1] and asked[0]["label_smoothing"] == 0.05 and asked[0]["seed"] == 3
    assert asked[2] == {**asked[0], "epochs": 1}
    assert [h["val_accuracy"] for h in one["history"]] == [h["val_accuracy"] for h in two["history"]]
    assert [h["train_loss"] for h in one["history"]] == [h["train_loss"] for h in two["history"]]
    assert three["epochs_run"] == 1
    assert asdict(TrainConfig(**read_saved(first, TrainConfig))) == asdict(TrainConfig(**asked[0]))
