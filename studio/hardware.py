"""What the machine can do fast: the device, and whether bf16 pays on it.

bf16 autocast is the big lever on a GPU, and on recent x86 CPUs too: with AMX or
AVX512-BF16, MobileNetV2's forward pass runs about 1.8x faster in bf16 than fp32
on 2 cores (measured; see benchmarks/RESULTS.md). On a CPU without those
instructions bf16 is emulated and slower, so it stays off there.
"""
from __future__ import annotations

import functools
import os
import platform

import torch


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("No CUDA GPU is available on this machine; use --device cpu.")
    return torch.device(requested)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast is a speed-up here. STUDIO_BF16=0/1 overrides the guess."""
    forced = os.environ.get("STUDIO_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return False


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
