"""Making a dataset in a real browser (Debian's chromium + Playwright), then training on it.

Files: two classes from photo files -> Use this dataset -> Model (everything frozen) -> Train one
epoch -> Try it. Webcam: Chromium's fake camera (its test pattern), one shot and a burst. Phone:
the section fits a 390 px wide screen and its controls can be reached there.
Any traceback, error toast or "Something went wrong" fails the test.

Skipped like tests/test_browser.py when there is no browser and STUDIO_REQUIRE_BROWSER is unset.
"""
from __future__ import annotations

import re

import pytest

import browser_flow as flow
from helpers import example_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # drives chromium through whole real runs

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    executable = flow.browser_executable()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = flow.launch_browser_with_fake_camera(playwright, executable)
        yield chromium
        chromium.close()


def test_make_a_dataset_from_files_train_and_predict(browser, server, shots, server_runner):
    from studio.data import workspace as wd

    server_runner.wait()
    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.create_dataset(page, "desk insects")
        # names that can't be folders are refused, in words, and nothing is made
        page.get_by_label("New class name").fill("../ants")
        page.get_by_role("button", name="Add class", exact=True).click()
        assert "'..'" in flow.create_status(page, "Not done")
        for label in ("ants", "bees"):
            flow.add_class(page, label)
            count = flow.add_photo_files(page, label, example_files("train", label, 8))
            assert count == 8, count
        table = page.locator("#create-classes").inner_text()
        assert len(re.findall(r"\bready\b(?!\?)", table)) == 2 and "needs" not in table, table
        assert page.locator("#create-gallery img").count() == 8  # the picked class's thumbnails
        page.locator("#create-check").filter(has_text="Data check").wait_for()
        folder = wd.dataset_dir("desk insects")
        assert wd.counts(folder) == {"ants": 8, "bees": 8}
        shots.take(page, "made-from-files")
        flow.assert_no_errors(page, "making a dataset from files")

        summary = flow.use_made_dataset(page)
        assert "2 classes, 16 images" in summary, summary
        flow.step_model(page, trainable_groups=0)
        flow.step_start_training(page, epochs=1)
        seen = flow.wait_for_training(page)
        assert re.search(r"\bFinished\.", seen["final"]), f"training did not finish: {seen}"
        assert server_runner.current.snapshot()["config"]["data"] == str(folder)
        top, advice = flow.step_try(page, example_files("val", "bees", 3)[-1])
        shots.take(page, "made-from-files-try")
        assert {name for name, _ in top} == {"ants", "bees"}, top
        assert all(re.fullmatch(r"\d+%", p) for _, p in top), top
        flow.assert_no_errors(page, "training on a dataset made in the browser")
    except BaseException:
        shots.take(page, "made-from-files-failure")
        raise
    finally:
        page.close()


def test_webcam_shots_and_burst_with_the_fake_camera(browser, server, shots):
    from studio.data import workspace as wd

    page = flow.new_page(browser)
    try:
        flow.open_studio(page, server)
        flow.create_dataset(page, "webcam things")
        flow.add_class(page, "pattern")
        flow.start_camera(page)
        assert flow.take_photo(page, "pattern") == 1
        assert flow.take_photo(page, "pattern") == 2
        count = flow.burst(page, "pattern", at_least=4)
        assert count >= 6, count
        page.wait_for_timeout(1000)  # frames already on their way when Burst was unticked
        files = wd.images(wd.dataset_dir("webcam things"), "pattern")
        settled = len(files)
        page.wait_for_timeout(1500)
        assert len(wd.images(wd.dataset_dir("webcam things"), "pattern")) == settled  # unticked: no more saved
        assert sum(f.name.startswith("webcam-") for f in files) == 2
        assert sum(f.name.startswith("burst-") for f in files) >= 4
        from PIL import Image
        with Image.open(files[0]) as first:
            assert first.format == "JPEG" and min(first.size) >= 100, first.size
        # near-identical frames of a still camera: the check says so while photos are added
        page.locator("#create-check").filter(has_text=re.compile("Near-duplicates|Data check")).wait_for()
        # remove one: click its thumbnail, press remove
        thumbnail = page.get_by_role("button", name=re.compile(r"^Thumbnail 1 of")).first
        thumbnail.wait_for()
        thumbnail.click()
        flow.create_status(page, "Picked")
        page.get_by_role("button", name="Remove the picked photo").click()
        flow.create_status(page, "Removed")
        assert len(wd.images(wd.dataset_dir("webcam things"), "pattern")) == settled - 1
        shots.take(page, "webcam")
        flow.assert_no_errors(page, "webcam")
    except BaseException:
        shots.take(page, "webcam-failure")
        raise
    finally:
        page.close()


def test_the_section_works_on_a_phone_sized_screen(browser, server, shots):
    page = browser.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.set_default_timeout(30_000)
    page.add_init_script(flow.RECORD_ERRORS)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    try:
        flow.open_studio(page, server)
        flow.create_dataset(page, "phone")
        flow.add_class(page, "cups")
        flow.start_camera(page)
        assert flow.take_photo(page, "cups") == 1
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than a phone screen"
        for selector in ("#create-webcam video", "#create-take", "#create-class-name input", "#create-gallery"):
            box = page.locator(selector).first.bounding_box()
            assert box and box["x"] >= -1 and box["x"] + box["width"] <= PHONE["width"] + 1, (selector, box)
        shots.take(page, "phone")
        flow.assert_no_errors(page, "phone-sized screen")
    except BaseException:
        shots.take(page, "phone-failure")
        raise
    finally:
        page.close()
