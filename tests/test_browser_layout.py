"""What the page shows, and where, in a real browser (Debian's chromium at 1280x720).

Before any data or run, each step shows only what applies: no empty chart, gallery, table or file box.
The confusion matrix stays readable and clickable from 2 to 30 classes: it never overlaps the
per-class table and its last column can always be reached inside its own box. Class names that look
like numbers (0, 007, True, NaN ...) open their photos. The polled status line never carries Gradio's
"queue: 1/1 | 0.4s" overlay.

Screenshots go to $STUDIO_SCREENSHOTS/../layout (default test-artifacts/layout/). Skipped only when
neither Playwright nor a chromium is installed and STUDIO_REQUIRE_BROWSER is unset (as test_browser.py).
"""
from __future__ import annotations

import re
import shutil
import threading
import time

import pytest

import browser_flow as flow
from studio import faults
from helpers import TRICKY_CLASS_NAMES, WORKSPACE, example_files, named_class_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # drives chromium through whole real runs

# Gradio's progress overlay: "queue: 1/1 |", "processing |", "0.4s", "0.1/0.1s" (the studio writes "15 s")
OVERLAY_TEXT = re.compile(r"queue:|processing \||\b\d+(\.\d+)?(/\d+(\.\d+)?)?s\b")
STEPS = ("1. Data", "3. Train", "4. Try it", "5. Export")


def test_each_step_shows_only_what_applies_before_data_and_runs(browser, server, shots, server_runner):

    assert server_runner.current is None   # as in a studio just started: no run yet
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        page.wait_for_timeout(2500)  # a tick of the Train step's timer has come and gone
        for step in STEPS:
            flow.go_to_tab(page, step)
            page.wait_for_timeout(400)  # what opening the tab triggers (Try it, Export) has answered
            shots.take(page, "empty-" + step.split(". ")[-1].lower().replace(" ", "-"))
            assert flow.empty_boxes(page) == [], f"{step} before any data or run"
        flow.go_to_tab(page, "1. Data")
        assert "No data chosen yet" in page.locator("#data-summary").inner_text()
        for part in ("#data-overview", "#data-skipped", "#data-checks", "#data-report", "#data-finding-files"):
            assert not flow.shown(page, part), f"{part} is shown before any data is chosen"
        assert page.get_by_role("button", name=re.compile("Use the example")).is_visible()
        flow.go_to_tab(page, "3. Train")
        assert "No training yet" in flow.status_text(page)
        assert flow.shown(page, "#start-training")
        assert not flow.shown(page, "#stop-training") and not flow.shown(page, "#train-results")
        flow.go_to_tab(page, "4. Try it")
        assert "No trained model yet" in page.locator("#try-no-model").inner_text()
        assert not flow.shown(page, "#try-ready")  # no photo box: there is no model to give a photo to
        flow.go_to_tab(page, "5. Export")
        assert "No trained model yet" in page.locator("#export-target").inner_text()
        assert not flow.shown(page, "#export-ready") and not flow.shown(page, "#export-file")
        flow.assert_no_errors(page, "the empty page")

        # data chosen: its overview and report appear; still nothing empty (the example has no finding)
        flow.step_data(page)
        page.locator("#data-report").wait_for()
        assert flow.shown(page, "#data-overview") and flow.shown(page, "#data-checks")
        assert not flow.shown(page, "#data-skipped")  # no file of the example is left out
        assert flow.empty_boxes(page) == [], "the Data step with the example"
        shots.take(page, "data-chosen")
        flow.assert_no_errors(page, "choosing the example")
    except BaseException:
        shots.take(page, "failure-empty")
        raise
    finally:
        page.close()


def tricky_dataset(root):
    """The ten tricky class names (0, 007, True, NaN, 猫 ...). Class 0 holds ants, every other class
    bees, and class 0's validation photos are mirror images of its training photos: even a model trained
    for seconds gets them right, so class 0's diagonal cell has photos to open."""
    from PIL import Image, ImageOps

    count = 6
    ants = example_files("train", "ants", count)
    bees = {split: example_files(split, "bees", count * len(TRICKY_CLASS_NAMES)) for split in ("train", "val")}
    for k, name in enumerate(TRICKY_CLASS_NAMES):
        for split in ("train", "val"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
        if k == 0:
            for source in ants:
                shutil.copyfile(source, root / "train" / name / source.name)
            for source in ants[:3]:
                ImageOps.mirror(Image.open(source).convert("RGB")).save(root / "val" / name / f"mirror-{source.name}")
            continue
        for source in bees["train"][k * count:(k + 1) * count]:
            shutil.copyfile(source, root / "train" / name / source.name)
        for source in bees["val"][k * 3:(k + 1) * 3]:
            shutil.copyfile(source, root / "val" / name / source.name)
    return root


def train(runner, data, wait: bool = True):
    """A real run, as fast as they come: every layer frozen (the photos' features are computed once), only
    the original photos, two epochs of small batches (enough steps for the new layer to learn). In the
    server's `runner`, so the page shows it as the studio's run."""
    from studio import paths
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    runner.wait()
    run = start_training(TrainConfig(data=str(data), backbone="mobilenetv2_100", freeze="all", epochs=2,
                                     batch_size=8, patience=0, feature_views=1, runs_root=str(paths.runs_dir())),
                         runner=runner)
    if wait:
        run.wait()
        assert run.snapshot()["status"] == "finished", run.snapshot()["error"]
    return run


def check_matrix(page, root: str, table: str, classes: int) -> dict:
    """The matrix shows every class, overlaps nothing and its last column can be seen in its box."""
    layout = flow.matrix_layout(page, root, table)
    assert layout["columns"] == classes, layout
    assert not layout["overlap"], f"{classes} classes: the matrix overlaps the per-class table: {layout}"
    assert layout["within_row"], f"{classes} classes: the matrix's box is wider than the page: {layout}"
    assert layout["last_cell_inside"] and layout["last_head_inside"] and layout["last_cell_on_top"], (
        f"{classes} classes: the last column cannot be seen: {layout}")
    return layout


def test_the_confusion_matrix_fits_from_2_to_30_classes(browser, server, shots, server_runner):
    from components import views
    from studio.runs import history

    root = WORKSPACE / "layout"
    two = train(server_runner, named_class_dataset(root / "two-classes", ["cats", "dogs"], train=4, val=2))
    thirty_names = [f"kind {k:02d}" for k in range(1, 30)] + ["a much longer class name"]
    thirty = train(server_runner, named_class_dataset(root / "thirty-classes", thirty_names, train=2, val=1))
    tricky_data = tricky_dataset(root / "tricky-names")

    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.go_to_tab(page, "3. Train")  # attaches to the latest run: the thirty classes
        page.locator("#confusion table.ts-confusion").wait_for(timeout=30_000)
        layout = check_matrix(page, "#confusion", "#per-class", 30)
        assert layout["scrolls"], layout  # thirty classes are wider than the page: the box scrolls
        assert layout["table"]["top"] >= layout["matrix"]["bottom"], "the table is not below a wide matrix"
        shots.take(page, "train-30-classes-scrolled", element=".ts-evaluation-row:has(#confusion)")
        flow.scroll_matrix_home(page, "#confusion")
        shots.take(page, "train-30-classes", element=".ts-evaluation-row:has(#confusion)")

        # the ten tricky names, trained while the page watches: the status line never shows the overlay.
        # A run this small can end between two of the page's polls on a busy machine, so the run waits
        # before announcing each epoch until the page has shown it getting ready (epoch 1) and training (2).
        page_saw = {1: threading.Event(), 2: threading.Event()}
        faults.set_hook("announce_epoch", lambda epoch, **_: page_saw[epoch].wait(flow.TRAIN_TIMEOUT_S))
        try:
            run = train(server_runner, tricky_data, wait=False)
            overlays, statuses, preparing = [], [], []
            deadline = time.monotonic() + flow.TRAIN_TIMEOUT_S
            while time.monotonic() < deadline:
                status = flow.status_text(page)
                seen = status + "\n" + page.locator("#train-progress").inner_text()
                if not statuses or statuses[-1] != status:
                    statuses.append(status)
                if OVERLAY_TEXT.search(seen):
                    overlays.append(seen)
                if status.endswith("…"):  # getting ready: no epoch of this run to show yet
                    preparing.append((flow.shown(page, "#train-results"), flow.shown(page, "#stop-training")))
                    if preparing[-1] == (False, True):
                        page_saw[1].set()
                if status.startswith("Training."):
                    page_saw[2].set()
                # the page showed the last run's end at first: stop at this run's end, seen after its start
                ended = re.search(r"\bFinished\.|Training failed", status)
                if ended and not run.is_active() and any("Finished." not in s for s in statuses):
                    break
                page.wait_for_timeout(100)
        finally:
            faults.set_hook("announce_epoch", None)
            for event in page_saw.values():
                event.set()  # a run still waiting goes on
        assert run.snapshot()["status"] == "finished", run.snapshot()["error"]
        assert "Finished." in statuses[-1] and any("Finished." not in s for s in statuses), statuses  # it watched
        assert not overlays, f"Gradio's overlay in the status line: {overlays[:3]}"
        # while it got ready the last run's results went away and Stop came; after it, Stop went
        assert preparing and (False, True) in preparing, preparing
        page.wait_for_function("() => !document.querySelector('#stop-training')?.checkVisibility()")

        page.locator("#confusion td[data-true='猫']").first.wait_for(timeout=30_000)  # the new run's matrix
        page.locator("#mistakes img").first.wait_for()
        assert flow.empty_boxes(page) == [], "the Train step after a run"  # no cell picked: no empty gallery
        check_matrix(page, "#confusion", "#per-class", 10)
        flow.scroll_matrix_home(page, "#confusion")
        shots.take(page, "train-10-classes", element=".ts-evaluation-row:has(#confusion)")
        # class 0's diagonal cell opens its photos (a class named 0 is text, not the number 0)
        count = int(page.locator("#confusion td[data-true='0'][data-predicted='0']").inner_text())
        assert count > 0, "class 0's photos were not recognised: nothing to open"  # see tricky_dataset
        note, thumbnails = flow.click_confusion_cell(page, "0", "0")
        assert "No validation photo" not in note and f"{count} validation photo" in note.replace("*", ""), note
        assert thumbnails == count, (note, thumbnails)
        flow.scroll_to(page, "#cell-note")
        shots.take(page, "train-10-classes-photos-of-0")
        flow.assert_no_errors(page, "the Train step with ten tricky class names")

        # with a model, Try it and Export show their controls, and still no empty box
        flow.go_to_tab(page, "4. Try it")
        page.locator("#try-ready").wait_for()
        assert not flow.shown(page, "#try-no-model") and flow.empty_boxes(page) == [], "Try it with a model"
        flow.go_to_tab(page, "5. Export")
        page.locator("#export-ready").wait_for()
        assert "No trained model" not in page.locator("#export-target").inner_text()
        assert not flow.shown(page, "#export-file") and flow.empty_boxes(page) == [], "Export with a model"

        # every run again in the Runs view, each matrix with its per-class table
        flow.step_runs(page)
        for done, classes in ((two, 2), (thirty, 30), (run, 10)):
            flow.choose_dropdown(page, "Run to look at", views.run_choice_label(history.summarize(done.dir)))
            page.locator(f"#runs-confusion thead th:nth-child({classes + 1})").wait_for(timeout=30_000)
            page.wait_for_function("n => document.querySelectorAll('#runs-confusion thead th').length === n",
                                   arg=classes + 1)
            layout = check_matrix(page, "#runs-confusion", "#runs-per-class", classes)
            if classes == 2:  # a small matrix keeps the table beside it
                assert layout["table"]["left"] >= layout["matrix"]["right"], layout
            flow.scroll_matrix_home(page, "#runs-confusion")
            shots.take(page, f"runs-{classes}-classes", element=".ts-evaluation-row:has(#runs-confusion)")
        note, thumbnails = flow.click_confusion_cell(page, "0", "0", root="#runs-confusion", prefix="runs-")
        assert "No validation photo" not in note and thumbnails > 0, (note, thumbnails)
        flow.assert_no_errors(page, "the Runs view")
        assert server_runner.current is run
    except BaseException:
        shots.take(page, "failure-matrix")
        raise
    finally:
        page.close()
