"""The two ways of training the bench compares: the PyTorch tutorial's loop and the studio engine.

Both report the same summary (`summary`), so `bench_report` can put them side by side.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The tutorial recipe (PyTorch "Transfer learning for computer vision").
TUTORIAL_BATCH = 4
TUTORIAL_WORKERS = 2
TUTORIAL_LR = 0.001
TUTORIAL_MOMENTUM = 0.9
TUTORIAL_STEP = 7
TUTORIAL_GAMMA = 0.1

Log = Callable[[str], None]


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why."""


class BenchUsageError(BenchError):
    """The request itself is wrong (an unknown part, a device this machine lacks)."""


def quiet(_: str) -> None:
    pass


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free(device: str) -> None:
    """Give the GPU memory back before the next part."""
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- summaries

def typical_seconds(epoch_seconds: list[float]) -> float:
    """Seconds of a typical epoch: the mean of the epochs after the first (warm-up), if any."""
    later = epoch_seconds[1:] or epoch_seconds
    return statistics.fmean(later)


def summary(epoch_seconds: list[float], total_seconds: float, train_images: int, feature_extraction: bool,
             best_val_accuracy: float | None) -> dict:
    steady = typical_seconds(epoch_seconds)
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


def tutorial_run(dataset, backbone: str, mode: str, epochs: int, device: str, log: Log = quiet,
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
    free(device)
    result = summary(epoch_seconds, total, len(dataset.split("train")), mode == "frozen", max(accuracies))
    result.update(val_accuracy=[round(a, 5) for a in accuracies], setup_seconds=round(setup_seconds, 3),
                  train_images=len(dataset.split("train")), val_images=len(dataset.split("val")))
    return result


# ---------------------------------------------------------------- the studio engine

def studio_run(data: str, backbone: str, freeze: str, epochs: int | None, device: str, runs_root: str,
               log: Log = quiet, batch_size: int | None = None, random_weights: bool = False) -> dict:
    """One engine run through the public API; total seconds are wall time from start to finish.

    freeze "auto" with epochs None is the Auto recipe exactly as the page and `studio train` run it.
    """
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
            run.wait(timeout=1.0)   # returns the moment the run's thread ends
            snap = run.snapshot()
            if snap.get("phase") != phase:
                phase = snap.get("phase")
                log(f"studio {name}: {phase}")
        run.wait()
    except KeyboardInterrupt:
        run.stop_event.set()
        run.wait()
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
    result = summary(epoch_seconds, total, train_images, freeze in ("all", "auto"), snap.get("best_val_accuracy"))
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


