"""The optional outlier suggestion, on real photos with the real pretrained network."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from helpers import EXAMPLE, example_files
from studio.data import outliers
from studio.data.sources import open_dataset

BACKBONE = "mobilenetv2_100"
PLACEHOLDER = "imageNotFound.gif"


@pytest.fixture(scope="module")
def example():
    """The example dataset embedded once (the slow part), its progress calls and time, and its finding."""
    dataset = open_dataset(EXAMPLE)
    files, labels = dataset.samples.path.tolist(), dataset.samples.label.tolist()
    calls: list[tuple[int, int]] = []
    start = time.perf_counter()
    embeddings, kept = outliers.embed(files, BACKBONE, progress=lambda d, t: calls.append((d, t)))
    finding = outliers.suggest(embeddings, kept, labels)
    seconds = time.perf_counter() - start
    assert kept == files
    print(f"\nexample: {len(files)} images in {seconds:.1f} s, flagged "
          f"{[Path(p).name for p in finding.paths] if finding else []}")
    return dataset, embeddings, finding, calls


@pytest.mark.slow
def test_example_placeholder_is_flagged_first(example):
    _, _, finding, calls = example
    assert finding is not None and finding.kind == "outliers" and finding.severity == "info"
    assert Path(finding.paths[0]).name == PLACEHOLDER
    assert finding.exclude == finding.paths  # accepting the suggestion leaves out what was shown
    assert calls and calls[-1][0] == calls[-1][1]


@pytest.mark.slow
def test_example_flags_few_real_photos(example):
    dataset, _, finding, _ = example
    others = [p for p in finding.paths if Path(p).name != PLACEHOLDER]
    assert len(others) <= 0.02 * len(dataset.samples)  # measured: none of the 397 photos


@pytest.mark.slow
def test_message_says_it_is_a_suggestion_and_what_to_do(example):
    message = example[2].message
    for words in ("Suggestion", "pretrained network", "do not look like the rest of their class",
                  "Look at them", "leave them out"):
        assert words in message
    assert "'ants'" in message and "'bees'" not in message


@pytest.mark.slow
def test_example_scores_leave_margin_around_threshold(example):
    """The threshold sits between the placeholder and the most unusual real photo."""
    dataset, embeddings, _, _ = example
    z = outliers.robust_z(outliers.neighbour_distance(embeddings), dataset.samples.label.to_numpy())
    placeholder = next(i for i, p in enumerate(dataset.samples.path) if Path(p).name == PLACEHOLDER)
    real = np.delete(z, placeholder)
    assert z[placeholder] > outliers.THRESHOLD + 0.5   # measured 6.65
    assert real.max() < outliers.THRESHOLD - 0.5       # measured 4.65
    assert np.median(real) == pytest.approx(0, abs=0.1)


def _grey(folder: Path) -> Path:
    path = folder / "grey.png"
    Image.new("RGB", (400, 300), (128, 128, 128)).save(path)
    return path


def _no_image(folder: Path) -> Path:
    picture = Image.new("RGB", (500, 375), (240, 240, 240))
    draw = ImageDraw.Draw(picture)
    draw.text((60, 150), "NO IMAGE", fill=(90, 90, 90), font=ImageFont.load_default(size=40))
    draw.text((60, 210), "available", fill=(120, 120, 120), font=ImageFont.load_default(size=28))
    path = folder / "no_image.png"
    picture.save(path)
    return path


def _two_classes(root: Path, count: int = 15) -> Path:
    for label in ("ants", "bees"):
        (root / label).mkdir(parents=True)
        for file in example_files("train", label, count):
            shutil.copyfile(file, root / label / file.name)
    return root


@pytest.mark.parametrize("make", [_grey, _no_image], ids=["flat_grey", "rendered_no_image"])
@pytest.mark.slow
def test_foreign_picture_is_flagged_first(tmp_path, make):
    root = _two_classes(tmp_path / "data")
    foreign = make(root / "ants")
    finding = outliers.find_outliers(open_dataset(root), BACKBONE)
    assert finding is not None
    assert Path(finding.paths[0]) == foreign  # measured z about 8.6 (grey) and 8.8 (text)
    assert "'ants'" in finding.message


@pytest.mark.slow
def test_clean_classes_flag_at_most_one(tmp_path):
    finding = outliers.find_outliers(open_dataset(_two_classes(tmp_path / "data")), BACKBONE)
    assert finding is None or len(finding.paths) <= 1  # measured: nothing (highest z 1.9)


def test_stopping_returns_nothing(tmp_path):
    dataset = open_dataset(_two_classes(tmp_path / "data", count=8))
    assert outliers.find_outliers(dataset, BACKBONE, should_stop=lambda: True) is None


def test_pick_caps_each_class_and_skips_small_ones():
    labels = np.array(["big"] * 40 + ["small"] * 7)
    z = np.zeros(len(labels))
    z[[3, 5, 9]] = [9.0, 12.0, 7.0]   # three far outliers in a class of 40: 5% allows 2
    z[42] = 20.0                      # a class of 7 has no typical to compare with
    assert outliers.pick(z, labels) == [5, 3]


def test_neighbour_distance_is_the_same_across_blocks():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(1100, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    direct = 1.0 - np.sort(similarity, axis=1)[:, ::-1][:, :outliers.NEIGHBOURS].mean(axis=1)
    assert np.allclose(outliers.neighbour_distance(embeddings), direct, atol=1e-6)
