"""The Train step's Advanced view, in a real browser: the command line shown is the run that Start starts.

The page shows the `studio train ...` line that repeats the run about to be started. A person copies it
into a terminal, so it must carry exactly what they set: each Advanced control changed gives its flag
with the chosen value, an untouched one gives none, the line parses with the real CLI into the settings
set on the page, and the run that Start then trains records those same settings in its config.json.

Screenshots go to $STUDIO_SCREENSHOTS/../settings (default test-artifacts/settings/). Skipped only when
neither Playwright nor a chromium is installed and STUDIO_REQUIRE_BROWSER is unset (as test_browser.py).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pytest

import browser_flow as flow
from helpers import EXAMPLE

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # drives chromium through a real run

COMMAND = "#train-command"


def advanced_view(page) -> None:
    """Switch the View to Advanced, open the Train step and its Advanced settings panel."""
    page.locator("#view-switch").get_by_label("Advanced", exact=True).check()
    flow.go_to_tab(page, "3. Train")
    page.locator(COMMAND).wait_for()
    page.get_by_text("Advanced: every other setting").click()
    page.get_by_label("Seed", exact=True).wait_for()


def command(page, *showing: str, without: tuple[str, ...] = ()) -> str:
    """The command line shown, once it holds every fragment in `showing` and none in `without`."""
    code = f"{COMMAND} pre code"   # looked up each time: every update of the Markdown draws a new element
    try:
        page.wait_for_function("([sel, want, unwanted]) => { const el = document.querySelector(sel);"
                               " return !!el && want.every(w => el.innerText.includes(w))"
                               " && !unwanted.some(w => el.innerText.includes(w)); }",
                               arg=[code, list(showing), list(without)], timeout=60_000)
    except Exception as exc:  # noqa: BLE001 - say what the page shows instead
        raise AssertionError(f"the command never showed {showing} without {without}: "
                             f"{page.locator(COMMAND).inner_text()!r}") from exc
    return page.locator(code).inner_text().strip()


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the dropdown `label`, in that dropdown's own list (another's may still be closing)."""
    box = page.get_by_label(label, exact=True)
    box.click()
    page.locator(f"#{box.get_attribute('aria-controls')}").get_by_role("option", name=option, exact=True).click()
    page.wait_for_function("([el, v]) => el.value === v", arg=[box.element_handle(), option])


def flags(line: str) -> set[str]:
    return {word for word in shlex.split(line) if word.startswith("--")}


def as_cli_would(line: str):
    """The TrainConfig `studio train` makes of the line, as cmd_train does (studio/commands.py)."""
    from studio.cli import build_parser
    from studio.config import typed_values
    from studio.training.config import TrainConfig

    words = shlex.split(line)
    assert words[:2] == ["studio", "train"], line
    args = build_parser().parse_args(words[1:])
    return TrainConfig(**typed_values(args, TrainConfig), data=str(Path(args.data).resolve()))


def test_the_command_carries_each_advanced_setting_and_parses(browser, server, shots):
    from studio.backbones import default_backbone
    from studio.training.config import TrainConfig

    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.go_to_tab(page, "3. Train")
        assert not page.locator(COMMAND).is_visible(), "the command shows in the Simple view"
        advanced_view(page)
        assert "Choose data first" in page.locator(COMMAND).inner_text()
        shots.take(page, "advanced-before-data")

        flow.step_data(page)  # the example
        flow.go_to_tab(page, "3. Train")
        untouched = command(page, "studio train")
        assert shlex.split(untouched)[2] == str(EXAMPLE), untouched
        assert flags(untouched) == {"--backbone"}, untouched   # the Model step's backbone; nothing else asked

        # the training time: Best shows its minutes, and the line carries what was picked
        minutes = page.get_by_label("range slider for Minutes for Best")
        assert not minutes.is_visible(), "Best's minutes show before Best is picked"
        page.locator("#budget").get_by_label("Best", exact=True).check()
        command(page, "--budget best")
        minutes.fill("25")
        command(page, "--budget 25m")
        shots.take(page, "budget-best", element="#budget")
        assert as_cli_would(command(page, "--budget 25m")).budget == "25m"
        page.locator("#budget").get_by_label("Balanced (recommended)", exact=True).check()
        command(page, "studio train", without=("--budget",))
        assert not minutes.is_visible()

        choose(page, "Epochs", "3")
        command(page, "--epochs 3")
        choose(page, "Learning rate", "0.0003")
        command(page, "--lr 0.0003")
        choose(page, "Batch size", "16")
        command(page, "--batch-size 16")
        page.get_by_label("Augment (random crops, flips, colour)").uncheck()
        command(page, "--no-augment")
        page.get_by_label("SGD with momentum", exact=True).check()
        command(page, "--optimizer sgd")
        page.get_by_label("Constant", exact=True).check()
        command(page, "--schedule constant")
        page.get_by_label("Seed", exact=True).fill("7")
        command(page, "--seed 7")
        page.get_by_label("Seed", exact=True).fill("0")   # back to its default: its flag goes again
        line = command(page, "--schedule constant", without=("--seed",))
        shots.take(page, "advanced-changed")
        shots.take(page, "command", element=COMMAND)

        assert flags(line) == {"--backbone", "--epochs", "--lr", "--batch-size", "--no-augment", "--optimizer",
                               "--schedule"}, line
        asked = TrainConfig(data=str(EXAMPLE.resolve()), backbone=default_backbone(), epochs=3, lr=0.0003,
                            batch_size=16, augment=False, optimizer="sgd", schedule="constant")
        assert asdict(as_cli_would(line)) == asdict(asked), line
        flow.assert_no_errors(page, "the Advanced settings")
    except BaseException:
        shots.take(page, "failure-command")
        raise
    finally:
        page.close()


def wait_for_new_run(before: set[Path], timeout_s: float = 600) -> Path:
    """The run folder Start made, once its status.json says the run ended."""
    from studio import paths

    deadline = time.monotonic() + timeout_s
    folder = None
    while time.monotonic() < deadline:
        made = {p for p in paths.runs_dir().iterdir() if p.is_dir()} - before
        assert len(made) <= 1, f"more than one new run folder: {made}"
        folder = next(iter(made), None)
        if folder is not None and (folder / "status.json").is_file():
            status = json.loads((folder / "status.json").read_text())["status"]
            if status in ("finished", "stopped", "failed", "interrupted"):
                return folder
        time.sleep(1)
    raise AssertionError(f"no run ended within {timeout_s} s (new folder: {folder})")


def test_start_trains_the_run_the_command_shows(browser, server, shots, small_dataset, tmp_path):
    from studio import paths

    data = shutil.make_archive(str(tmp_path / "small"), "zip", small_dataset)   # train/ and val/, 68 photos
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        page.locator("input[type=file][accept='.zip']").set_input_files(data)
        page.locator("#data-summary").filter(has_text=re.compile(r"2 classes")).wait_for(timeout=120_000)
        flow.step_model(page, trainable_groups=0)   # every layer frozen: seconds per epoch
        advanced_view(page)
        command(page, "/uploads/small-", "--freeze all")   # the unpacked upload

        choose(page, "Epochs", "2")
        command(page, "--epochs 2")
        choose(page, "Batch size", "8")
        command(page, "--batch-size 8")
        page.get_by_label("Weight decay", exact=True).fill("0.001")
        command(page, "--weight-decay 0.001")
        page.get_by_label("range slider for Label smoothing").fill("0.2")
        command(page, "--label-smoothing 0.2")
        page.get_by_label("on", exact=True).check()   # class-weighted loss
        command(page, "--class-weighting on")
        page.get_by_label("One-cycle", exact=True).check()
        line = command(page, "--schedule one-cycle")
        assert flags(line) == {"--backbone", "--freeze", "--epochs", "--batch-size", "--weight-decay",
                               "--label-smoothing", "--class-weighting", "--schedule"}, line
        from_cli = as_cli_would(line)
        assert (from_cli.freeze, from_cli.epochs, from_cli.batch_size, from_cli.weight_decay,
                from_cli.label_smoothing, from_cli.class_weighting, from_cli.schedule) == (
                "all", 2, 8, 0.001, 0.2, "on", "one-cycle"), line

        before = {p for p in paths.runs_dir().iterdir() if p.is_dir()}
        page.get_by_role("button", name="Start training").click()
        folder = wait_for_new_run(before)
        status = json.loads((folder / "status.json").read_text())
        assert status["status"] == "finished", status.get("error")
        page.locator("#train-status").filter(has_text=re.compile(r"\bFinished\.")).wait_for(timeout=60_000)
        page.locator("#stop-training").wait_for(state="hidden", timeout=60_000)   # the page has caught up
        page.wait_for_timeout(1000)   # the progress bar's fill slides to its end
        shots.take(page, "trained")

        saved = json.loads((folder / "config.json").read_text())
        asked = {**saved["asked"], "data": str(Path(saved["asked"]["data"]).resolve())}
        expected = {k: v for k, v in asdict(from_cli).items() if k != "choices"}
        assert asked == expected, f"config.json asked for {asked}, the command line for {expected}"
        for name in ("freeze", "epochs", "batch_size", "weight_decay", "label_smoothing", "class_weighting",
                     "schedule", "backbone"):   # and the run trained with them, as asked
            assert saved[name] == getattr(from_cli, name), (name, saved[name])
        epochs_run = (folder / "metrics.jsonl").read_text().splitlines()
        assert len(epochs_run) == 2, f"{len(epochs_run)} epochs recorded, 2 asked"
        flow.assert_no_errors(page, "training with the Advanced settings")
    except BaseException:
        shots.take(page, "failure-training")
        raise
    finally:
        page.close()
