"""`studio predict` on a folder of photos: photos/s of the old one-by-one loop and of the batched fast pass.

Makes N small photos (the example photos resized, short side 120-320 px, as JPEG), trains a
tiny model (MobileNetV2, frozen, one epoch) unless --model is given, then runs, each in its own
process and end to end (start-up, model load and printing included):
  before: the loop `studio predict` ran until the fast pass (copied below as `old_predict`):
          one photo at a time, decoded on the main thread, fp32, eager, NCHW;
  after:  `python -m studio predict MODEL FOLDER --json`.
The two alternate (before, after, after, before, ...) so a shared machine's load falls on both
alike; the median of each is reported, with the load average around the runs.
    python benchmarks/predict_speed.py [--photos 1000] [--rounds 2] [--model MODEL]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "assets" / "example" / "hymenoptera"


def old_predict(model: str, folder: str, top_k: int = 3) -> None:
    """The old `studio predict` loop, kept here as the reference: one photo per forward pass, fp32."""
    import torch

    from studio import augment
    from studio.data.imaging import ImageDecodeError, decode_square, is_image_name
    from studio.data.pixels import cache_side
    from studio.export import runtimes

    path = runtimes.resolve(model)
    net, meta, _kind, _runtime = runtimes.open_model(path, "cpu")
    classes, prep = meta["classes"], meta["preprocessing"]
    side = cache_side(prep)
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_image_name(p))
    for image in files:
        try:
            batch = torch.stack([torch.from_numpy(decode_square(image, side)).permute(2, 0, 1)])
        except (ImageDecodeError, FileNotFoundError) as exc:
            print(f"studio: {image}: {exc}", file=sys.stderr)
            continue
        with torch.no_grad():
            probs = torch.softmax(net(augment.eval_batch(batch, prep)).float(), dim=1)
        values, indices = probs.topk(min(top_k, len(classes)), dim=1)
        top = [(classes[i], float(v)) for v, i in zip(values[0].tolist(), indices[0].tolist())]
        print(json.dumps({"image": str(image), "predictions": [{"class": c, "probability": round(p, 5)}
                                                               for c, p in top]}))


def make_photos(folder: Path, count: int, seed: int = 0) -> None:
    """`count` small JPEGs made from the example photos (each resized to a random short side)."""
    from PIL import Image
    sources = sorted(EXAMPLE.rglob("*.jpg"))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as image:
            image = image.convert("RGB")
            short = rng.randint(120, 320)
            scale = short / min(image.size)
            image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale)))).save(
                folder / f"{i:05d}.jpg", quality=90)


def timed(command: list[str], out: Path, env: dict) -> dict:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(out, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    return {"seconds": seconds, "load": round((load_before + os.getloadavg()[0]) / 2, 2)}


def classes_in(out: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [(row["image"], row["predictions"][0]["class"]) for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of (before, after) runs; median reported")
    parser.add_argument("--model", help="a model file to use instead of training a tiny one")
    parser.add_argument("--old", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old:
        old_predict(*args.old)
        return 0

    import torch
    work = Path(tempfile.mkdtemp(prefix="predict-speed-"))
    try:
        return _measure(args, work, torch.__version__)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(args, work: Path, torch_version: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    photos = work / "photos"
    make_photos(photos, args.photos)
    model = args.model
    if not model:
        subprocess.run([sys.executable, "-m", "studio", "train", str(EXAMPLE), "--backbone", "mobilenetv2_100",
                        "--freeze", "all", "--epochs", "1", "--out", str(work / "run"), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
        model = str(work / "run" / "model.safetensors")
    before_cmd = [sys.executable, str(Path(__file__).resolve()), "--old", model, str(photos)]
    after_cmd = [sys.executable, "-m", "studio", "predict", model, str(photos), "--json"]
    times: dict[str, list[dict]] = {"before": [], "after": []}
    order = []
    for r in range(args.rounds):
        order += ["before", "after"] if r % 2 == 0 else ["after", "before"]
    for name in order:
        result = timed(before_cmd if name == "before" else after_cmd, work / f"{name}.jsonl", env)
        times[name].append(result)
        print(f"{name}: {args.photos / result['seconds']:.1f} photos/s ({result['seconds']:.2f} s, "
              f"load {result['load']})", flush=True)
    before, after = classes_in(work / "before.jsonl"), classes_in(work / "after.jsonl")
    same = sum(a == b for a, b in zip(before, after))
    rate = {name: args.photos / statistics.median(r["seconds"] for r in runs) for name, runs in times.items()}
    # each round's before and after ran back to back, under about the same load: their ratio compares best
    pairs = [round(b["seconds"] / a["seconds"], 2) for b, a in zip(times["before"], times["after"])]
    summary = {"photos": args.photos, "before_photos_per_s": round(rate["before"], 1),
               "after_photos_per_s": round(rate["after"], 1), "ratio": round(rate["after"] / rate["before"], 2),
               "ratio_per_round": pairs, "ratio_median_of_rounds": statistics.median(pairs),
               "same_class_and_order": f"{same}/{len(before)}" if len(before) == len(after) else "different counts",
               "runs": times, "cpu": _cpu(), "cores": os.cpu_count(), "torch": torch_version}
    print(f"before {rate['before']:.1f} photos/s, after {rate['after']:.1f} photos/s: "
          f"{summary['ratio']:.2f}x (per round: {', '.join(f'{p:.2f}x' for p in pairs)}); "
          f"same top class in the same order on {summary['same_class_and_order']}")
    print(json.dumps(summary))
    return 0


def _cpu() -> str:
    from studio.hardware import cpu_flags, cpu_name
    bf16 = {"amx_bf16", "avx512_bf16"} & cpu_flags()
    return f"{cpu_name()} ({'bf16: ' + ', '.join(sorted(bf16)) if bf16 else 'no bf16 instructions'})"


if __name__ == "__main__":
    sys.exit(main())
