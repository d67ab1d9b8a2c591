"""Plain helpers the tests share: the private workspace, small real datasets, a free port.

Tests import these from here (`from helpers import example_files`); the fixtures built on them stay in
conftest.py. Importing this module first points STUDIO_HOME at a fresh temporary workspace, before any
studio module reads it.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

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


def make_multilabel_dataset(root: Path, per_kind: int = 20) -> Path:
    """A multi-label dataset made of real example photos: an ant alone ("ants"), a bee alone ("bees"), an ant
    and a bee side by side ("ants;bees"), every other photo in grey ("+grey"): three labels a photo can have
    in any mix, each learnable. Written as images/ and labels.csv (`filename,labels`); no split column."""
    from PIL import Image, ImageOps
    ants, bees = example_files("train", "ants", per_kind), example_files("train", "bees", per_kind)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (ant, bee) in enumerate(zip(ants, bees)):
        pair = [Image.open(ant).convert("RGB").resize((160, 160)), Image.open(bee).convert("RGB").resize((160, 160))]
        both = Image.new("RGB", (320, 160))
        both.paste(pair[0], (0, 0))
        both.paste(pair[1], (160, 0))
        for kind, (name, image, labels) in enumerate(((f"ant{i}", pair[0], ["ants"]), (f"bee{i}", pair[1], ["bees"]),
                                                      (f"both{i}", both, ["ants", "bees"]))):
            grey = (i + kind) % 2 == 0   # half of each kind, so grey never goes with one other label
            if grey:
                image = ImageOps.grayscale(image).convert("RGB")
            image.save(root / "images" / f"{name}.jpg", quality=90)
            rows.append(f"images/{name}.jpg," + ";".join(labels + (["grey"] if grey else [])))
    (root / "labels.csv").write_text("filename,labels\n" + "\n".join(rows) + "\n")
    return root


# Class names that pandas, JSON or YAML would read as something other than text, and non-Latin ones.
TRICKY_CLASS_NAMES = ("0", "1", "10", "007", "2019", "True", "NaN", "null", "猫", "Ελληνικά")


def shifted_copies(small_dataset: Path, name: str = "inverted-val", every: int = 1) -> Path:
    """The validation photos (every `every`-th) colour-inverted and turned: a new site no training photo
    looks like."""
    from PIL import Image, ImageOps
    out = WORKSPACE / name
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((small_dataset / "val").rglob("*.jpg"))[::every]:
        ImageOps.invert(Image.open(path).convert("RGB")).rotate(90, expand=True).save(out / path.name)
    return out


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


def cut_off_run(config, saving_epoch: int, run_dir=None, runner=None):
    """Train `config` (in `runner`, else a new one) until the disk fills while epoch `saving_epoch`'s
    checkpoint is written: that epoch is neither checkpointed nor announced (the checkpoint comes first).
    Returns the Run."""
    import errno

    from studio import faults
    from studio.training.trainer import start_training

    def full_disk(epoch):
        if epoch == saving_epoch:
            raise OSError(errno.ENOSPC, "No space left on device")
    faults.set_hook("save_checkpoint", full_disk)
    try:
        run = start_training(config, run_dir=run_dir, runner=runner)
        run.wait()
    finally:
        faults.set_hook("save_checkpoint", None)
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
