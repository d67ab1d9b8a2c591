"""Sort my photos in a real browser (Debian's chromium + Playwright): 30 example photos with no labels are
sorted into groups, the photos to label first are suggested (then with a trained run's least-sure photos), a
photo is moved, both groups are named, and the named groups are saved as a dataset
that the Data step then describes. Any traceback, error toast or "Something went wrong" fails the test.

Skipped like tests/test_browser.py when there is no browser and STUDIO_REQUIRE_BROWSER is unset.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import browser_flow as flow
from helpers import example_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real server, a real browser, the real network

PER_CLASS = 15


def test_sort_name_and_save_photos_as_a_dataset(browser, server, shots, tmp_path, trained_run):
    from components import sort_step
    from studio.data import workspace as wd

    files = []
    for label in ("ants", "bees"):   # the kind in the file name, so the test can tell which group is which
        for file in example_files("train", label, PER_CLASS):
            files.append(tmp_path / f"{label}-{file.name}")
            shutil.copyfile(file, files[-1])
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        status = flow.sort_photos(page, files)
        assert f"Sorted {2 * PER_CLASS} photos" in status and "chosen automatically" in status, status
        if not re.search(r"into 2 groups", status):
            flow.regroup(page, 2)
        rows = flow.sort_overview(page)
        assert len(rows) == 2 and sum(int(r[2]) for r in rows) == 2 * PER_CLASS, rows
        assert page.locator("#sort-gallery img").count() == int(rows[0][2])
        assert flow.empty_boxes(page) == [], "sorted photos"   # no empty table or gallery waiting for use
        # each group is named after the kind most of its most typical photos are
        first = "ants" if rows[0][3].count("ants-") >= 2 else "bees"
        second = "bees" if first == "ants" else "ants"
        assert rows[1][3].count(f"{second}-") >= 2, rows     # the network told the two apart
        note, shown = flow.label_next(page)
        assert "most typical photo of each group first" in note and shown >= 2, (note, shown)
        # then a trained run's model is asked which photos it is least sure of
        run_id = Path(trained_run["run_dir"]).name
        offered = sort_step.model_choices(run_id)["next_model"].choices
        run_label = next(label for label, value in offered if value == run_id)
        note, reasons = flow.label_next_asking(page, run_label)
        assert "least sure of" in note and "the model is least sure of it" in reasons, (note, reasons)
        shots.take(page, "sort-label-next-model", element="#sort-section")
        flow.move_first_photo(page, to=2)
        flow.name_sort_group(page, 1, first)
        flow.name_sort_group(page, 2, second)
        rows = flow.sort_overview(page)
        assert [r[1] for r in rows] == [first, second], rows
        assert sum(int(r[2]) for r in rows) == 2 * PER_CLASS and int(rows[1][2]) > 0, rows
        shots.take(page, "sort-groups", element="#sort-section")
        flow.assert_no_errors(page, "sorting photos")

        summary = flow.save_sorted(page, "sorted insects")
        assert f"2 classes, {2 * PER_CLASS} images" in summary, summary
        saved = page.locator("#sort-saved").inner_text()
        assert "make your own dataset here" in saved, saved
        folder = wd.dataset_dir("sorted insects")
        assert wd.counts(folder) == {first: int(rows[0][2]), second: int(rows[1][2])}
        assert all(f.exists() for f in files)          # copied, not moved
        shots.take(page, "sort-saved")
        flow.assert_no_errors(page, "saving the sorted photos as a dataset")

        # photos with no label can go with the saved dataset into training
        note = flow.attach_unlabeled(page, example_files("val", "bees", 6))
        assert "6 unlabeled photos attached" in note, note
        page.get_by_text("Unlabeled photos: 6 attached").wait_for()
        shots.take(page, "sort-unlabeled", element="#data-unlabeled")
        flow.assert_no_errors(page, "attaching unlabeled photos")
    except BaseException:
        shots.take(page, "sort-failure")
        raise
    finally:
        page.close()
