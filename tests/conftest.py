"""Shared fixtures: a private workspace, small real datasets, one trained run.

Everything here is real: packaged ImageNet weights, real photos (the example
ants/bees copy in assets/), real files on disk.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import (TRICKY_CLASS_NAMES, WORKSPACE, free_port, make_multilabel_dataset, make_subset,
                     named_class_dataset)


@pytest.fixture(scope="session")
def tricky_names_dataset() -> Path:
    """Ten classes named like numbers, booleans, missing values and in non-Latin scripts."""
    return named_class_dataset(WORKSPACE / "tricky-names", TRICKY_CLASS_NAMES)


@pytest.fixture(scope="session")
def small_dataset() -> Path:
    """24 training and 10 validation photos per class: small enough to train in seconds."""
    return make_subset(WORKSPACE / "small", train=24, val=10)


@pytest.fixture(scope="session")
def trained_run(small_dataset):
    """One real feature-extraction run on the small dataset (shared by predict/export tests)."""
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all",
                                     epochs=3, feature_views=2))
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot



@pytest.fixture(scope="session")
def multilabel_dataset() -> Path:
    """60 real photos with one to three of the labels ants, bees and grey (see make_multilabel_dataset)."""
    return make_multilabel_dataset(WORKSPACE / "multilabel-small")


@pytest.fixture(scope="session")
def multilabel_run(multilabel_dataset):
    """One real multi-label run (the new head on frozen features), shared by the multi-label tests."""
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    run = start_training(TrainConfig(data=str(multilabel_dataset), backbone="mobilenetv2_100", freeze="all",
                                     epochs=4, feature_views=1, patience=0))
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot


@pytest.fixture(scope="session")
def litert_converter():
    """The TFLite converter environment, made as `studio setup-tflite` makes it (once per machine: kept in
    ~/.cache, outside the tests' temporary STUDIO_HOME), unless STUDIO_LITERT_PYTHON names one."""
    from studio.export import litert
    if not os.environ.get("STUDIO_LITERT_PYTHON"):
        home = Path.home() / ".cache" / "transfer-studio-tests" / "litert-converter"
        python = home / "bin" / "python"
        ready = python.is_file() and subprocess.run([str(python), "-c", "import litert_torch"],
                                                     capture_output=True).returncode == 0
        if not ready:
            litert.setup(home=home)
        os.environ["STUDIO_LITERT_PYTHON"] = str(python)
    return litert.converter_python()


@pytest.fixture(scope="session")
def exports(trained_run, litert_converter):
    """The trained run exported once in every format, each as a folder and a zip (shared by export tests)."""
    from studio.export import bundle
    from studio.export.formats import FORMATS

    root = WORKSPACE / "exports"
    made = {}
    for fmt in FORMATS:
        made[fmt] = bundle.export_run(trained_run["run_dir"], fmt, root / fmt, zip_path=root / f"{fmt}.zip",
                                      check_data=fmt == "bundle")
    return made

@pytest.fixture(scope="module")
def server_runner():
    """The JobRunner of the module's studio server: what a test waits on for the runs started on its page."""
    from studio.runs import JobRunner
    runner = JobRunner()
    yield runner
    runner.wait()


@pytest.fixture(scope="module")
def server(server_runner):
    """The real studio server (no login), once per test module; yields its URL."""
    from components.app import launch
    demo, url = launch(port=free_port(), block=False, runner=server_runner)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, once per browser-test module (see tests/browser_flow.py)."""
    import browser_flow as flow
    executable = flow.browser_executable()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = flow.launch_browser(playwright, executable)
        yield chromium
        chromium.close()


NO_SKIPS = os.environ.get("STUDIO_NO_SKIPS", "").strip() not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With STUDIO_NO_SKIPS=1 (CI sets it) a skipped test fails, with its reason: nothing skips silently."""
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and STUDIO_NO_SKIPS=1 makes a skip a failure: {reason}"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(WORKSPACE, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(request):
    """One numbered series of screenshots per browser test module, in test-artifacts/<what the module is
    named after> (test_browser_sort.py: sort/); a Screenshots per test would delete the previous test's."""
    import browser_flow as flow
    pictures = flow.Screenshots(flow.SCREENSHOTS.parent / request.module.__name__.removeprefix("test_browser_"))
    yield pictures
    pictures.report()
