"""The whole wizard in a real browser: Debian's chromium driven by Playwright.

Data (the example) -> Model (everything frozen: seconds per epoch) -> Train (2 epochs,
the page reloaded mid-run must re-attach) -> Try it -> Export (the downloaded file
must load). Any traceback, error toast or "Something went wrong" fails the test.

A screenshot of every step goes to $STUDIO_SCREENSHOTS (default test-artifacts/browser/);
their paths are printed, so a failing CI log says where to look.

Skipped only when neither Playwright nor a chromium is installed and
STUDIO_REQUIRE_BROWSER is unset; .ci/run sets it, so in CI a missing browser fails.
"""
from __future__ import annotations

import filecmp
import re
import zipfile
from pathlib import Path

import pytest

import browser_flow as flow
from helpers import example_files, shifted_copies

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # drives chromium through whole real runs

EXAMPLE_VAL_IMAGES = 153  # 70 ants + 83 bees in assets/example/hymenoptera/val


def test_the_wizard_in_a_real_browser(browser, server, tmp_path, server_runner):
    from studio import modelfile
    from studio.inference import Predictor
    from studio.runs import MODEL_FILE

    server_runner.wait()  # nothing else may be training
    shots = flow.Screenshots(flow.SCREENSHOTS)
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.assert_no_errors(page, "opening the page")

        # 1. Data: the example
        summary = flow.step_data(page)
        shots.take(page, "data")
        assert "2 classes, 398 images" in summary, summary
        assert flow.chart_marks(page, "Images per class")["symbols"] >= 4  # 2 classes x train/val bars
        flow.assert_no_errors(page, "Data step")

        # 2. Model: the top layer group fine-tuned (a few seconds an epoch: the page sees each epoch)
        explanation = flow.step_model(page, trainable_groups=1)
        shots.take(page, "model")
        assert "Partial fine-tuning" in explanation and "Trains" in explanation, explanation
        flow.assert_no_errors(page, "Model step")

        # 3. Train: 2 epochs; reload while it runs
        flow.step_start_training(page, epochs=2)
        shots.take(page, "train-started")
        run = server_runner.current
        assert run is not None and run.snapshot()["epochs"] == 2, "the page did not start a 2-epoch run"
        running_at_reload = run.is_active()
        assert running_at_reload, "the run ended before the page could be reloaded during it"
        page.reload()
        flow.open_studio(page, server)
        assert "No data chosen yet" in page.locator("#data-summary").inner_text()  # really a new session
        flow.go_to_tab(page, "3. Train")
        status = flow.wait_for_attached_run(page, timeout_s=30)
        shots.take(page, "train-reattached")
        progress = page.locator("#train-progress").inner_text()
        assert "No training yet" not in status, status
        assert re.search(r"\d+%", progress), f"no progress after the reload: {progress!r}"
        flow.assert_no_errors(page, "Train step after a reload")

        seen = flow.wait_for_training(page)
        assert re.search(r"\bFinished\.", seen["final"]), f"training did not finish: {seen}"
        snapshot = run.snapshot()
        assert snapshot["status"] == "finished" and len(snapshot["history"]) == 2, snapshot["status"]
        loss = flow.wait_for_chart(page, "Loss (lower is better)")
        accuracy = flow.wait_for_chart(page, "Accuracy (higher is better)")
        assert loss["lines"] >= 2 or loss["canvas"], f"loss chart: {loss}"  # train and validation
        assert accuracy["lines"] >= 2 or accuracy["canvas"], f"accuracy chart: {accuracy}"
        page.locator("#confusion table").wait_for()
        cells = flow.confusion_cells(page)
        assert len(cells) == 4 and sum(cells) == EXAMPLE_VAL_IMAGES, cells
        assert seen["matrices"] and seen["matrices"][-1] == cells
        # the live view went through the first epoch before the last (curves and matrix per epoch)
        assert any("Epoch 1 of 2" in status for status in seen["statuses"]), seen["statuses"]
        assert "ants" in page.locator("#confusion table").inner_text()
        flow.scroll_to(page, "#train-status")
        shots.take(page, "train-finished")
        flow.assert_no_errors(page, "Train step")

        # a cell of the matrix opens the photos it counts
        note, thumbnails = flow.click_confusion_cell(page, "bees", "bees")
        assert f"{cells[3]} validation photos of bees" in note.replace("*", ""), note
        assert thumbnails == min(48, cells[3]), (note, thumbnails)
        flow.scroll_to(page, "#cell-note")
        shots.take(page, "train-cell-photos")
        flow.assert_no_errors(page, "clicking a matrix cell")

        # 4. Try it: a validation bee
        bee = example_files("val", "bees", 100)[-1]
        top, advice = flow.step_try(page, bee)
        note = flow.where_it_looked(page)
        assert "Where the model looked to answer bees" in note, note
        shots.take(page, "try")
        assert [name for name, _ in top] and top[0][0] == "bees", top
        assert {name for name, _ in top} == {"ants", "bees"}, top
        assert all(re.fullmatch(r"\d+%", p) for _, p in top), top
        assert "bees" in advice, advice
        flow.assert_no_errors(page, "Try it step")

        # 5. Export: download the bundle (one zip) and load its model file with the studio's own loader
        downloaded, message = flow.step_export(page, tmp_path)
        shots.take(page, "export")
        assert "Ready" in message and "matches the trained model on" in message, message
        assert downloaded.suffix == ".zip" and downloaded.stat().st_size > 100_000, downloaded
        with zipfile.ZipFile(downloaded) as archive:
            assert {"model.onnx", "README.md", "predict.py", "config.json"} <= set(archive.namelist())
            archive.extract("model.safetensors", tmp_path / "unzipped")
        downloaded = tmp_path / "unzipped" / "model.safetensors"
        assert filecmp.cmp(downloaded, Path(snapshot["run_dir"]) / MODEL_FILE, shallow=False)
        meta = modelfile.read_metadata(downloaded)
        assert meta["classes"] == ["ants", "bees"] and meta["backbone"] == snapshot["config"]["backbone"]
        assert Predictor(downloaded).predict([bee])[0][0][0] == "bees"
        flow.assert_no_errors(page, "Export step")

        # 6. Runs: the run is listed and its matrix opens its photos too
        table = flow.step_runs(page)
        assert "finished" in table.lower() and "example" in table, table
        page.locator("#runs-confusion table").wait_for(timeout=30_000)
        note, thumbnails = flow.click_confusion_cell(page, "ants", "ants", root="#runs-confusion", prefix="runs-")
        assert "validation photos of ants" in note.replace("*", "") and thumbnails > 0, note
        shots.take(page, "runs")
        assert flow.show_where_it_looked_on_runs(page) > 0
        flow.scroll_to(page, "#runs-cell-gallery")
        shots.take(page, "runs-heatmaps")
        note, left = flow.leave_out_first_wrong_folder_photo(page)
        flow.scroll_to(page, "#runs-wrong-folder")
        shots.take(page, "runs-wrong-folder")
        assert "wrong folder" in note, note
        if left:   # the run found a photo: ticked and left out, it is a ticked finding on the Data step
            assert "1 photo(s) will be left out of your next run" in left.replace("*", ""), left
            flow.go_to_tab(page, "1. Data")
            ticked = page.get_by_label("Photos probably in the wrong folder (your picks on the Runs page)")
            assert ticked.is_checked()
            flow.go_to_tab(page, "Runs")
        flow.assert_no_errors(page, "Runs view")

        # 7. Try it -> Check new photos, then Adapt to new photos: a "new site" of inverted, turned photos
        from studio import paths
        new_site = shifted_copies(paths.EXAMPLE_DATASET, "browser-new-site", every=5)   # 31 of the 153
        photos = sorted(new_site.glob("*.jpg"))
        words, table = flow.step_check_new_photos(page, photos)
        flow.scroll_to(page, "#check-new-photos")
        shots.take(page, "try-check-new-photos")
        assert f"{len(photos)} photos checked" in words and "shift" in words, words
        assert "unfamiliar" in table or "familiar" in table, table
        assert any(p.stem in table for p in photos), table
        flow.assert_no_errors(page, "Check new photos")
        adapted = flow.step_adapt(page)
        flow.scroll_to(page, "#adapt-words")
        shots.take(page, "try-adapt")
        assert "Adapted." in adapted or "left as it is" in adapted, adapted
        if "Adapted." in adapted:
            assert server_runner.current.snapshot()["config"]["adapted_from"] == snapshot["run_dir"]
        flow.assert_no_errors(page, "Adapt to new photos")
    except BaseException:
        shots.take(page, "failure")
        raise
    finally:
        shots.report()
        page.close()


def test_resume_a_failed_run_from_the_runs_view(browser, server, small_dataset, server_runner):
    """A run that failed after its second epoch (disk full while saving) shows **Resume this run**;
    clicking it carries the run on in the Train tab to its last epoch."""
    from components import views
    from helpers import cut_off_run
    from studio import paths
    from studio.runs import history
    from studio.training.config import TrainConfig

    run = cut_off_run(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all", epochs=4,
                                  patience=0, runs_root=str(paths.runs_dir())), saving_epoch=3)
    assert run.snapshot()["status"] == "failed"

    page = flow.new_page(browser)
    shots = flow.Screenshots(flow.SCREENSHOTS / "resume")  # its own folder: a new series clears its folder's
    try:
        flow.open_studio(page, server)
        flow.step_runs(page)
        flow.choose_dropdown(page, "Run to look at", views.run_choice_label(history.summarize(run.dir)))
        resume = page.locator("#runs-resume")
        resume.wait_for(state="visible", timeout=30_000)
        shots.take(page, "runs-resume")
        resume.click()
        page.locator("#train-status").wait_for(state="visible", timeout=30_000)   # the Train tab opened
        seen = flow.wait_for_training(page)
        assert re.search(r"\bFinished\.", seen["final"]), seen
        final = run.snapshot() if server_runner.current is None else server_runner.current.snapshot()
        assert final["id"] == run.id and final["status"] == "finished", final["status"]
        assert [h["epoch"] for h in final["history"]] == [1, 2, 3, 4] and "Resumed after epoch 2." in final["notes"]
        flow.assert_no_errors(page, "resuming a run")
    except BaseException:
        shots.take(page, "failure-resume")
        raise
    finally:
        shots.report()
        page.close()
