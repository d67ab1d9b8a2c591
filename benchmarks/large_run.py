"""How the studio copes with a large dataset on a CPU: one 50k-image run, timed by phase, memory per process.

No public 50k-photo set fits here, so `make` writes one: every photo of a class-folder
source (default: ../shared/datasets/clothing, all splits) again as distinct variants
(random crop of 35-100% of the area, a small rotation, colour and brightness changes,
JPEG quality 70-95, longest side 256 px), until N photos exist. The variants are
different files with different pixels, so decoding, checking and training do real work;
the accuracy is NOT a measure of anything (variants of one photo land in train and val).

`run` trains on it with `studio train` as a user would, and samples the resident memory
(VmRSS) of the process tree every second; with `--nproc N` the tree holds torchrun and its
N ranks. The report is one JSON line: phase times from the run's status.json, the peak
memory of every process, and the in-memory cache or streaming the run chose.

    python benchmarks/large_run.py make --count 50000 --out /tmp/large50k
    python benchmarks/large_run.py run --data /tmp/large50k [--nproc 2] [--memory-budget 300] -- --budget quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO.parent / "shared" / "datasets" / "clothing"
EXTENSIONS = {".jpg", ".jpeg", ".png"}


def source_photos(root: Path) -> list[tuple[str, Path]]:
    """(class, path) for every photo under root, whatever split folder it sits in."""
    photos = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in EXTENSIONS:
            photos.append((path.parent.name, path))
    np.random.default_rng(0).shuffle(photos)  # any count spans every class
    return photos


def variant(path: Path, seed: int) -> Image.Image:
    """One distinct photo made from `path`: crop, rotation, colour, size."""
    rng = np.random.default_rng(seed)
    image = Image.open(path).convert("RGB")
    w, h = image.size
    area = rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, max(16, round(w * np.sqrt(area * aspect)))))
    ch = int(min(h, max(16, round(h * np.sqrt(area / aspect)))))
    left, top = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
    image = image.crop((left, top, left + cw, top + ch)).rotate(rng.uniform(-12, 12), fillcolor=(255, 255, 255))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.75, 1.25))
    scale = 256 / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def _write(job: tuple[int, str, str, str]) -> None:
    index, label, source, out = job
    target = Path(out) / label / f"v{index:06d}.jpg"
    quality = 70 + index % 26
    variant(Path(source), seed=index).save(target, quality=quality)


def make(count: int, out: Path, source: Path) -> None:
    photos = source_photos(source)
    if not photos:
        sys.exit(f"No photos under {source}; pass --source FOLDER (class folders).")
    for label in {label for label, _ in photos}:
        (out / label).mkdir(parents=True, exist_ok=True)
    jobs = [(i, *(str(x) for x in photos[i % len(photos)]), str(out)) for i in range(count)]
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        for done, _ in enumerate(pool.map(_write, jobs, chunksize=256), start=1):
            if done % 5000 == 0:
                print(f"{done}/{count} written", file=sys.stderr)
    size = sum(p.stat().st_size for p in out.rglob("*.jpg"))
    print(json.dumps({"made": count, "from": len(photos), "out": str(out), "bytes": size,
                      "seconds": round(time.perf_counter() - started, 1)}))


def process_tree(root: int) -> list[int]:
    """The pid and every descendant, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def resident_mb(pid: int) -> tuple[float, str] | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            words = cmdline.read().split(b"\0")
    except (OSError, StopIteration):
        return None
    role = " ".join(w.decode(errors="replace").rsplit("/", 1)[-1] for w in words[:4] if w)
    return rss / 1024, role


def run(data: Path, nproc: int, memory_budget: int | None, extra: list[str]) -> None:
    out = Path(f"/tmp/large-run-{int(time.time())}")
    command = [sys.executable, "-m", "studio", "train", str(data), "--out", str(out), "--json", "--quiet"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    if memory_budget is not None:
        command += ["--memory-budget", str(memory_budget)]
    command += extra
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    peaks: dict[int, tuple[float, str]] = {}
    total_peak = 0.0
    while process.poll() is None:
        total = 0.0
        for pid in process_tree(process.pid):
            sample = resident_mb(pid)
            if sample:
                total += sample[0]
                if sample[0] > peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = sample
        total_peak = max(total_peak, total)
        time.sleep(1.0)
    summary = process.stdout.read().strip().splitlines()
    status = json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else {}
    big = sorted(peaks.values(), reverse=True)
    print(json.dumps({
        "data": str(data), "photos": sum(1 for _ in data.rglob("*.jpg")), "nproc": nproc,
        "memory_budget_mb": memory_budget, "extra": extra, "exit": process.returncode,
        "wall_s": round(time.perf_counter() - started, 1), "timings": status.get("timings"),
        "status": status.get("status"), "phase": status.get("phase"),
        "peak_rss_mb_by_process": [[round(mb), role] for mb, role in big if mb > 50],
        "peak_rss_mb_tree": round(total_peak), "summary": summary[-1] if summary else None,
        "run": str(out), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    making = steps.add_parser("make")
    making.add_argument("--count", type=int, default=50_000)
    making.add_argument("--out", type=Path, required=True)
    making.add_argument("--source", type=Path, default=SOURCE)
    running = steps.add_parser("run")
    running.add_argument("--data", type=Path, required=True)
    running.add_argument("--nproc", type=int, default=1)
    running.add_argument("--memory-budget", type=int, default=None)
    running.add_argument("extra", nargs="*", help="more `studio train` flags, after --")
    args = parser.parse_args()
    if args.step == "make":
        make(args.count, args.out, args.source)
    else:
        run(args.data, args.nproc, args.memory_budget, args.extra)


if __name__ == "__main__":
    main()
