"""Make a many-class, large-image, mixed-format test set for the recipe comparison (benchmarks/RECIPE.md).

Each CIFAR-10 thumbnail of the shared subset is enlarged to a random size between 640 and
3,000 px on its long side and saved in one of the formats and colour modes people's folders
hold (camera JPEG, grayscale JPEG, CMYK JPEG, PNG with transparency, palette PNG, WebP).
The content stays a 32 px photo: this set tests many classes, big files and mixed modes,
not fine detail. Usage:
    python tools/make_varied_data.py ../shared/datasets/cifar10_subset OUT --train 70 --val 30
"""
from __future__ import annotations

import argparse
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

FORMATS = [("jpg", "RGB"), ("jpg", "L"), ("jpg", "CMYK"), ("png", "RGBA"), ("png", "P"), ("webp", "RGB")]


def make_one(source: Path, target_stem: Path, seed: int) -> None:
    rng = random.Random(seed)
    suffix, mode = FORMATS[seed % len(FORMATS)]
    long_side = rng.randint(640, 3000)
    with Image.open(source) as image:
        image = image.convert("RGB")
        aspect = rng.uniform(0.75, 1.33)
        size = (long_side, int(long_side / aspect)) if aspect >= 1 else (int(long_side * aspect), long_side)
        image = image.resize(size, Image.BICUBIC)
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.new("L", image.size, 255 if rng.random() < 0.5 else 200))
    elif mode == "P":
        image = image.convert("P", palette=Image.ADAPTIVE, colors=256)
    else:
        image = image.convert(mode)
    target = target_stem.with_suffix("." + suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=90) if suffix in ("jpg", "webp") else image.save(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a dataset with train/ and val/ class folders")
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=70, help="photos per class in train/")
    parser.add_argument("--val", type=int, default=30, help="photos per class in val/")
    args = parser.parse_args()
    jobs = []
    for split, count in (("train", args.train), ("val", args.val)):
        for class_dir in sorted((args.source / split).iterdir()):
            for file in sorted(class_dir.iterdir())[:count]:
                jobs.append((file, args.out / split / class_dir.name / file.stem, len(jobs)))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: make_one(*job), jobs))
    print(f"{len(jobs)} images in {args.out}")


if __name__ == "__main__":
    main()
