"""Shared fixtures: a private workspace, small real datasets, one trained run.

Everything here is real: packaged ImageNet weights, real photos (the example
ants/bees copy in assets/), real files on disk.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

WORKSPACE = Path(tempfile.mkdtemp(prefix="studio-tests-"))
os.environ["STUDIO_HOME"] = str(WORKSPACE / "home")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from studio import paths  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
EXAMPLE = paths.EXAMPLE_DATASET


def example_files(split: str, label: str, count: int) -> list[Path]:
    files = sorted((EXAMPLE / split / label).iterdir())
    return [f for f in files if f.suffix.lower() in (".jpg", ".jpeg")][:count]


def make_subset(root: Path, train: int, val: int) -> Path:
    """A copy of the first images of each example class, in train/ and val/ folders."""
    for split, count in (("train", train), ("val", val)):
        for label in ("ants", "bees"):
            target = root / split / label
            target.mkdir(parents=True, exist_ok=True)
            for file in example_files(split, label, count):
                shutil.copyfile(file, target / file.name)
    return root


# Class names that pandas, JSON or YAML would read as something other than text, and non-Latin ones.
TRICKY_CLASS_NAMES = ("0", "1", "10", "007", "2019", "True", "NaN", "null", "猫", "Ελληνικά")


def named_class_dataset(root: Path, names, train: int = 4, val: int = 2) -> Path:
    """train/ and val/ folders with one class folder per name, filled with example photos
    (ants and bees taken in turn, so no two classes hold the same file)."""
    pool = {split: example_files(split, "ants", 200) + example_files(split, "bees", 200) for split in ("train", "val")}
    for split, count in (("train", train), ("val", val)):
        files = pool[split]
        for k, name in enumerate(names):
            target = root / split / name
            target.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                source = files[(k * count + n) % len(files)]
                shutil.copyfile(source, target / f"{n}-{source.name}")
    return root


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
    from studio.runs import MANAGER
    from studio.training import TrainConfig, start_training

    run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="all",
                                     epochs=3, feature_views=2))
    MANAGER.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot



@pytest.fixture(scope="session")
def exports(trained_run):
    """The trained run exported once in every format, each as a folder and a zip (shared by export tests)."""
    from studio import bundle
    from studio.export import FORMATS

    root = WORKSPACE / "exports"
    made = {}
    for fmt in FORMATS:
        made[fmt] = bundle.export_run(trained_run["run_dir"], fmt, root / fmt, zip_path=root / f"{fmt}.zip",
                                      check_data=fmt == "bundle")
    return made

@pytest.fixture(scope="module")
def server():
    """The real studio server (no login), once per test module; yields its URL."""
    from components.app import launch
    demo, url = launch(port=free_port(), block=False)
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


def cut_off_run(config, saving_epoch: int, run_dir=None):
    """Train `config` until the disk fills while epoch `saving_epoch`'s checkpoint is written: that
    epoch is neither checkpointed nor announced (the checkpoint comes first). Returns the Run."""
    import errno

    from studio import faults
    from studio.runs import MANAGER
    from studio.training import start_training

    def full_disk(epoch):
        if epoch == saving_epoch:
            raise OSError(errno.ENOSPC, "No space left on device")
    MANAGER.wait()
    faults.set_hook("save_checkpoint", full_disk)
    try:
        run = start_training(config, run_dir=run_dir)
        MANAGER.wait()
    finally:
        faults.set_hook("save_checkpoint", None)
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
