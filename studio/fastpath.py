"""The engine's fast inference pass, shared by training's feature passes and `Predictor`.

Why one place: the knobs that make a forward pass fast here (small batches on a CPU,
channels_last, bf16 autocast where the hardware has it, one traced and frozen graph)
were tuned for training's feature passes; `studio predict` and the page's batch paths
must get the same speed without repeating that tuning.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

import torch

TRACED_KEPT = 2  # traced graphs kept for later runs (one per recently used model)
# A process-wide cache on purpose, unlike the job runner: a traced graph is a pure function of its key
# (backbone, size, precision, weights fingerprint), so every runner and page may share it; bounded LRU.
_TRACED: "OrderedDict[tuple, torch.jit.ScriptModule]" = OrderedDict()


def eval_batch_size(device: torch.device) -> int:
    """Batch for passes without gradients: large on a GPU; on a CPU small batches stay in the
    cache (~120 img/s at 8 vs ~70 at 32, MobileNetV2, 2 cores)."""
    return 256 if torch.device(device).type == "cuda" else 8


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when `enabled` (see hardware.fast_bf16), else a no-op context."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    # channels_last pays on both: tensor cores on CUDA, oneDNN kernels on CPU (2-3x here)
    return x.contiguous(memory_format=torch.channels_last)


def weights_fingerprint(model: torch.nn.Module) -> tuple:
    """A cheap identity for a model's weights (a few tensors' sums), so a cached graph is only
    reused for exactly the weights it was traced with."""
    params = [p for _, p in sorted(model.named_parameters()) if p.ndim > 1]
    step = max(1, len(params) // 8)
    return tuple(round(float(p.detach().double().sum()), 6) for p in params[::step])


def traced(key: tuple, module: torch.nn.Module, example: torch.Tensor, amp: bool):
    """`module` traced on `example` and frozen into one oneDNN graph (conv, batch norm and
    activation fused), or `module` itself when it cannot be traced (same answers, slower).

    About 2x the eager forward on a CPU (MobileNetV2 bf16, batch 8: 336 vs 170 img/s) for about
    1.3 s of tracing. Graphs are kept under `key` for the next caller with the same weights:
    each new trace holds on to about 60 MB that Torch never gives back, so tracing on every run
    grew the process by that much per run. Call the result under `autocast(.., amp)` as well.
    """
    cached = _TRACED.get(key)
    if cached is not None:
        _TRACED.move_to_end(key)
        return cached
    try:
        with torch.inference_mode(), autocast(example.device, amp), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.jit.freeze(torch.jit.trace(module, example))
    except Exception:  # any tracing limitation: the eager module gives the same answers, slower
        return module
    _TRACED[key] = graph
    while len(_TRACED) > TRACED_KEPT:
        _TRACED.popitem(last=False)
    return graph
