"""What no training can beat, as references for the engine's times: one pass over the data, and
(CUDA only) the bare backbone's images/s on a synthetic batch already on the GPU."""
from __future__ import annotations

import time
from typing import Callable

import torch

from bench_runs import BenchUsageError, Log, free, quiet, sync

RAW_BATCH = 256

# ---------------------------------------------------------------- one pass over the data

def one_pass(dataset, backbone: str, device: str, log: Log = quiet, pretrained: bool = True) -> dict:
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
    sync(device)
    started = time.perf_counter()
    pixels, failures = decode_all(files, side)
    decoded = time.perf_counter()
    forward(pixels)
    sync(device)
    finished = time.perf_counter()
    model = None   # give the GPU memory back before the next part
    free(device)
    total = finished - started
    log(f"one pass: {len(pixels)} photos in {total:.2f} s (decode {decoded - started:.2f} s, "
        f"forward {finished - decoded:.2f} s)")
    return {"images": len(pixels), "unreadable": len(failures), "batch_size": batch,
            "precision": "bf16" if amp else "fp32", "seconds": round(total, 4),
            "decode_seconds": round(decoded - started, 4), "forward_seconds": round(finished - decoded, 4),
            "images_per_second": round(len(pixels) / total, 2), "_total": total}


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
              log: Log = quiet, engine_batch: int | None = None) -> dict:
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
        free("cuda")
        log(f"raw: out of GPU memory, trying batch {batch_size}")
    model.zero_grad(set_to_none=True)
    free("cuda")
    engine_ips = None
    if engine_batch and engine_batch < batch_size:
        engine_ips = _raw_train_ips(model, engine_batch, side, num_classes, warmup, steps * 4)
        model.zero_grad(set_to_none=True)
        free("cuda")
    forward_ips = _raw_forward_ips(model, batch_size, side, warmup, steps * 2)
    model.cpu()
    free("cuda")
    log(f"raw: train {train_ips:.0f} img/s, forward {forward_ips:.0f} img/s (bf16, batch {batch_size})")
    return {
        "batch_size": batch_size, "input_size": side, "timed_steps": steps, "dtype": "bfloat16",
        "memory_format": "channels_last", "optimizer": "AdamW", "data": "synthetic, already on the GPU",
        "train_images_per_second": round(train_ips, 2), "forward_images_per_second": round(forward_ips, 2),
        "engine_batch_size": engine_batch if engine_ips else None,
        "train_images_per_second_at_engine_batch": None if engine_ips is None else round(engine_ips, 2),
        "_train_ips": train_ips, "_forward_ips": forward_ips, "_engine_ips": engine_ips,
    }

