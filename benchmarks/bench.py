"""The bench: the tutorial recipe, the studio engine and the raw hardware limit, side by side.

Everything runs in one process, one after another, on the same data and the same
pretrained model (`backbones.create_model`), so the ratios compare like with like:

- tutorial: the PyTorch transfer-learning tutorial loop (per-image PIL transforms
  in a DataLoader, batch 4, 2 workers, fp32, SGD 0.001 momentum 0.9, StepLR 7/0.1),
  in "frozen" mode (only the new classifier trains, but every epoch runs the full
  forward pass) and "finetune" mode (every layer trains);
- studio: the engine's public API (`start_training`), feature extraction
  (freeze "all") and fine-tuning (freeze "0"), in a throw-away runs folder;
- pass: one inference pass over the data as the engine would make it (decode
  every photo with the studio's decoder, centre crop, forward in the engine's
  precision and batch): the least any method must spend, and the reference for
  "feature extraction costs little more than one pass";
- raw (CUDA only): a synthetic batch already on the GPU, channels_last, bf16
  autocast: training images/s with an AdamW step (at batch 256 and at the
  engine's batch size), and forward-only images/s.

`--random-weights` times backbones whose pretrained weights cannot be had
offline; accuracies are then meaningless and their goals are left out.

Times are wall-clock seconds on whatever else the machine is doing: benchmarks
report them and their ratios, tests never assert on them.

It lives beside the engine, not in it: a person's studio never runs it.

    python benchmarks/bench.py DATA [--backbone mobilenetv2_100] [--device cuda] [--only frozen,pass]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile

import torch

from bench_limits import one_pass, raw_limit
from bench_report import ACCURACY_GOALS, format_table, ratios_and_goals
from bench_runs import BenchError, BenchUsageError, Log, quiet, studio_run, tutorial_run

PARTS = ("tutorial", "frozen", "finetune", "auto", "pass", "raw")


# ---------------------------------------------------------------- options

def parse_parts(text: str | None, device: str = "cpu") -> tuple[str, ...]:
    """`--only tutorial,frozen` to the parts to run, in the fixed order of PARTS.

    Without `--only`: everything the device can measure (the raw limit is CUDA only).
    """
    if not text:
        wanted = set(PARTS) if device == "cuda" else set(PARTS) - {"raw"}
    else:
        wanted = {p.strip().lower() for p in text.split(",") if p.strip()}
        unknown = wanted - set(PARTS)
        if unknown or not wanted:
            raise BenchUsageError(f"--only takes a comma-separated subset of {','.join(PARTS)} "
                                  f"(got {text!r}).")
    return tuple(p for p in PARTS if p in wanted)


def resolve_device(requested: str = "auto") -> str:
    from studio.hardware import pick_device
    requested = (requested or "auto").lower()
    if requested not in ("auto", "cpu", "cuda"):
        raise BenchUsageError(f"Unknown device {requested!r}: use auto, cpu or cuda.")
    try:
        return pick_device(requested).type
    except ValueError as exc:  # asked for CUDA on a machine without a GPU
        raise BenchUsageError(str(exc)) from None


def machine_info(device: str) -> dict:
    from studio.hardware import cpu_name
    cpu = cpu_name()
    info = {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "device_name": cpu or "cpu",
    }
    try:
        import timm
        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        pass
    if device == "cuda":
        info["device_name"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 1024 ** 3, 1)
    return info


# ---------------------------------------------------------------- the whole bench

def run_bench(data: str, backbone: str = "", epochs: int = 3, device: str = "auto", only: str | None = None,
              log: Log = quiet, batch_size: int | None = None, random_weights: bool = False) -> dict:
    """Run the selected parts one after another and return the report (plain JSON-able dict).

    `only`: comma-separated subset of PARTS. "tutorial" runs the tutorial loop in the
    modes of the selected studio runs ("frozen", "finetune"), or in both if none is selected.
    """
    from studio import backbones
    from studio.data.sources import check_trainable, open_dataset

    load_at_start = _load_average()
    device = resolve_device(device)
    parts = parse_parts(only, device)
    if "raw" in parts and device != "cuda":
        raise BenchUsageError("The raw limit is measured on a CUDA GPU only: leave 'raw' out or use --device cuda.")
    if epochs < 1:
        raise BenchUsageError("--epochs must be at least 1.")
    if batch_size is not None and batch_size < 2:
        raise BenchUsageError("--batch-size must be at least 2.")
    dataset = open_dataset(data)
    check_trainable(dataset)
    backbone = backbone or backbones.default_backbone()
    # load (and on first use convert) the weights once, untimed: an unknown backbone fails here, before any run
    probe = backbones.create_model(backbone, len(dataset.classes), pretrained=not random_weights)
    del probe
    pretrained = not random_weights

    studio_modes = [m for m in ("frozen", "finetune", "auto") if m in parts]
    tutorial_modes = ([m for m in ("frozen", "finetune") if m in studio_modes or "auto" in studio_modes]
                      or ["frozen", "finetune"]) if "tutorial" in parts else []
    n_train, n_val = len(dataset.split("train")), len(dataset.split("val"))
    log(f"bench: {backbone} on {dataset.root} ({n_train} train, {n_val} val images, {len(dataset.classes)} classes), "
        f"{epochs} epoch(s) on {device}: {', '.join(parts)}")

    runs: dict = {}
    for mode in tutorial_modes:
        runs[f"tutorial_{mode}"] = tutorial_run(dataset, backbone, mode, epochs, device, log, pretrained)
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as runs_root:
        for mode in studio_modes:
            freeze = {"frozen": "all", "finetune": "0", "auto": "auto"}[mode]
            runs[f"studio_{mode}"] = studio_run(data, backbone, freeze, None if mode == "auto" else epochs, device,
                                                runs_root, log, batch_size, random_weights)
    if "pass" in parts:
        runs["one_pass"] = one_pass(dataset, backbone, device, log, pretrained)
    if "raw" in parts:
        from studio.recipe import batch_size as engine_batch_size
        engine_batch = batch_size or engine_batch_size(n_train, device == "cuda")[0]
        runs["raw_bf16"] = raw_limit(backbone, len(dataset.classes), log=log, engine_batch=engine_batch)

    ratios, goals, extra = ratios_and_goals(runs, device, n_train + n_val)
    if random_weights:
        goals = {name: goal for name, goal in goals.items() if name not in ACCURACY_GOALS}
    machine = machine_info(device)
    machine["load_average"] = {"start": load_at_start, "end": _load_average()}
    warnings = []
    cores = os.cpu_count() or 1
    if load_at_start is not None and load_at_start >= 0.5 * cores:
        warnings.append(f"other processes kept the CPU busy when the bench started (load {load_at_start:.1f} on "
                        f"{cores} cores): the runs are timed one after another, so the times and ratios are "
                        "indicative only")
    return {
        "machine": machine,
        "backbone": backbone,
        "weights": "random (timing only)" if random_weights else "pretrained",
        "dataset": str(dataset.root),
        "classes": dataset.classes,
        "epochs": epochs,
        "parts": list(parts),
        "images": {"train": n_train, "val": n_val, "total": n_train + n_val},
        "runs": {name: {k: v for k, v in result.items() if not k.startswith("_")} for name, result in runs.items()},
        "ratios": ratios,
        **extra,
        "goals": goals,
        "warnings": warnings,
    }


def _load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# ---------------------------------------------------------------- the command line

def build_parser() -> argparse.ArgumentParser:
    from studio.cli import Parser, backbone_name, device_name, whole_number
    from studio.values import MIN_BATCH

    def parts(text: str) -> str:
        try:
            parse_parts(text, "cuda")
        except BenchUsageError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated subset of {','.join(PARTS)}") from None
        return text

    parser = Parser(prog="python benchmarks/bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("data", help="a dataset as `studio train` takes it")
    parser.add_argument("--backbone", type=backbone_name, default="",
                        help="timm model name (default: the first available offline)")
    parser.add_argument("--epochs", type=whole_number(1), default=3)
    parser.add_argument("--device", type=device_name, default="auto", metavar="auto|cpu|cuda",
                        help="auto (the default), cpu or cuda")
    parser.add_argument("--only", type=parts, default=None, metavar="PARTS",
                        help="comma-separated subset of tutorial,frozen,finetune,auto,pass,raw "
                             "(default: all the device can run; raw is CUDA only; "
                             "'tutorial' runs the tutorial in the modes of the studio runs chosen)")
    parser.add_argument("--batch-size", type=whole_number(MIN_BATCH), default=None,
                        help="the studio runs' training batch (default: the studio's own choice for the data)")
    parser.add_argument("--random-weights", action="store_true",
                        help="time a backbone whose pretrained weights are not at hand; accuracies mean nothing then")
    parser.add_argument("--json-only", action="store_true", help="no table: stdout is only the JSON line")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 0 with the table and a JSON line on stdout; 2 for a wrong request; 1 when a run fails."""
    from studio.backbones import BackboneError
    from studio.data.sources import DatasetError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exited:   # a refused flag or --help: a number, as `studio` gives
        return int(exited.code or 0)
    log = quiet if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    try:
        report = run_bench(args.data, args.backbone or "", epochs=args.epochs, device=args.device,
                           only=args.only, log=log, batch_size=args.batch_size,
                           random_weights=args.random_weights)
    except (DatasetError, BenchUsageError) as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        return 2
    except (BackboneError, BenchError) as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        return 1
    if not args.json_only:
        print(format_table(report))
        print()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
