"""`studio bench`: the tutorial recipe, the studio engine and the raw hardware limit, side by side.

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
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

PARTS = ("tutorial", "frozen", "finetune", "auto", "pass", "raw")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The tutorial recipe (PyTorch "Transfer learning for computer vision").
TUTORIAL_BATCH = 4
TUTORIAL_WORKERS = 2
TUTORIAL_LR = 0.001
TUTORIAL_MOMENTUM = 0.9
TUTORIAL_STEP = 7
TUTORIAL_GAMMA = 0.1

RAW_BATCH = 256

# name -> (direction, threshold, devices it is a goal on)
GOALS = {
    "frozen_total_vs_tutorial": ("<=", 0.25, ("cpu",)),
    "frozen_best_val_accuracy": (">=", 0.95, ("cpu", "cuda")),
    "finetune_epoch_vs_tutorial": ("<=", 0.6, ("cpu",)),
    # issue 5: Auto at least as accurate as the better tutorial run, in no more time than the tutorial fine-tune
    "auto_accuracy_minus_best_tutorial": (">=", 0.0, ("cpu", "cuda")),
    "auto_total_vs_tutorial_finetune_total": ("<=", 1.0, ("cpu", "cuda")),
    "finetune_vs_raw_bf16": (">=", 0.7, ("cuda",)),
    "finetune_vs_tutorial_speedup": (">=", 14.0, ("cuda",)),
    "frozen_run_vs_one_pass": ("<=", 1.5, ("cuda",)),
}
ACCURACY_GOALS = ("frozen_best_val_accuracy", "auto_accuracy_minus_best_tutorial")

Log = Callable[[str], None]


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why."""


class BenchUsageError(BenchError):
    """The request itself is wrong (an unknown part, a device this machine lacks)."""


def _quiet(_: str) -> None:
    pass


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


# ---------------------------------------------------------------- summaries

def _steady(epoch_seconds: list[float]) -> float:
    """Seconds of a typical epoch: the mean of the epochs after the first (warm-up), if any."""
    later = epoch_seconds[1:] or epoch_seconds
    return statistics.fmean(later)


def _summary(epoch_seconds: list[float], total_seconds: float, train_images: int, feature_extraction: bool,
             best_val_accuracy: float | None) -> dict:
    steady = _steady(epoch_seconds)
    if feature_extraction:
        # a head epoch on cached features takes milliseconds: count the whole run instead
        ips = train_images * len(epoch_seconds) / total_seconds
        basis = "train images x epochs / total seconds"
    else:
        ips = train_images / steady
        basis = "train images / seconds of a typical epoch (train + val pass)"
    return {
        "epochs": len(epoch_seconds),
        "epoch_seconds": [round(s, 3) for s in epoch_seconds],
        "typical_epoch_seconds": round(steady, 3),
        "total_seconds": round(total_seconds, 3),
        "images_per_second": round(ips, 2),
        "images_per_second_basis": basis,
        "best_val_accuracy": None if best_val_accuracy is None else round(best_val_accuracy, 5),
        "_steady": steady, "_total": total_seconds, "_ips": ips,   # unrounded, for the ratios
    }


# ---------------------------------------------------------------- the tutorial loop

class SampleTable(torch.utils.data.Dataset):
    """(image, label index) pairs from the studio's sample table, decoded per item with PIL."""

    def __init__(self, paths: list[str], labels: list[int], transform):
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image
        with Image.open(self.paths[index]) as image:
            picture = image.convert("RGB")
        return self.transform(picture), self.labels[index]


def tutorial_transforms(train: bool):
    from torchvision.transforms import v2
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(), *tail])
    return v2.Compose([v2.Resize(256), v2.CenterCrop(224), *tail])


def _tutorial_loaders(dataset) -> dict:
    loaders = {}
    for split in ("train", "val"):
        rows = dataset.split(split)
        table = SampleTable(rows.path.tolist(), [dataset.classes.index(label) for label in rows.label],
                            tutorial_transforms(split == "train"))
        loaders[split] = torch.utils.data.DataLoader(table, batch_size=TUTORIAL_BATCH, shuffle=(split == "train"),
                                                     num_workers=TUTORIAL_WORKERS)
    return loaders


def tutorial_run(dataset, backbone: str, mode: str, epochs: int, device: str, log: Log = _quiet,
                 pretrained: bool = True) -> dict:
    """The tutorial's loop on the studio's sample table; per-epoch seconds cover the train and val pass."""
    from studio.backbones import create_model

    if mode not in ("frozen", "finetune"):
        raise ValueError(f"tutorial mode is 'frozen' or 'finetune', not {mode!r}")
    setup_started = time.perf_counter()
    torch.manual_seed(0)
    loaders = _tutorial_loaders(dataset)
    model = create_model(backbone, len(dataset.classes), pretrained=pretrained)
    if mode == "frozen":
        for param in model.parameters():
            param.requires_grad = False
        for param in model.get_classifier().parameters():
            param.requires_grad = True
    model = model.to(device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=TUTORIAL_LR,
                                momentum=TUTORIAL_MOMENTUM)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=TUTORIAL_STEP, gamma=TUTORIAL_GAMMA)
    criterion = torch.nn.CrossEntropyLoss()
    setup_seconds = time.perf_counter() - setup_started

    started = time.perf_counter()
    epoch_seconds, accuracies = [], []
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        for split in ("train", "val"):
            training = split == "train"
            model.train(training)
            correct = seen = 0
            for x, y in loaders[split]:
                x, y = x.to(device), y.to(device)
                with torch.set_grad_enabled(training):
                    logits = model(x)
                    loss = criterion(logits, y)
                    if training:
                        optimizer.zero_grad()
                        loss.backward()
                        optimizer.step()
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
            if training:
                scheduler.step()
        epoch_seconds.append(time.perf_counter() - epoch_started)
        accuracies.append(correct / max(1, seen))
        log(f"tutorial {mode}: epoch {epoch}/{epochs} {epoch_seconds[-1]:.1f} s, val accuracy {accuracies[-1]:.3f}")
    total = time.perf_counter() - started
    del model, optimizer
    _free(device)
    result = _summary(epoch_seconds, total, len(dataset.split("train")), mode == "frozen", max(accuracies))
    result.update(val_accuracy=[round(a, 5) for a in accuracies], setup_seconds=round(setup_seconds, 3),
                  train_images=len(dataset.split("train")), val_images=len(dataset.split("val")))
    return result


# ---------------------------------------------------------------- the studio engine

def studio_run(data: str, backbone: str, freeze: str, epochs: int | None, device: str, runs_root: str,
               log: Log = _quiet, batch_size: int | None = None, random_weights: bool = False) -> dict:
    """One engine run through the public API; total seconds are wall time from start to finish.

    freeze "auto" with epochs None is the Auto recipe exactly as the page and `studio train` run it.
    """
    from studio.runs import MANAGER
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    name = {"all": "frozen", "auto": "auto"}.get(freeze, "finetune")
    config = TrainConfig(data=str(Path(data).resolve()), backbone=backbone, freeze=freeze, epochs=epochs,
                         device=device, runs_root=runs_root, random_weights=random_weights)
    if batch_size:
        config.batch_size = batch_size
    started = time.perf_counter()
    run = start_training(config)
    phase = None
    try:
        while run.is_active():
            MANAGER.wait(timeout=1.0)   # returns the moment the run's thread ends
            snap = run.snapshot()
            if snap.get("phase") != phase:
                phase = snap.get("phase")
                log(f"studio {name}: {phase}")
        MANAGER.wait()
    except KeyboardInterrupt:
        run.stop_event.set()
        MANAGER.wait()
        raise
    total = time.perf_counter() - started
    snap = run.snapshot()
    if snap["status"] != "finished":
        raise BenchError(f"the studio {name} run {snap['status']}: {snap.get('error') or snap.get('phase')}")
    history = snap.get("history") or []
    if not history:
        raise BenchError(f"the studio {name} run finished without a single epoch")
    epoch_seconds = [float(h["epoch_seconds"]) for h in history]
    counts = snap.get("dataset") or {}
    train_images = int(counts.get("train") or 0)
    result = _summary(epoch_seconds, total, train_images, freeze in ("all", "auto"), snap.get("best_val_accuracy"))
    elapsed = history[-1].get("elapsed_seconds")
    if elapsed is None and snap.get("finished") and snap.get("started"):
        elapsed = snap["finished"] - snap["started"]
    config_used = snap.get("config") or {}
    result.update(
        val_accuracy=[h.get("val_accuracy") for h in history],
        elapsed_seconds=None if elapsed is None else round(float(elapsed), 3),
        train_images=train_images, val_images=int(counts.get("val") or 0),
        freeze=freeze, settings={k: config_used.get(k) for k in ("lr", "batch_size", "feature_views", "augment")},
        choices=config_used.get("choices") or {}, timings=snap.get("timings") or {},
        engine=snap.get("engine") or {},
    )
    log(f"studio {name}: {total:.1f} s in all, best val accuracy {result['best_val_accuracy']}")
    return result


# ---------------------------------------------------------------- one pass over the data

def one_pass(dataset, backbone: str, device: str, log: Log = _quiet, pretrained: bool = True) -> dict:
    """Seconds to decode every train and validation photo once and run it through the backbone once.

    Made as the engine makes its passes (the studio's decoder on its threads, centre
    crop, channels_last, bf16 where it pays, the engine's inference batch), with the
    model already loaded and its kernels warmed up: what any method must spend to
    look at the data once.
    """
    from studio import augment, backbones, fastpath, hardware
    from studio.data.pixels import cache_side, decode_all

    dev = torch.device(device)
    torch.backends.cudnn.benchmark = False   # as the engine runs (see train.context.prepare)
    model = backbones.create_model(backbone, len(dataset.classes), pretrained=pretrained)
    prep = backbones.preprocessing(model)
    model = model.to(dev, memory_format=torch.channels_last).eval()
    amp = hardware.fast_bf16(dev)
    batch = fastpath.eval_batch_size(dev)
    files = dataset.samples[dataset.samples.split.isin(["train", "val"])].path.tolist()
    side = cache_side(prep)

    def forward(pixels: torch.Tensor) -> None:
        for start in range(0, len(pixels), batch):
            x = augment.eval_batch(pixels[start:start + batch].to(dev, non_blocking=True), prep)
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                model(x.contiguous(memory_format=torch.channels_last))

    warm = torch.zeros(len(files) % batch or batch, 3, side, side, dtype=torch.uint8)
    forward(torch.zeros(min(batch, len(files)), 3, side, side, dtype=torch.uint8))
    forward(warm)   # both batch shapes the timed pass will use
    _sync(device)
    started = time.perf_counter()
    pixels, failures = decode_all(files, side)
    decoded = time.perf_counter()
    forward(pixels)
    _sync(device)
    finished = time.perf_counter()
    model = None   # give the GPU memory back before the next part
    _free(device)
    total = finished - started
    log(f"one pass: {len(pixels)} photos in {total:.2f} s (decode {decoded - started:.2f} s, "
        f"forward {finished - decoded:.2f} s)")
    return {"images": len(pixels), "unreadable": len(failures), "batch_size": batch,
            "precision": "bf16" if amp else "fp32", "seconds": round(total, 4),
            "decode_seconds": round(decoded - started, 4), "forward_seconds": round(finished - decoded, 4),
            "images_per_second": round(len(pixels) / total, 2), "_total": total}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- the raw limit (CUDA)

def _timed_steps(step: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return time.perf_counter() - started


def _raw_train_ips(model, batch_size: int, side: int, num_classes: int, warmup: int, steps: int) -> float:
    import torch.nn.functional as F

    x = torch.randn(batch_size, 3, side, side, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), device="cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = _timed_steps(step, warmup, steps)
    optimizer.zero_grad(set_to_none=True)
    return batch_size * steps / seconds


def _raw_forward_ips(model, batch_size: int, side: int, warmup: int, steps: int) -> float:
    x = torch.randn(batch_size, 3, side, side, device="cuda").contiguous(memory_format=torch.channels_last)
    model.eval()

    def step():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(x)

    return batch_size * steps / _timed_steps(step, warmup, steps)


def raw_limit(backbone: str, num_classes: int, batch_size: int = RAW_BATCH, warmup: int = 5, steps: int = 15,
              log: Log = _quiet, engine_batch: int | None = None) -> dict:
    """Images/s of the bare backbone on a synthetic GPU batch: bf16 training (AdamW) and bf16 forward.

    Training is also timed at the engine's own batch size (`engine_batch`): small batches
    cannot fill a large GPU, so that number says how much of the gap is the batch size.
    """
    from studio.backbones import create_model, preprocessing

    if not torch.cuda.is_available():
        raise BenchUsageError("The raw limit is measured on a CUDA GPU only.")
    torch.backends.cudnn.benchmark = True
    model = create_model(backbone, num_classes, pretrained=False)   # timing only: the weights do not matter
    side = preprocessing(model)["input_size"]
    model = model.to("cuda", memory_format=torch.channels_last)
    while True:
        try:
            train_ips = _raw_train_ips(model, batch_size, side, num_classes, warmup, steps)
            break
        except torch.cuda.OutOfMemoryError:
            if batch_size <= 16:
                raise
        model.zero_grad(set_to_none=True)   # outside the except block: the failed step's tensors are gone
        batch_size //= 2
        _free("cuda")
        log(f"raw: out of GPU memory, trying batch {batch_size}")
    model.zero_grad(set_to_none=True)
    _free("cuda")
    engine_ips = None
    if engine_batch and engine_batch < batch_size:
        engine_ips = _raw_train_ips(model, engine_batch, side, num_classes, warmup, steps * 4)
        model.zero_grad(set_to_none=True)
        _free("cuda")
    forward_ips = _raw_forward_ips(model, batch_size, side, warmup, steps * 2)
    model.cpu()
    _free("cuda")
    log(f"raw: train {train_ips:.0f} img/s, forward {forward_ips:.0f} img/s (bf16, batch {batch_size})")
    return {
        "batch_size": batch_size, "input_size": side, "timed_steps": steps, "dtype": "bfloat16",
        "memory_format": "channels_last", "optimizer": "AdamW", "data": "synthetic, already on the GPU",
        "train_images_per_second": round(train_ips, 2), "forward_images_per_second": round(forward_ips, 2),
        "engine_batch_size": engine_batch if engine_ips else None,
        "train_images_per_second_at_engine_batch": None if engine_ips is None else round(engine_ips, 2),
        "_train_ips": train_ips, "_forward_ips": forward_ips, "_engine_ips": engine_ips,
    }


def _free(device: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- ratios and goals

def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ratios_and_goals(runs: dict, device: str, data_images: int) -> tuple[dict, dict, dict]:
    """Ratios from the unrounded measurements, and the goals that apply on this device."""
    def get(run: str, key: str):
        return runs[run][key] if run in runs else None

    ratios = {
        "frozen_total_vs_tutorial": _ratio(get("studio_frozen", "_total"), get("tutorial_frozen", "_total")),
        "finetune_epoch_vs_tutorial": _ratio(get("studio_finetune", "_steady"), get("tutorial_finetune", "_steady")),
    }
    extra = {}
    if device == "cuda":
        ratios["finetune_vs_raw_bf16"] = _ratio(get("studio_finetune", "_ips"), get("raw_bf16", "_train_ips"))
        ratios["finetune_vs_tutorial_speedup"] = _ratio(get("studio_finetune", "_ips"),
                                                        get("tutorial_finetune", "_ips"))
        ratios["finetune_vs_raw_bf16_at_engine_batch"] = _ratio(get("studio_finetune", "_ips"),
                                                                get("raw_bf16", "_engine_ips"))
        forward_ips = get("raw_bf16", "_forward_ips")
        synthetic = data_images / forward_ips if forward_ips else None
        ratios["frozen_run_vs_synthetic_forward"] = _ratio(get("studio_frozen", "_total"), synthetic)
        if synthetic is not None:
            extra = {"synthetic_forward_seconds": round(synthetic, 4), "synthetic_forward_images": data_images}
    ratios["frozen_run_vs_one_pass"] = _ratio(get("studio_frozen", "_total"), get("one_pass", "_total"))
    ratios = {k: (None if v is None else round(v, 4)) for k, v in ratios.items()}

    tutorial_best = max((get(t, "best_val_accuracy") for t in ("tutorial_frozen", "tutorial_finetune")
                         if get(t, "best_val_accuracy") is not None), default=None)
    auto_accuracy = get("studio_auto", "best_val_accuracy")
    ratios["auto_total_vs_tutorial_finetune_total"] = (
        None if get("studio_auto", "_total") is None or not get("tutorial_finetune", "_total")
        else round(get("studio_auto", "_total") / get("tutorial_finetune", "_total"), 4))
    values = dict(ratios, frozen_best_val_accuracy=get("studio_frozen", "best_val_accuracy"),
                  auto_accuracy_minus_best_tutorial=None if auto_accuracy is None or tutorial_best is None
                  else round(auto_accuracy - tutorial_best, 5))
    goals = {}
    for name, (direction, threshold, devices) in GOALS.items():
        value = values.get(name)
        if device not in devices or value is None:
            continue
        met = value <= threshold if direction == "<=" else value >= threshold
        goals[name] = {"value": value, "goal": f"{direction} {threshold:g}", "met": bool(met)}
    return ratios, goals, extra


# ---------------------------------------------------------------- the whole bench

def run_bench(data: str, backbone: str = "", epochs: int = 3, device: str = "auto", only: str | None = None,
              log: Log = _quiet, batch_size: int | None = None, random_weights: bool = False) -> dict:
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


# ---------------------------------------------------------------- the table

def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"studio bench: {report['backbone']} on {report['dataset']} "
        f"({report['images']['train']} train / {report['images']['val']} val images), {report['epochs']} epoch(s)"
        + (", RANDOM weights (timing only)" if report.get("weights", "").startswith("random") else ""),
        f"machine: {machine['device_name']} ({machine['device']}), {machine['cores']} cores, torch {machine['torch']}",
        "",
        f"{'run':<20} {'epoch seconds':<28} {'total s':>9} {'img/s':>10} {'best val acc':>13}",
    ]
    for name, run in report["runs"].items():
        if name == "raw_bf16":
            lines.append(f"{'raw bf16 (synthetic)':<20} {'batch ' + str(run['batch_size']):<28} {'-':>9} "
                         f"{_fmt(run['train_images_per_second'], 1):>10} {'-':>13}"
                         f"   forward {_fmt(run['forward_images_per_second'], 1)} img/s")
            if run.get("train_images_per_second_at_engine_batch"):
                lines.append(f"{'raw bf16 (synthetic)':<20} {'batch ' + str(run['engine_batch_size']):<28} "
                             f"{'-':>9} {_fmt(run['train_images_per_second_at_engine_batch'], 1):>10} {'-':>13}")
            continue
        if name == "one_pass":
            timings = 'decode ' + _fmt(run['decode_seconds']) + ' + forward ' + _fmt(run['forward_seconds'])
            lines.append(f"{'one pass over data':<20} {timings:<28} "
                         f"{_fmt(run['seconds']):>9} {_fmt(run['images_per_second'], 1):>10} {'-':>13}")
            continue
        epochs = ", ".join(f"{s:.2f}" for s in run["epoch_seconds"])
        if len(epochs) > 28:
            epochs = epochs[:25] + "..."
        lines.append(f"{name:<20} {epochs:<28} {_fmt(run['total_seconds']):>9} "
                     f"{_fmt(run['images_per_second'], 1):>10} {_fmt(run['best_val_accuracy'], 3):>13}")
    lines += ["", "ratios:"]
    for name, value in report["ratios"].items():
        goal = report["goals"].get(name)
        verdict = f"   goal {goal['goal']}: {'met' if goal['met'] else 'NOT met'}" if goal else ""
        lines.append(f"  {name:<34} {_fmt(value, 3):>8}{verdict}")
    accuracy = report["goals"].get("frozen_best_val_accuracy")
    if accuracy:
        lines.append(f"  {'frozen_best_val_accuracy':<34} {_fmt(accuracy['value'], 3):>8}   goal {accuracy['goal']}: "
                     f"{'met' if accuracy['met'] else 'NOT met'}")
    lines += [f"warning: {text}" for text in report.get("warnings", [])]
    return "\n".join(lines)
