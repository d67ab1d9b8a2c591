"""Two people share one studio with login on, each in a browser of their own (Debian's chromium +
Playwright): ann presses Start and trains at once; bob presses Start a moment later and his run waits
in the queue, his Train step saying where he is in line. Each page shows only its own person's run, in
the Train step and in the Runs view, and bob's run starts only once ann's has ended. Any traceback,
error toast or "Something went wrong" on either page fails the test.

Skipped like tests/test_browser.py when there is no browser and STUDIO_REQUIRE_BROWSER is unset.
"""
from __future__ import annotations

import re
import time

import pytest

import browser_flow as flow
from helpers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real server, two real browsers, two real runs

LOGINS = [("ann", "ann-pw"), ("bob", "bob-pw")]
EPOCHS = 1   # feature extraction, one epoch: the shortest real run


@pytest.fixture(scope="module")
def server(server_runner):
    """The studio with login on (ann and bob), once for this module; yields its URL."""
    from components.app import launch
    demo, url = launch(port=free_port(), block=False, auth=LOGINS, runner=server_runner)
    yield url
    demo.close()


def watch(page, ann, bob, seen: dict, until, timeout_s: float = 2 * flow.TRAIN_TIMEOUT_S) -> None:
    """Poll both live runs until `until()`; records in `seen` when bob's run was first seen out of the
    queue and every moment it was seen going while ann's still was."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"waited {timeout_s} s: ann {ann.status}, bob {bob.status}"
        # bob's first: ann's still going after bob's was seen going means both went at once (a run that
        # ended never goes again), so the other order cannot report an overlap that was not there
        bob_status = bob.status
        ann_status = ann.status
        if bob_status != "queued" and seen["bob_left_queue"] is None:
            seen["bob_left_queue"] = time.time()
        if bob_status != "queued" and ann_status not in ("finished", "stopped", "failed"):
            seen["overlaps"].append((ann_status, bob_status))
        page.wait_for_timeout(100)


def runs_rows(page) -> list[list[str]]:
    """The rows of the Runs view's table (Gradio's grid rows; the table beneath is for sizing)."""
    rows = []
    for row in page.locator("#runs-table [role=row]").all():
        cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
        if cells and any(cells):
            rows.append(cells)
    return rows


def page_html(page) -> str:
    """Everything the page holds, hidden parts included."""
    return page.content()


def own_runs_only(page, user: str, mine, theirs, shows: str) -> None:
    """Open the Runs view (it reads the list again as it opens) and wait until it shows `shows`: it must
    list `user`'s run `mine` and nothing of `theirs`."""
    flow.go_to_tab(page, "Runs")
    page.locator("#runs-table").filter(has_text=shows).wait_for(timeout=30_000)
    rows = runs_rows(page)
    assert [row[-1] for row in rows] == [mine.id], f"{user}'s Runs view lists {rows}, not just {mine.id}"
    assert theirs.id not in page_html(page), f"{user}'s Runs view shows the other person's run {theirs.id}"


def test_a_second_start_waits_in_line_and_each_person_sees_only_their_own(browser, server, server_runner,
                                                                          shots):
    server_runner.wait()   # nothing else may be training
    pages = {}
    try:
        # each person in a browser context of their own (their own login cookie), data and model chosen
        for user, password in LOGINS:
            pages[user] = page = flow.new_page(browser)   # Browser.new_page: a new context each time
            flow.log_in(page, server, user, password)
            summary = flow.step_data(page)
            assert "2 classes" in summary, summary
            flow.step_model(page, trainable_groups=0)
        ann_page, bob_page = pages["ann"], pages["bob"]
        assert ann_page.context is not bob_page.context

        # ann presses Start, then bob at once: his run waits for hers
        flow.step_start_training(ann_page, epochs=EPOCHS)
        ann = server_runner.latest_for("ann")
        bob_status = flow.step_start_training(bob_page, epochs=EPOCHS)
        bob = server_runner.latest_for("bob")
        assert ann is not None and bob is not None and ann is not bob
        assert ann.snapshot()["config"]["owner"] == "ann" and bob.snapshot()["config"]["owner"] == "bob"
        assert ann.is_active(), "ann's run ended before bob pressed Start: nothing to queue behind"
        assert bob.status == "queued", f"bob's run did not wait: {bob.snapshot()['status']}"
        assert re.search(r"Queued: 1st in line; (expected to start in about \d+ min|it starts as soon)",
                         bob_status), bob_status
        assert "Stop takes it out of the queue" in bob_status, bob_status
        assert "in line" in bob_page.locator("#train-status strong").first.inner_text()   # in bold

        # ann's page shows her run going, not a queue; neither page shows the other person's run
        ann_status = flow.status_text(ann_page)
        assert "in line" not in ann_status and "Queued" not in ann_status, ann_status
        assert ann.status in ("preparing", "running"), ann.status
        assert "Someone else" not in ann_status and "Someone else" not in bob_status
        assert ann.id not in page_html(bob_page), "bob's page shows ann's run"
        assert bob.id not in page_html(ann_page), "ann's page shows bob's run"
        bob_progress = bob_page.locator("#train-progress").inner_text()
        assert not re.search(r"[1-9]\d*%|left", bob_progress), f"bob's page shows a run going: {bob_progress!r}"
        shots.take(ann_page, "ann-training")
        shots.take(bob_page, "bob-queued")
        for user, page in pages.items():
            flow.assert_no_errors(page, f"{user}'s Train step while bob waits")

        # bob's Runs view, while both runs are live: his waiting run, not ann's
        own_runs_only(bob_page, "bob", bob, ann, shows=bob.id)
        flow.go_to_tab(bob_page, "3. Train")

        # ann's run ends, then bob's starts
        seen = {"bob_left_queue": None, "overlaps": []}
        watch(bob_page, ann, bob, seen, until=lambda: bob.status != "queued" or not bob.is_active())
        bob_page.locator("#train-status").filter(has_not_text=re.compile("in line|Starting")).wait_for(
            timeout=30_000)
        shots.take(bob_page, "bob-training-or-finished")
        ann_final = flow.wait_for_training(ann_page, timeout_s=60)["final"]
        assert re.search(r"\bFinished\.", ann_final), f"ann's page: {ann_final!r}"
        own_runs_only(ann_page, "ann", ann, bob, shows="Finished")   # bob's run is live now, and not hers

        # bob's run ends; it started only after ann's had ended
        watch(bob_page, ann, bob, seen, until=lambda: not (ann.is_active() or bob.is_active()))
        ann_snapshot, bob_snapshot = ann.snapshot(), bob.snapshot()
        assert ann_snapshot["status"] == "finished", ann_snapshot["error"]
        assert bob_snapshot["status"] == "finished", bob_snapshot["error"]
        assert not seen["overlaps"], f"bob's run went while ann's still did: {seen['overlaps'][:3]}"
        assert seen["bob_left_queue"] is not None and ann_snapshot["finished"] <= seen["bob_left_queue"]
        assert ann_snapshot["finished"] <= bob_snapshot["finished"]
        bob_final = flow.wait_for_training(bob_page, timeout_s=60)["final"]
        assert re.search(r"\bFinished\.", bob_final), f"bob's page: {bob_final!r}"
        own_runs_only(bob_page, "bob", bob, ann, shows="Finished")
        for user, page in pages.items():
            flow.assert_no_errors(page, f"{user}'s page at the end")
    except BaseException:
        for user, page in pages.items():
            shots.take(page, f"{user}-failure")
        raise
    finally:
        for page in pages.values():
            page.close()
