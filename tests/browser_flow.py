"""The studio's wizard driven in a real browser: one small function per step.

Used by tests/test_browser.py (which asserts on what each step shows) and by
tools/screenshots.py (which saves the README's pictures). Chromium is Debian's
(`apt-get install chromium`), driven by Python Playwright through
`executable_path`: Playwright's own browser downloads are never needed.

Each step function takes the Playwright page, does what a person would do and
waits until the page shows the result; it returns what it saw, for the caller
to check. New wizard steps get their own function here.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1280, "height": 720}
TRAIN_TIMEOUT_S = 180
REPO = Path(__file__).resolve().parent.parent


# ---- the browser ------------------------------------------------------------------------------

def chromium_path() -> str | None:
    """Debian's chromium (or STUDIO_CHROMIUM, or any chromium on PATH, or Playwright's own), else None."""
    candidates = [os.environ.get("STUDIO_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    try:  # a browser downloaded by `playwright install chromium` also works
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            bundled = p.chromium.executable_path
        if bundled and os.path.isfile(bundled):
            return bundled
    except Exception:  # noqa: BLE001 - playwright missing or without a browser
        pass
    return None


def launch_browser(playwright, executable: str):
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


# Errors may vanish before a step looks (a toast times out, the next update clears a
# component's error badge): remember every one that ever appears.
RECORD_ERRORS = """
window.__studioErrors = [];
new MutationObserver(() => {
    const found = document.querySelectorAll(
        '.toast-body.error, [data-testid="toast-body"].error, [data-testid="status-tracker"] .error');
    for (const el of found) {
        if (el.__seen || !el.innerText.trim()) continue;
        el.__seen = true;
        const where = el.closest('.block');
        const kind = el.closest('.toast-body') ? 'error toast' : 'component error';
        window.__studioErrors.push(kind + ': ' + el.innerText.trim()
            + (where && where.id ? ' (#' + where.id + ')' : ''));
    }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


def new_page(browser):
    """A 1280x720 page (a projector) that records JavaScript errors in page.js_errors
    and every error toast or component error badge (page_errors reports them)."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.set_default_timeout(30_000)
    page.add_init_script(RECORD_ERRORS)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    return page


def open_studio(page, url: str) -> None:
    page.goto(url)
    page.locator("#data-summary").wait_for()
    page.get_by_role("tab", name="1. Data").wait_for()


def go_to_tab(page, name: str) -> None:
    """Click a wizard tab by its visible name ("2. Model") and wait until it is selected."""
    tab = page.get_by_role("tab", name=name, exact=True)
    tab.click()
    page.wait_for_function("el => el.getAttribute('aria-selected') === 'true'", arg=tab.element_handle())


# ---- what must never be on the page ------------------------------------------------------------

def page_errors(page) -> list[str]:
    """Everything on the page that says something went wrong: tracebacks, Gradio error toasts,
    a component's own error badge, "Something went wrong", uncaught JavaScript errors."""
    problems = []
    text = page.evaluate("() => document.body.innerText")
    for phrase in ("Traceback", "Something went wrong"):
        if phrase in text:
            at = text.index(phrase)
            problems.append(f"page text: {text[max(0, at - 200):at + 300]!r}")
    problems += page.evaluate("() => window.__studioErrors || []")
    for toast in page.locator("[data-testid='toast-body'].error, .toast-body.error").all():
        problems.append(f"error toast: {toast.inner_text().strip()}")
    for badge in page.locator("[data-testid='status-tracker'] .error").all():
        if badge.is_visible() and badge.inner_text().strip():
            problems.append(f"component error: {badge.inner_text().strip()}")
    problems += [f"JavaScript error: {error}" for error in getattr(page, "js_errors", [])]
    return [p for p in dict.fromkeys(problems) if not any(p != q and q.startswith(p) for q in problems)]


# ---- the steps ---------------------------------------------------------------------------------

def step_data(page) -> str:
    """Data: press "Use the example"; returns the summary text once it shows the classes."""
    go_to_tab(page, "1. Data")
    page.get_by_role("button", name=re.compile("Use the example")).click()
    summary = page.locator("#data-summary")
    summary.filter(has_text=re.compile(r"\d+ classes")).wait_for(timeout=120_000)
    wait_for_chart(page, "Images per class")
    return summary.inner_text()


def step_model(page, trainable_groups: int = 0) -> str:
    """Model: keep the default backbone, choose "I choose" and leave the top `trainable_groups`
    layer groups trainable (0: feature extraction, the fastest); returns the explanation shown."""
    go_to_tab(page, "2. Model")
    page.get_by_label("I choose how many layers stay frozen").check()
    slider = page.get_by_label(re.compile("^range slider for Layers kept frozen"))
    slider.wait_for()
    wanted = str(int(slider.get_attribute("max")) - trainable_groups)  # all frozen is the right end
    if slider.input_value() != wanted:
        slider.fill(wanted)
    explanation = page.locator("#freeze-explanation")
    explanation.filter(has_text="Feature extraction" if not trainable_groups else "Partial fine-tuning").wait_for()
    return explanation.inner_text()


def choose_dropdown(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_function("([el, v]) => el.value === v",
                           arg=[page.get_by_label(label, exact=True).element_handle(), option])


def step_start_training(page, epochs: int = 2) -> str:
    """Train: set the epochs, press Start; returns the status once the run shows itself."""
    go_to_tab(page, "3. Train")
    choose_dropdown(page, "Epochs", str(epochs))
    page.get_by_role("button", name="Start training").click()
    wait_for_attached_run(page)
    return status_text(page)


def status_text(page) -> str:
    return page.locator("#train-status").inner_text()


def wait_for_attached_run(page, timeout_s: float = 60) -> str:
    """Wait until the Train step shows a run (its status line and progress bar); returns the status."""
    page.locator("#train-progress .ts-progress[role='progressbar']").wait_for(timeout=timeout_s * 1000)
    page.wait_for_function("() => { const s = document.querySelector('#train-status');"
                           " return s && !/No training yet|Starting/.test(s.innerText); }",
                           timeout=timeout_s * 1000)
    return status_text(page)


def confusion_cells(page) -> list[int]:
    """The numbers in the confusion matrix table (row by row), or [] while there is none."""
    table = page.locator("#confusion table")
    if table.count() == 0:
        return []
    return [int(v) for v in table.locator("td").all_inner_texts() if v.strip().isdigit()]


def wait_for_training(page, timeout_s: float = TRAIN_TIMEOUT_S) -> dict:
    """Watch the Train step until the run ends; returns what was seen along the way:
    statuses, the confusion matrices shown (in order) and the final status."""
    seen = {"statuses": [], "matrices": [], "final": ""}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = status_text(page)
        if not seen["statuses"] or seen["statuses"][-1] != status:
            seen["statuses"].append(status)
        cells = confusion_cells(page)
        if cells and (not seen["matrices"] or seen["matrices"][-1] != cells):
            seen["matrices"].append(cells)
        if re.search(r"\b(Finished|Stopped)\.|Training failed", status):
            seen["final"] = status
            break
        page.wait_for_timeout(300)
    # the status line comes with the light tick; the last epoch's matrix follows with the heavy refresh
    # that the tick's run key triggers, a moment later: keep watching the matrix for a few seconds
    settle = time.monotonic() + 5
    while seen["final"] and time.monotonic() < settle:
        cells = confusion_cells(page)
        if cells and (not seen["matrices"] or seen["matrices"][-1] != cells):
            seen["matrices"].append(cells)
        page.wait_for_timeout(300)
    return seen


def chart_marks(page, title: str) -> dict:
    """What the Vega chart titled `title` drew: {"lines": paths drawn, "symbols": points or bars, "canvas": bool}."""
    return page.evaluate("""title => {
        for (const doc of document.querySelectorAll('[role=graphics-document]')) {
            const block = doc.closest('.block') || doc.parentElement;
            if (!block || !block.textContent.includes(title) || !doc.offsetParent) continue;
            const svg = doc.querySelector('svg.marks');
            const canvas = doc.querySelector('canvas');
            if (!svg) return {lines: 0, symbols: 0, canvas: !!(canvas && canvas.width > 0 && canvas.height > 0)};
            const lines = [...svg.querySelectorAll('g.mark-line path')]
                .filter(p => (p.getAttribute('d') || '').length > 2);
            const rects = [...svg.querySelectorAll('g.mark-rect path, g.mark-symbol path')]
                .filter(p => (p.getAttribute('d') || '').length > 2 && !p.closest('.role-legend'));
            return {lines: lines.length, symbols: rects.length, canvas: false};
        }
        return null;
    }""", title)


def wait_for_chart(page, title: str, timeout_s: float = 30) -> dict:
    """Wait until the chart titled `title` has drawn data marks; returns chart_marks()."""
    deadline = time.monotonic() + timeout_s
    marks = None
    while time.monotonic() < deadline:
        marks = chart_marks(page, title)
        if marks and (marks["lines"] or marks["symbols"] or marks["canvas"]):
            return marks
        page.wait_for_timeout(250)
    raise AssertionError(f"the chart {title!r} drew nothing within {timeout_s} s (saw {marks})")


def step_try(page, image: Path) -> tuple[list[tuple[str, str]], str]:
    """Try it: upload a photo; returns ([(class, "98%"), ...] as the label shows them, advice)."""
    go_to_tab(page, "4. Try it")
    page.locator("input[type=file][accept='image/*']").set_input_files(str(image))
    advice = page.locator("#try-advice")
    advice.filter(has_text=re.compile("sure|unsure|Could not", re.I)).wait_for(timeout=60_000)
    if "Could not" not in advice.inner_text():  # the answer box shows itself with the answer: wait for it
        page.locator("#try-label [data-testid$='-confidence-set']").first.wait_for()
    top = []
    for row in page.locator("[data-testid$='-confidence-set']").all():
        top.append((row.locator("dt").inner_text().strip(), row.locator("dd").inner_text().strip()))
    return top, advice.inner_text()


def where_it_looked(page, timeout_s: float = 60) -> str:
    """After step_try: wait for the heatmap of where the model looked; returns its note."""
    page.locator("#try-heatmap img").first.wait_for(timeout=timeout_s * 1000)
    note = page.locator("#try-heatmap-note")
    note.filter(has_text=re.compile("Where the model looked|No heatmap")).wait_for(timeout=timeout_s * 1000)
    return note.inner_text()


def step_check_new_photos(page, photos: list[Path]) -> tuple[str, str]:
    """Try it -> Check new photos: upload `photos`, press Check; returns (the words, the table's text: it may
    draw only the rows in view)."""
    go_to_tab(page, "4. Try it")
    accordion = page.locator("#check-new-photos")
    if not page.locator("#check-button").is_visible():
        accordion.get_by_text("Check new photos", exact=False).first.click()
    page.locator("#check-files input[type=file]").set_input_files([str(p) for p in photos])
    # the upload is shown (the list writes a name and its extension apart)
    page.locator("#check-files").filter(has_text=photos[0].stem).wait_for(timeout=60_000)
    words = page.locator("#check-words")
    every = re.compile(rf"\b{len(photos)} photos checked|cannot|Could not|No photos", re.I)
    for _ in range(10):   # the file list shows before every file has arrived: press again until all are read
        page.locator("#check-button").click()
        try:
            words.filter(has_text=every).wait_for(timeout=15_000)
            break
        except Exception:   # an earlier, partial answer (or none yet): press again
            page.wait_for_timeout(1000)
    words.filter(has_text=every).wait_for(timeout=60_000)
    return words.inner_text(), page.locator("#check-table").inner_text()


def step_adapt(page, timeout_s: float = 300) -> str:
    """Try it -> Adapt to new photos (the photos already in the box); returns the words once it ends."""
    page.locator("#adapt-button").click()
    words = page.locator("#adapt-words")
    words.filter(has_text=re.compile(r"Adapted\.|left as it is|Could not adapt")).wait_for(timeout=timeout_s * 1000)
    return words.inner_text()


def step_export(page, download_dir: Path | None = None) -> tuple[Path | None, str]:
    """Export: keep the default format (the studio bundle), press Export; with download_dir, click the
    download link and return the downloaded zip's path (else None) and the message shown."""
    go_to_tab(page, "5. Export")
    page.get_by_role("button", name="Export", exact=True).click()
    message = page.locator("#export-message")
    message.filter(has_text=re.compile("Ready|failed|No trained model")).wait_for(timeout=120_000)
    if download_dir is None:
        return None, message.inner_text()
    link = page.locator("#export-file a[data-testid='download-link']").first
    with page.expect_download() as info:
        link.click()
    download = info.value
    target = Path(download_dir) / download.suggested_filename
    download.save_as(str(target))
    return target, message.inner_text()


def scroll_to(page, selector: str, margin: int = 12) -> None:
    """Scroll so the element's top is `margin` px below the top of the viewport."""
    page.evaluate("([sel, m]) => { const el = document.querySelector(sel);"
                  " if (el) window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - m); }",
                  [selector, margin])
    page.wait_for_timeout(300)


def click_confusion_cell(page, true_class: str, predicted_class: str, root: str = "#confusion",
                         prefix: str = "") -> tuple[str, int]:
    """Click one cell of the matrix; returns (the note above the photos, thumbnails shown)."""
    cell = page.locator(f"{root} td[data-true='{true_class}'][data-predicted='{predicted_class}']")
    cell.click()
    note = page.locator(f"#{prefix}cell-note")
    note.filter(has_text=re.compile(rf"of \*?\*?{true_class}|No validation photo of {true_class}")).wait_for(
        timeout=30_000)
    gallery = page.locator(f"#{prefix}cell-gallery")
    expected = int(cell.inner_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and gallery.locator("img").count() < min(expected, 48):
        page.wait_for_timeout(250)
    return note.inner_text(), gallery.locator("img").count()


def step_runs(page) -> str:
    """Runs: open the tab; returns the text of the runs table once it lists a run."""
    go_to_tab(page, "Runs")
    table = page.locator("#runs-table")
    table.filter(has_text=re.compile(r"finished|stopped|failed|interrupted", re.I)).wait_for(timeout=30_000)
    return table.inner_text()


def show_where_it_looked_on_runs(page) -> int:
    """Tick the Runs view's heatmap box; returns how many photos of the open cell show a heatmap."""
    page.locator("#runs-looked input").check()
    heatmaps = page.locator("#runs-cell-gallery img[src*='-looked']")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not heatmaps.count():
        page.wait_for_timeout(250)
    return heatmaps.count()


def leave_out_first_wrong_folder_photo(page) -> tuple[str, str]:
    """Runs view: (the wrong-folder note, the note after ticking the first suspect and leaving it out; "" when
    the run found none)."""
    note = page.locator("#runs-wrong-folder-note")
    note.filter(has_text=re.compile(r"looks? like|Not checked|has no list|None of the")).wait_for(timeout=30_000)
    picks = page.locator("#runs-wrong-folder-picks input[type=checkbox]")
    if not picks.count():
        return note.inner_text(), ""
    picks.first.check()
    page.locator("#runs-wrong-folder-leave-out").click()
    left = page.locator("#runs-wrong-folder-left")
    left.filter(has_text=re.compile(r"left out|Choose|other data")).wait_for(timeout=30_000)
    return note.inner_text(), left.inner_text()


# ---- what the page shows, and where ------------------------------------------------------------

# Gradio draws an empty plot, gallery, file or label box as an "Empty value" placeholder, and an empty
# table with the class no-rows: those are what a page that shows only what applies never has.
EMPTY_BOXES = """() => [...document.querySelectorAll('[aria-label="Empty value"], .table-container.no-rows')]
    .filter(el => el.checkVisibility() && el.getClientRects().length)
    .map(el => { const block = el.closest('.block');
                 const label = block &&
                     block.querySelector('[data-testid=block-label], .label, [data-testid=block-info]');
                 return (block && block.id ? '#' + block.id + ' ' : '') +
                        (label ? label.innerText.trim() : el.className.split(' ')[0]); })"""


def empty_boxes(page) -> list[str]:
    """Every empty chart, gallery, table, file or label box the page shows now (id and label of each)."""
    return page.evaluate(EMPTY_BOXES)


def shown(page, selector: str) -> bool:
    """Whether the element is on the page and visible (Gradio leaves a hidden component out of the page)."""
    locator = page.locator(selector)
    return locator.count() > 0 and locator.first.is_visible()


MATRIX_LAYOUT = """([matrix, table]) => {
    const box = document.querySelector(matrix), other = document.querySelector(table);
    const grid = box && box.querySelector('table.ts-confusion');
    if (!grid || !other) return null;
    const rect = el => { const r = el.getBoundingClientRect();
                         return {left: r.left, right: r.right, top: r.top + scrollY, bottom: r.bottom + scrollY}; };
    const a = rect(box), b = rect(other);
    const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
    const row = box.parentElement.getBoundingClientRect();
    // the last column's bottom cell, scrolled to within the matrix's own box (and the page to it)
    const last = grid.querySelector('tbody tr:last-child td:last-child');
    last.scrollIntoView({block: 'center', inline: 'end'});
    const inner = box.getBoundingClientRect(), cell = last.getBoundingClientRect();
    const hit = document.elementFromPoint((cell.left + cell.right) / 2, (cell.top + cell.bottom) / 2);
    const head = grid.querySelector('thead th:last-child').getBoundingClientRect();
    return {matrix: a, table: b, overlap, columns: grid.querySelectorAll('thead th').length - 1,
            within_row: a.left >= row.left - 1 && a.right <= row.right + 1,
            scrolls: box.scrollWidth > box.clientWidth + 1,
            last_cell_inside: cell.left >= inner.left - 1 && cell.right <= inner.right + 1 &&
                              cell.top >= inner.top - 1 && cell.bottom <= inner.bottom + 1,
            last_head_inside: head.left >= inner.left - 1 && head.right <= inner.right + 1,
            last_cell_on_top: !!hit && (hit === last || last.contains(hit)),
            box_in_view: [inner.left, inner.right, inner.top, inner.bottom].map(Math.round),
            cell_in_view: [cell.left, cell.right, cell.top, cell.bottom].map(Math.round),
            head_in_view: [head.left, head.right].map(Math.round),
            hit: hit ? hit.tagName + (hit.closest('.block') ? ' in #' + hit.closest('.block').id : '') : null};
}"""


def matrix_layout(page, root: str = "#confusion", table: str = "#per-class") -> dict:
    """Where the confusion matrix and the per-class table are, and whether the matrix's last column can be
    seen: its bottom cell is scrolled into view within the matrix's box, then checked to be inside that
    box and the topmost element there (not under the table). Leaves the last cell scrolled into view."""
    page.locator(f"{root} table.ts-confusion").wait_for()
    layout = page.evaluate(MATRIX_LAYOUT, [root, table])
    assert layout, f"no matrix in {root} or no table {table}"
    return layout


def scroll_matrix_home(page, root: str = "#confusion") -> None:
    """Scroll the matrix's box back to its first row and column."""
    page.evaluate("sel => { const el = document.querySelector(sel); if (el) { el.scrollLeft = 0; el.scrollTop = 0; } }",
                  root)


# ---- making a dataset in the browser (Data step, "make your own dataset here") -------------------

FAKE_CAMERA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def launch_browser_with_fake_camera(playwright, executable: str):
    """Chromium whose webcam is its built-in test pattern, allowed without asking."""
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS + FAKE_CAMERA_ARGS,
                                      headless=True)


def open_data_section(page, marker: str, title: str) -> None:
    """Open the Data step's accordion `title` unless its element `marker` (a CSS selector) already shows."""
    go_to_tab(page, "1. Data")
    if not page.locator(marker).is_visible():
        page.get_by_text(title).click()
    page.locator(marker).wait_for()


def section_status(page, selector: str, pattern: str, timeout_s: float = 60) -> str:
    """Wait until a section's status line (`selector`) matches `pattern`; returns it."""
    status = page.locator(selector)
    status.filter(has_text=re.compile(pattern)).wait_for(timeout=timeout_s * 1000)
    return status.inner_text()


def open_create_section(page) -> None:
    open_data_section(page, "#create-dataset", "make your own dataset here")


def create_status(page, pattern: str, timeout_s: float = 60) -> str:
    return section_status(page, "#create-status", pattern, timeout_s)


def create_dataset(page, name: str) -> str:
    open_create_section(page)
    page.get_by_label("New dataset name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    return create_status(page, "Created")


def add_class(page, name: str) -> str:
    page.get_by_label("New class name").fill(name)
    page.get_by_role("button", name="Add class", exact=True).click()
    return create_status(page, f"Added class {re.escape(name)}")


def pick_class(page, name: str) -> None:
    """Pick the class that new photos go into (a new class is picked already)."""
    radio = page.locator(f"#create-class input[type=radio][value='{name}']")
    if not radio.is_checked():
        radio.check()
        create_status(page, f"New photos go into {re.escape(name)}")


def class_photo_count(page, name: str) -> int:
    """The photo count the class table shows for `name` (-1 if the class is not listed)."""
    for row in page.locator("#create-classes tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        if cells and cells[0] == name:
            return int(cells[1])
    return -1


def wait_for_photo_count(page, name: str, at_least: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        count = class_photo_count(page, name)
        if count >= at_least:
            return count
        page.wait_for_timeout(250)
    raise AssertionError(f"class {name!r} shows {count} photos, not {at_least}, after {timeout_s} s")


def add_photo_files(page, name: str, files: list[Path]) -> int:
    """Drop many photo files at once into class `name` (picked first); returns the count it then shows."""
    pick_class(page, name)
    page.get_by_role("tab", name="Photo files").click()
    before = max(class_photo_count(page, name), 0)
    page.locator("#create-files input[type=file]").set_input_files([str(f) for f in files])
    return wait_for_photo_count(page, name, before + len(files))


def start_camera(page) -> None:
    """Open the Webcam tab, allow the camera and start its feed (the record button)."""
    page.get_by_role("tab", name="Webcam").click()
    camera = page.locator("#create-webcam")
    access = camera.get_by_text("Click to Access Webcam")
    access.wait_for(timeout=15_000)
    access.click()
    camera.locator("video").wait_for(state="visible", timeout=15_000)
    page.wait_for_function("el => el.readyState >= 2 && el.videoWidth > 0",
                           arg=camera.locator("video").element_handle(), timeout=15_000)
    camera.locator("button[aria-label='capture photo']").click()  # in streaming mode: start sending frames


def take_photo(page, name: str) -> int:
    before = max(class_photo_count(page, name), 0)
    page.get_by_role("button", name="Take a photo").click()
    return wait_for_photo_count(page, name, before + 1)


def burst(page, name: str, at_least: int, timeout_s: float = 30) -> int:
    """Tick Burst until class `name` has `at_least` more photos, then untick; returns the count shown."""
    before = max(class_photo_count(page, name), 0)
    page.locator("#create-burst input[type=checkbox]").check()
    try:
        count = wait_for_photo_count(page, name, before + at_least, timeout_s)
    finally:
        page.locator("#create-burst input[type=checkbox]").uncheck()
    return count


def use_made_dataset(page) -> str:
    """Press "Use this dataset"; returns the Data step's summary once it shows the classes."""
    page.get_by_role("button", name="Use this dataset").click()
    summary = page.locator("#data-summary")
    summary.filter(has_text=re.compile(r"\d+ classes")).wait_for(timeout=120_000)
    return summary.inner_text()


# ---- test support: which browser, screenshots, errors --------------------------------------------
SCREENSHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS") or REPO / "test-artifacts" / "browser")
REQUIRED = os.environ.get("STUDIO_REQUIRE_BROWSER", "").strip() not in ("", "0")


def browser_executable() -> str:
    """The chromium to drive; skips the test only when neither it nor Playwright is installed and
    STUDIO_REQUIRE_BROWSER is unset (CI sets it, so there a missing browser fails)."""
    import pytest
    have_playwright = importlib.util.find_spec("playwright") is not None
    chromium = chromium_path()
    if not have_playwright and not chromium and not REQUIRED:
        pytest.skip("no browser: install Playwright (pip install -e '.[dev]') and Debian's chromium "
                    "(apt-get install chromium); STUDIO_REQUIRE_BROWSER=1 makes this a failure")
    missing = ([] if have_playwright else ["the Python package playwright (pip install -e '.[dev]')"]) + \
              ([] if chromium else ["a chromium browser (apt-get install chromium, or set STUDIO_CHROMIUM)"])
    if missing:
        pytest.fail("The browser test needs " + " and ".join(missing) + ".", pytrace=False)
    return chromium


class Screenshots:
    """Numbered full-page screenshots of each step; paths are printed at the end, pass or fail."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("[0-9][0-9]-*.png"):
            old.unlink()
        self.paths: list[Path] = []

    def take(self, page, name: str, element: str | None = None) -> None:
        """The full page, or with `element` (a selector) just that part of it."""
        path = self.folder / f"{len(self.paths) + 1:02d}-{name}.png"
        try:
            if element:
                page.locator(element).first.screenshot(path=str(path))
            else:
                page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the real failure
            print(f"screenshot {path} failed: {exc}")
            return
        self.paths.append(path)

    def report(self) -> None:
        print(f"\nBrowser test screenshots ({len(self.paths)}) in {self.folder}:")
        for path in self.paths:
            print(f"  {path}")


def assert_no_errors(page, where: str) -> None:
    problems = page_errors(page)
    assert not problems, f"{where}: the page shows an error:\n" + "\n".join(problems)


# ---- sorting photos with no labels (Data step, "Sort my photos") ---------------------------------

def open_sort_section(page) -> None:
    open_data_section(page, "#sort-files", "Sort my photos (no labels yet)")


def sort_status(page, pattern: str, timeout_s: float = 60) -> str:
    return section_status(page, "#sort-status", pattern, timeout_s)


def sort_photos(page, files: list[Path], timeout_s: float = 180) -> str:
    """Drop the photos into *Sort my photos*, wait until they are all uploaded, press Sort; returns the
    status once it says how they were sorted."""
    open_sort_section(page)
    box = page.locator("#sort-files")
    box.locator("input[type=file]").set_input_files([str(f) for f in files])
    # every file listed (one row each; the list scrolls, and a name shows as stem and extension)
    page.wait_for_function("([el, n]) => el.querySelectorAll('tr').length >= n",
                           arg=[box.element_handle(), len(files)], timeout=60_000)
    page.locator("#sort-run").click()
    return sort_status(page, r"Sorted \d+ photos into \d+ group|Not done", timeout_s)


def sort_overview(page) -> list[list[str]]:
    """The rows of the groups' overview table (group, name, photos, most typical photos)."""
    rows = []
    for row in page.locator("#sort-overview [role=row]").all():   # Gradio's grid rows (the table is for sizing)
        cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
        if cells and cells[0]:
            rows.append(cells)
    return rows


def choose_sort_group(page, selector: str, number: int) -> None:
    """Pick group `number` in one of the section's group dropdowns (#sort-group, #sort-other, #sort-target)."""
    page.locator(f"{selector} input").click()
    page.get_by_role("option", name=re.compile(rf"^Group {number}\b")).click()
    page.wait_for_function("([el, n]) => /^Group \\d+\\b/.test(el.value) && el.value.split(/[ :(]/)[1] == n",
                           arg=[page.locator(f"{selector} input").element_handle(), number])


def regroup(page, groups: int) -> str:
    """Set the number of groups and press Sort again; returns the status."""
    slider = page.get_by_label(re.compile("^range slider for Number of groups"))
    slider.fill(str(groups))
    page.locator("#sort-again").click()
    return sort_status(page, rf"into {groups} groups")


def name_sort_group(page, number: int, name: str) -> str:
    choose_sort_group(page, "#sort-group", number)
    page.locator("#sort-name textarea, #sort-name input").first.fill(name)
    page.locator("#sort-name-button").click()
    return sort_status(page, rf"Group {number} is now the class {re.escape(name)}")


def move_first_photo(page, to: int) -> str:
    """Click the chosen group's first thumbnail, choose group `to`, press Move; returns the status."""
    page.locator("#sort-gallery").get_by_role("button", name=re.compile(r"^Thumbnail 1 of")).first.click()
    sort_status(page, "Picked")
    choose_sort_group(page, "#sort-target", to)
    page.get_by_role("button", name="Move the picked photo").click()
    return sort_status(page, "Moved")


def save_sorted(page, name: str) -> str:
    """Type the dataset's name, press Save as a dataset; returns the Data step's summary once it describes it."""
    page.locator("#sort-dataset-name textarea, #sort-dataset-name input").first.fill(name)
    page.locator("#sort-save").click()
    page.locator("#sort-saved").filter(has_text="Saved the dataset").wait_for(timeout=120_000)
    summary = page.locator("#data-summary")
    summary.filter(has_text=re.compile(r"\d+ classes")).wait_for(timeout=120_000)
    return summary.inner_text()


def label_next(page) -> tuple[str, int]:
    """Press Label these next; returns the note and how many photos it shows."""
    page.locator("#sort-next-button").click()
    note = page.locator("#sort-next-note")
    note.filter(has_text=re.compile("Label these|nothing is left")).wait_for(timeout=60_000)
    page.locator("#sort-next img").first.wait_for(timeout=30_000)
    return note.inner_text(), page.locator("#sort-next img").count()


def label_next_asking(page, run_label: str) -> tuple[str, list[str]]:
    """Choose a trained run under "Then ask a trained model", press Label these next; returns the note and
    the reasons of the table, once the note names the model's least-sure photos (or says it was not asked)."""
    page.locator("#sort-next-model input").click()
    page.get_by_role("option", name=run_label, exact=True).click()
    page.locator("#sort-next-button").click()
    note = page.locator("#sort-next-note")
    note.filter(has_text=re.compile("least sure of|was not asked")).wait_for(timeout=120_000)
    page.locator("#sort-next-table [role=gridcell]").filter(has_text="least sure of it").first.wait_for(
        timeout=30_000)
    reasons = []
    for row in page.locator("#sort-next-table [role=row]").all():   # Gradio's grid rows
        cells = [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()]
        if cells and cells[0]:
            reasons.append(cells[-1])
    return note.inner_text(), reasons


def attach_unlabeled(page, files: list[Path]) -> str:
    """Data step: open *Unlabeled photos* and drop photos into it; returns its note once they are attached."""
    go_to_tab(page, "1. Data")
    if not page.locator("#data-unlabeled-files").is_visible():
        page.get_by_text("Unlabeled photos (optional)").click()
    page.locator("#data-unlabeled-files input[type=file]").set_input_files([str(f) for f in files])
    note = page.locator("#data-unlabeled-note")
    note.filter(has_text=re.compile("unlabeled photos attached|Not attached|first")).wait_for(timeout=60_000)
    return note.inner_text()


# ---- logging in (a studio launched with auth=[(user, password), ...]) ------------------------------

def log_in(page, url: str, user: str, password: str) -> None:
    """Gradio's login form: type the username and password, press Login; waits until the studio shows."""
    page.goto(url)
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Login", exact=True).click()
    page.locator("#data-summary").wait_for()
    page.get_by_role("tab", name="1. Data").wait_for()
