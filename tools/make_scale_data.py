"""Make a large synthetic dataset (class folders of distinct JPEG photos) to measure scale.

Each image is a random crop of one of the example photos, resized to a photo-like
size, mirrored and tinted at random, so no two files are duplicates and each
decodes like a real camera JPEG. Usage:
    python tools/make_scale_data.py OUT_DIR --images 10000 [--side 500]
"""
from __future__ import annotations

import argparse
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "example" / "hymenoptera"


def make_one(source: Path, target: Path, side: int, seed: int) -> None:
    rng = random.Random(seed)
    with Image.open(source) as image:
        image = image.convert("RGB")
        width, height = image.size
        crop_w, crop_h = int(width * rng.uniform(0.6, 1.0)), int(height * rng.uniform(0.6, 1.0))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((side, side * 3 // 4))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        tint = Image.new("RGB", image.size, tuple(rng.randint(0, 255) for _ in range(3)))
        Image.blend(image, tint, rng.uniform(0.0, 0.25)).save(target, quality=rng.randint(80, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--side", type=int, default=500)
    args = parser.parse_args()
    jobs = []
    for label in ("ants", "bees"):
        sources = sorted(p for p in (EXAMPLE / "train" / label).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        folder = Path(args.out) / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.images // 2):
            jobs.append((sources[i % len(sources)], folder / f"{label}_{i:06d}.jpg", args.side, hash((label, i))))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: make_one(*job), jobs))
    print(f"{len(jobs)} images in {args.out}")


if __name__ == "__main__":
    main()
