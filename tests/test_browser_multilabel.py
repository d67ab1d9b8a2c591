"""Several labels per photo through the page, in a real browser (Debian's chromium + Playwright).

The multi-label data (60 real photos with the labels ants, bees and grey, as a .zip) is uploaded on the Data
step, which says it is a multi-label task and shows the multi-label check; asking for one class per photo is
refused in words. The page trains it (every layer frozen, 2 epochs): the Train step draws mAP and F1 instead of
accuracy and a per-label table instead of the confusion matrix. The Runs view shows the run in multi-label
words, its per-label table and, for a label, the photos it said wrongly and missed; Try it lists every label
above its threshold. Any traceback, error toast or "Something went wrong" fails the test.
"""
from __future__ import annotations

import re
import shutil

import pytest

import browser_flow as flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]   # a real server, a real browser, a real run


def choose_task(page, words: str, answer: str) -> str:
    """Data step: pick a Kind of task; returns the note beside it once it says `answer` (a pattern)."""
    page.locator("#data-task").get_by_label(words, exact=True).check()
    note = page.locator("#data-task-note")
    note.filter(has_text=re.compile(answer)).wait_for(timeout=60_000)
    return note.inner_text()


def table_rows(page, selector: str) -> list[list[str]]:
    """The rows of a Gradio Dataframe (its grid rows), cells as text."""
    rows = []
    for row in page.locator(f"{selector} [role=row]").all():
        cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
        if cells and cells[0]:
            rows.append(cells)
    return rows


def test_multilabel_data_train_runs_and_try(browser, server, server_runner, shots, multilabel_dataset, tmp_path):
    server_runner.wait()   # nothing else may be training
    data = shutil.make_archive(str(tmp_path / "labels"), "zip", multilabel_dataset)   # images/ and labels.csv
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)

        # 1. Data: recognised as multi-label, with the multi-label check
        page.locator("input[type=file][accept='.zip']").set_input_files(data)
        summary = page.locator("#data-summary")
        summary.filter(has_text="Several labels per photo").wait_for(timeout=120_000)
        assert flow.wait_for_chart(page, "Photos per label")["symbols"] >= 6   # 3 labels x train/val bars
        note = page.locator("#data-task-note")
        note.filter(has_text="Auto reads").wait_for()
        text = summary.inner_text()
        assert "a multi-label task (3 labels, 60 photos)" in text and "Multi-label check" in text, text
        assert "labels per photo on average" in text and "grey" in text, text
        assert "several labels per photo" in note.inner_text(), note.inner_text()
        assert "ants + bees" in page.locator("body").inner_text()   # a sample photo captioned with its labels
        shots.take(page, "data-multilabel")
        flow.assert_no_errors(page, "Data step")

        refused = choose_task(page, "One class per photo", "Not switched")
        assert "Not switched" in refused and "have several labels" in refused, refused
        assert page.locator("#data-task").get_by_label("Auto (from the data)", exact=True).is_checked()
        flow.scroll_to(page, "#data-summary")
        shots.take(page, "data-switch-refused")
        flow.assert_no_errors(page, "Data step, a refused switch")

        # 2-3. Model and Train: every layer frozen, 2 epochs; mAP and F1 instead of accuracy
        flow.step_model(page, trainable_groups=0)
        flow.step_start_training(page, epochs=2)
        seen = flow.wait_for_training(page)
        assert re.search(r"Finished\. Best validation mAP \d\.\d{3}", seen["final"]), seen
        assert not seen["matrices"], "a multi-label run showed a confusion matrix"
        flow.wait_for_chart(page, "mAP and F1 on validation")
        assert flow.chart_marks(page, "mAP and F1 on validation")["lines"] >= 3   # mAP, micro-F1, macro-F1
        assert not flow.shown(page, "#confusion") and flow.shown(page, "#train-scores")
        page.locator("#per-class").filter(has_text="grey").wait_for(timeout=30_000)
        live = table_rows(page, "#per-class")
        assert {row[0] for row in live} == {"ants", "bees", "grey"}, live
        flow.scroll_to(page, "#train-status")
        shots.take(page, "train-multilabel")
        flow.assert_no_errors(page, "Train step")

        # Runs: the run in multi-label words, its per-label table, a label's mistakes
        table = flow.step_runs(page)
        assert "mAP 0." in table, table
        page.locator("#runs-summary").filter(has_text="every label right").wait_for(timeout=30_000)
        words = page.locator("#runs-summary").inner_text()
        assert "several labels per photo" in words and "micro-F1" in words and "macro-F1" in words, words
        assert re.search(r"ants 0\.\d\d, bees 0\.\d\d, grey 0\.\d\d", words), words   # the thresholds
        page.locator("#runs-per-label").filter(has_text="bees").wait_for(timeout=30_000)
        per_label = table_rows(page, "#runs-per-label")
        assert [row[0] for row in per_label] == ["ants", "bees", "grey"], per_label
        assert not flow.shown(page, "#runs-confusion") and flow.shown(page, "#runs-scores")
        flow.wait_for_chart(page, "mAP and F1 on validation")
        run = server_runner.current.snapshot()
        label = _label_with_mistakes(run["run_dir"]) or "bees"
        page.locator("#runs-per-label [role=gridcell]").filter(has_text=re.compile(rf"^\s*{label}\s*$")).first.click()
        label_note = page.locator("#runs-label-note")
        label_note.filter(has_text=re.compile(rf"{label}\b.*threshold")).wait_for(timeout=30_000)
        if "no mistakes" not in label_note.inner_text():   # each gallery shows only with photos in it
            page.locator("#runs-false-positives img, #runs-false-negatives img").first.wait_for(timeout=30_000)
            captions = page.locator("#runs-multilabel").inner_text()
            assert re.search(r"scored \d+% · has: ", captions), captions
        flow.scroll_to(page, "#runs-multilabel")
        shots.take(page, "runs-multilabel")
        flow.assert_no_errors(page, "Runs view")

        # Try it: every label above its threshold, and the near-misses
        page.locator("#runs-try").click()
        page.get_by_role("tab", name="4. Try it", exact=True).wait_for()
        page.locator("#try-ready").wait_for(state="visible", timeout=30_000)
        photo = multilabel_dataset / "images" / "bee1.jpg"   # a bee alone: the other labels are near-misses
        page.locator("input[type=file][accept='image/*']").set_input_files(str(photo))
        advice = page.locator("#try-advice")
        advice.filter(has_text=re.compile(r"finds \d+ labels?|No label reached|unsure")).wait_for(timeout=60_000)
        answer = advice.inner_text()
        assert "Found" in answer and re.search(r"bees \d+% \(its threshold \d+%\)", answer), answer
        assert "Below threshold" in answer and re.search(r"ants \d+% \(its threshold \d+%\)", answer), answer
        assert not flow.shown(page, "#try-label"), "a one-answer box beside a multi-label answer"
        flow.where_it_looked(page)
        shots.take(page, "try-multilabel")
        flow.assert_no_errors(page, "Try it")
    except BaseException:
        shots.take(page, "failure")
        raise
    finally:
        page.close()


def _label_with_mistakes(run_dir: str) -> str | None:
    """A label of the run with at least one photo said wrongly or missed, so its galleries have photos."""
    from components import multilabel_view
    table, labels = multilabel_view._answers(run_dir)
    thresholds = multilabel_view.thresholds_of(run_dir, labels)
    for name in labels:
        said_wrongly, missed, _ = multilabel_view.mistakes(table, labels, name, thresholds)["counts"]
        if said_wrongly or missed:
            return name
    return None
