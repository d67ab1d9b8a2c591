"""Screenshots of each wizard step for the README, taken from the real page.

    python tools/screenshots.py [--out assets/screenshots]

Launches the studio on a free port with a throw-away STUDIO_HOME, walks the same flow
as tests/test_browser.py in Debian's chromium (the example data, all layers frozen,
2 epochs, a validation bee, the model-file export) and saves one 1280x720 PNG per
step: data.png, model.png, train.png, mistakes.png, try.png, export.png, runs.png. Needs Playwright and
chromium (`apt-get install chromium`); it takes about a minute on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "screenshots",
                        help="folder for the PNGs (default: assets/screenshots)")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="studio-screenshots-")
    os.environ["STUDIO_HOME"] = home  # no past runs on the pictures, nothing left in ~/.transfer_studio
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

    import browser_flow as flow
    from playwright.sync_api import sync_playwright

    from components.app import launch
    from studio import paths

    executable = flow.chromium_path()
    if executable is None:
        print("No chromium found: apt-get install chromium (or set STUDIO_CHROMIUM).", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    bee = sorted((paths.EXAMPLE_DATASET / "val" / "bees").glob("*.jpg"))[-1]
    demo, url = launch(port=free_port(), block=False)
    saved = []

    def shot(page, name: str, scroll_to: str | None = None, margin: int = 12) -> None:
        page.mouse.move(1275, 715)  # no hover highlight where the last click was
        if scroll_to:
            flow.scroll_to(page, scroll_to, margin)
        else:
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
        problems = flow.page_errors(page)
        if problems:
            raise RuntimeError(f"{name}: the page shows an error: {problems}")
        path = args.out / f"{name}.png"
        page.screenshot(path=str(path))  # the viewport: 1280x720, as on a projector
        saved.append(path)
        print(path)

    try:
        with sync_playwright() as playwright:
            browser = flow.launch_browser(playwright, executable)
            page = flow.new_page(browser)
            flow.open_studio(page, url)
            flow.step_data(page)
            shot(page, "data", "#data-summary", margin=60)  # the summary, chart and samples
            flow.step_model(page)
            shot(page, "model")
            flow.step_start_training(page, epochs=2)
            seen = flow.wait_for_training(page)
            if "Finished." not in seen["final"]:
                raise RuntimeError(f"training did not finish: {seen['final'] or seen['statuses'][-1:]}")
            flow.wait_for_chart(page, "Loss (lower is better)")
            flow.wait_for_chart(page, "Accuracy (higher is better)")
            page.locator("#confusion table").wait_for()
            shot(page, "train", "#train-status", margin=0)  # status, curves, matrix
            flow.click_confusion_cell(page, "bees", "ants")
            shot(page, "mistakes", "#confusion", margin=0)  # a clicked cell's photos
            flow.step_try(page, bee)
            shot(page, "try")
            flow.step_export(page)
            shot(page, "export")
            flow.step_runs(page)
            shot(page, "runs")
            browser.close()
    finally:
        demo.close()
    print(f"{len(saved)} screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
