"""The Runs view's precision-recall chart and "Photos probably in the wrong folder" in a real browser
(Debian's chromium + Playwright): a real run on the example data lists its suspect with the photo and the
reason; ticking it and pressing *Leave the ticked photos out* makes it a ticked finding on the Data step,
which the next run leaves out. Any traceback, error toast or "Something went wrong" fails the test."""
from __future__ import annotations

import pytest

import browser_flow as flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]   # a real server, a real browser, a real run


def test_pick_a_photo_in_the_wrong_folder_and_leave_it_out(browser, server, server_runner, shots):
    from studio import paths
    from studio.data import wrong_folder
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    server_runner.wait()
    run = start_training(TrainConfig(data=str(paths.EXAMPLE_DATASET), freeze="all", epochs=2), runner=server_runner)
    run.wait()
    suspects = wrong_folder.read(run.folder.path)
    assert suspects is not None and len(suspects) >= 1, "the example data's run found no suspect to show"
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.step_data(page)
        flow.step_runs(page)
        page.locator("#runs-pr-note").filter(has_text="ROC AUC").wait_for(timeout=30_000)
        flow.wait_for_chart(page, "Precision and recall, per class")
        flow.scroll_to(page, "#runs-pr-curves")
        shots.take(page, "runs-precision-recall")
        assert flow.chart_marks(page, "Precision and recall, per class")["lines"] >= 2   # ants and bees
        note, left = flow.leave_out_first_wrong_folder_photo(page)
        flow.scroll_to(page, "#runs-wrong-folder")
        shots.take(page, "runs-wrong-folder")
        assert "look" in note and "wrong folder" in note, note
        captions = page.locator("#runs-wrong-folder-gallery").inner_text()
        assert f"looks like {suspects.suggested.iloc[0]}" in captions, captions
        assert "1 photo(s) will be left out of your next run" in left.replace("*", ""), left
        flow.assert_no_errors(page, "Runs view")
        flow.go_to_tab(page, "1. Data")
        ticked = page.get_by_label("Photos probably in the wrong folder (your picks on the Runs page)")
        assert ticked.is_checked()
        flow.scroll_to(page, "#data-findings")
        shots.take(page, "data-finding")
        assert "wrong folder" in page.locator("#data-findings").inner_text()
        flow.assert_no_errors(page, "Data step")
    except BaseException:
        shots.take(page, "failure")
        raise
    finally:
        page.close()
