"""Data-parallel training over several processes, launched by torchrun (PyTorch's own launcher).

    studio train DATA --gpus 4                 # one machine, four GPUs (NCCL)
    studio train DATA --nproc 2                # two CPU processes (gloo): tests and many-core servers
    studio train DATA --gpus 8 --nnodes 2 --node-rank 0 --rdzv-endpoint head:29500   # on each node

Every rank runs the same Trainer on the same data with the same seed, so every decision (the plan,
the batch order, early stopping, a time budget's cut, Stop) comes out the same everywhere; where a
decision could differ (it depends on the clock or on a file only rank 0 sees), rank 0's is broadcast
(`Ranks.agree`). Fine-tuning is data-parallel: each global batch is split across the ranks
(`Ranks.part`) and DistributedDataParallel all-reduces the gradients, so N ranks at batch B/N each
take the steps one process takes at batch B. The head stage (features of the frozen backbone) and
validation are cheap next to fine-tuning and run whole on every rank, which keeps their results
identical without gathering them. Rank 0 alone writes the run folder; the others write to a private
scratch folder that is deleted at the end, so the page, `studio runs` and the CLI follow a torchrun
run exactly as they follow a thread run. Stop: the studio writes the run folder's stop request file,
rank 0 sees it, and every rank stops after the same batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""
    rank: int
    world: int
    local_rank: int
    local_world: int = 1    # processes on this machine (they share its memory)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch of photo indices (every world-th, from its rank)."""
        return index[self.rank::self.world]

    def agree(self, value):
        """Rank 0's `value` on every rank (a decision that depends on the clock must be the same everywhere)."""
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on any (Stop reaches rank 0 first)."""
        value = torch.tensor([1 if flag else 0], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def total(self, *values) -> list[float]:
        """Each value summed over the ranks (the epoch's loss and accuracy over every rank's photos)."""
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def wrap(self, model: torch.nn.Module, device: torch.device, buffers: bool) -> torch.nn.Module:
        """The model as DistributedDataParallel: its trainable weights start equal and their gradients are
        averaged over the ranks at each backward pass. `buffers`: also keep BatchNorm's statistics equal
        (only when they change during training)."""
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=buffers)

    def _collective_device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def from_environment() -> Ranks | None:
    """The ranks torchrun describes in the environment (joined into one process group), or None for a
    process started on its own."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_gpu = torch.cuda.is_available() and os.environ.get("STUDIO_DIST_DEVICE", "auto") != "cpu"
    if use_gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_gpu else "gloo")
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank,
                 local_world=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def device_for(ranks: Ranks | None, requested: str) -> str:
    """The device a rank trains on: its own GPU (LOCAL_RANK), or the CPU."""
    if ranks is None or requested == "cpu" or not torch.cuda.is_available():
        return requested
    return f"cuda:{ranks.local_rank}"
