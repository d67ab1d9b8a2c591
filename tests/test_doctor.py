"""The dataset doctor on a corpus the test builds: each flaw found, with its files, nothing changed."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import example_files
from studio.data.sources import open_dataset
from studio.data.checks import apply_exclusions, diagnose


def _photo(src: Path, dst: Path, size=None, fmt=None):
    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as image:
        image = image.convert("RGB")
        if size:
            image = image.resize(size)
        image.save(dst, fmt or "JPEG", quality=90)


def build_corpus(root: Path) -> Path:
    ants, bees = example_files("train", "ants", 40), example_files("train", "bees", 12)
    for i, f in enumerate(ants[:30]):
        _photo(f, root / "train" / "ants" / f"a{i}.jpg")
    for i, f in enumerate(bees[:6]):
        _photo(f, root / "train" / "bees" / f"b{i}.jpg")
    for i, f in enumerate(ants[30:33]):
        _photo(f, root / "val" / "ants" / f"va{i}.jpg")
    for i, f in enumerate(bees[6:9]):
        _photo(f, root / "val" / "bees" / f"vb{i}.jpg")
    t = root / "train"
    shutil.copyfile(t / "ants" / "a0.jpg", t / "ants" / "a0 copy.jpg")                 # exact, same class
    shutil.copyfile(t / "ants" / "a1.jpg", t / "bees" / "looks like a bee.jpg")       # conflicting labels
    _photo(t / "ants" / "a2.jpg", root / "val" / "ants" / "resized a2.jpg", size=(200, 150))  # leak, near
    Image.new("RGB", (16, 16), (90, 60, 30)).save(t / "ants" / "tiny.png")
    _photo(ants[34], t / "ants" / "banner.jpg", size=(600, 100))
    _photo(ants[35], t / "ants" / "really a png.jpg", fmt="PNG")
    whole = (t / "ants" / "a3.jpg").read_bytes()
    (t / "ants" / "truncated.jpg").write_bytes(whole[:len(whole) // 2])  # header reads, pixels do not
    Image.new("1", (12000, 9000)).save(t / "bees" / "bomb.png")
    Image.new("RGB", (64, 64), (255, 0, 0)).save(t / "bees" / "flat red.png")
    Image.new("RGB", (64, 64), (0, 0, 255)).save(t / "bees" / "flat blue.png")
    (t / "bees" / ".DS_Store").write_bytes(b"junk")
    (t / "bees" / "more bees.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return root


def names(paths):
    return sorted(Path(p).name for p in paths)


def test_every_flaw_is_found_with_its_files(tmp_path):
    root = build_corpus(tmp_path / "corpus")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    dataset = open_dataset(root)
    report = diagnose(dataset)
    found = {f.kind: f for f in report.findings}
    assert names(found["exact_duplicates"].paths) == ["a0 copy.jpg", "a0.jpg"]
    assert len(found["exact_duplicates"].exclude) == 1
    assert names(found["conflicting_labels"].paths) == ["a1.jpg", "looks like a bee.jpg"]
    assert names(found["train_val_leak"].paths) == ["a2.jpg", "resized a2.jpg"]
    assert names(found["train_val_leak"].exclude) == ["a2.jpg"]
    assert names(found["tiny_images"].paths) == ["tiny.png"]
    assert names(found["extreme_aspect"].paths) == ["banner.jpg"]
    assert names(found["wrong_extension"].paths) == ["really a png.jpg"]
    assert names(found["unreadable"].paths) == ["bomb.png", "truncated.jpg"]
    assert "decompression bomb" in report.facts[str(root / "train/bees/bomb.png")].error
    assert names(found["junk"].paths) == [".DS_Store"]
    assert names(found["nested_archives"].paths) == ["more bees.zip"]
    assert "class_imbalance" in found and "'ants'" in found["class_imbalance"].message
    assert "near_duplicates" not in found  # flat red and flat blue share a hash, not a picture
    assert report.trainable
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*")}  # nothing touched

    kept = apply_exclusions(dataset, report, ["exact_duplicates", "train_val_leak", "conflicting_labels"])
    gone = set(dataset.samples.path) - set(kept.samples.path)
    assert len({"a0 copy.jpg", "a0.jpg"} & set(names(gone))) == 1  # one copy kept
    assert {"a1.jpg", "a2.jpg", "bomb.png", "looks like a bee.jpg", "truncated.jpg"} <= set(names(gone))
    assert len(gone) == 6
    assert all(any(s["path"] == p for s in kept.skipped) for p in gone)


@pytest.mark.slow
def test_training_uses_exactly_the_files_the_report_keeps(tmp_path):
    from studio.runs import Run
    from studio.training.config import TrainConfig
    from studio.training.trainer import Trainer
    root = build_corpus(tmp_path / "corpus")
    config = TrainConfig(data=str(root), backbone="mobilenetv2_100", freeze="all", epochs=1, feature_views=1,
                         exclude=["exact_duplicates", "train_val_leak", "conflicting_labels"]).resolved()
    run = Run(tmp_path / "run", {"epochs": 1})
    Trainer(config, run).train()
    used = set(Path(p).name for p in (run.dir / "samples.csv").read_text().splitlines()[1:] for p in [p.split(",")[0]])
    assert len({"a0 copy.jpg", "a0.jpg"} & used) == 1
    assert "a2.jpg" not in used and "truncated.jpg" not in used and "resized a2.jpg" in used


@pytest.mark.slow
def test_doctor_cli_json_and_exit_codes(tmp_path):
    root = build_corpus(tmp_path / "corpus")
    result = subprocess.run([sys.executable, "-m", "studio", "doctor", str(root), "--json"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["trainable"] is True and set(report["classes"]) == {"ants", "bees"}
    assert report["classes"]["ants"]["val"] == 4
    assert any(s["path"].endswith(".DS_Store") for s in report["skipped"])
    kinds = {f["kind"] for f in report["findings"]}
    assert {"exact_duplicates", "train_val_leak", "unreadable"} <= kinds
    for finding in report["findings"]:
        assert set(finding) >= {"kind", "severity", "message", "paths"}
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(one / f"{i}.png")
    single = subprocess.run([sys.executable, "-m", "studio", "doctor", str(tmp_path / "one"), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 2 and "two" in single.stderr
    assert json.loads(single.stdout)["trainable"] is False


@pytest.mark.slow
def test_real_shared_datasets_when_present():
    """On the real data sets (where ../shared exists): hymenoptera is clean, CIFAR has a real leak."""
    import pytest
    from helpers import SHARED_DATASETS
    if not SHARED_DATASETS.is_dir():
        pytest.skip("../shared/datasets is not beside this checkout")
    report = diagnose(open_dataset(SHARED_DATASETS / "hymenoptera_data"))
    assert report.trainable and not [f for f in report.findings if f.severity == "error"]
    cifar = diagnose(open_dataset(SHARED_DATASETS / "cifar10_subset"))
    leak = cifar.by_kind("train_val_leak")
    assert leak and names(leak.paths) == ["0089.jpg", "0338.jpg"]


@pytest.mark.slow
def test_placeholder_gif_is_suggested_and_left_out_only_when_asked(tmp_path):
    """The example's imageNotFound.gif: an outlier suggestion in `studio doctor --outliers`,
    left out of training with `--exclude outliers`; the odd `.jpeg` extension is simply used."""
    from studio import paths
    from studio.runs import Run
    from studio.training.config import TrainConfig
    from studio.training.trainer import Trainer
    plain = subprocess.run([sys.executable, "-m", "studio", "doctor", str(paths.EXAMPLE_DATASET), "--json"],
                           capture_output=True, text=True, timeout=300)
    assert "outliers" not in {f["kind"] for f in json.loads(plain.stdout)["findings"]}  # optional: off by default
    result = subprocess.run([sys.executable, "-m", "studio", "doctor", str(paths.EXAMPLE_DATASET), "--json",
                             "--outliers"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    outliers = next(f for f in json.loads(result.stdout)["findings"] if f["kind"] == "outliers")
    assert names(outliers["paths"]) == ["imageNotFound.gif"] and "Suggestion" in outliers["message"]

    config = TrainConfig(data=str(paths.EXAMPLE_DATASET), backbone="mobilenetv2_100", freeze="all", epochs=1,
                         feature_views=1, exclude=["outliers"]).resolved()
    run = Run(tmp_path / "run", {"epochs": 1})
    Trainer(config, run).train()
    used = names((run.dir / "samples.csv").read_text().splitlines()[1:])
    assert "imageNotFound.gif" not in " ".join(used) and any("formica.jpeg" in u for u in used)
    assert any(s["path"].endswith("imageNotFound.gif") and s["reason"] == "left out: outliers"
               for s in run.snapshot()["dataset"]["skipped"])


def test_near_duplicate_search_finds_exactly_what_comparing_every_pair_finds():
    """The banded search (quadratic no more) must equal the plain all-pairs comparison, including a crowd of
    photos that share most of their hash (flat pictures) and pairs right at and just past the limit."""
    import numpy as np

    from studio.data.checks import NEAR_DUPLICATE_BITS, _near_duplicate_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, size=3000, dtype=np.int64).astype(np.uint64)
    near = []
    for i, bits in enumerate(rng.integers(0, NEAR_DUPLICATE_BITS + 3, size=600)):   # 0 .. limit + 2 bits off
        flipped = base[i]
        for bit in rng.choice(64, size=bits, replace=False):
            flipped ^= np.uint64(1) << np.uint64(bit)
        near.append(flipped)
    crowd = np.uint64(0xFFFF0000FFFF0000) ^ (rng.integers(0, 2**4, size=400).astype(np.uint64) << np.uint64(20))
    hashes = np.concatenate([base, np.array(near, dtype=np.uint64), crowd])
    rng.shuffle(hashes)
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    rows, cols = np.nonzero(np.triu(distance <= NEAR_DUPLICATE_BITS, k=1))
    expected = list(zip(rows.tolist(), cols.tolist()))
    assert len(expected) > 400 * 399 // 4       # the crowd is there, and so are the planted pairs
    assert _near_duplicate_pairs(hashes, NEAR_DUPLICATE_BITS) == expected
