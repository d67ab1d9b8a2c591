"""One torchrun process of a distributed run: `python -m torch.distributed.run ... -m studio.training.rank_main`.

    --config FILE     the run's resolved settings (JSON, as config.json holds them)
    --run-dir DIR     the run folder rank 0 writes (the others write a scratch copy, then delete it)
    --resume          carry the run in DIR on after its checkpoint

`studio.training.launch` builds the command; a person never types it. Exits 1 when this process's
training failed, so torchrun ends the other processes instead of leaving them waiting for it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio.training.rank_main")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    from studio.runs import Run, Status, checkpoints, tensorboard
    from studio.training.config import TrainConfig
    from studio.training.distributed import device_for, from_environment
    from studio.training.trainer import run_training

    payload = json.loads(Path(args.config).read_text())
    ranks = from_environment()
    known = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in payload.items() if k in known})
    config = replace(config, device=device_for(ranks, config.device))
    resume = checkpoints.read(args.run_dir) if args.resume else None
    scratch = None
    if ranks is None or ranks.is_main:
        run_dir = Path(args.run_dir)
    else:
        scratch = Path(tempfile.mkdtemp(prefix=f"studio-rank{ranks.rank}-"))
        run_dir = scratch / Path(args.run_dir).name
        if resume is not None:   # the scratch copy carries on from the same checkpoint
            # rank 0 is writing the folder meanwhile: its half-written files (.partial, renamed away at any
            # moment) and its event log are not this rank's to copy
            shutil.copytree(args.run_dir, run_dir,
                            ignore=shutil.ignore_patterns("*.safetensors", "*.partial", tensorboard.FOLDER))
    if ranks is not None:
        payload = {**payload, "processes": ranks.world}
    run = Run(run_dir, payload, resume_from=resume, listed=scratch is None)
    try:
        run_training(config, run, resume, ranks)
    finally:
        if scratch is not None:
            if run.snapshot()["status"] == Status.FAILED:   # its reasons would go with the scratch folder
                if run.folder.log.is_file():
                    print(run.folder.log.read_text(), file=sys.stderr, flush=True)
            shutil.rmtree(scratch, ignore_errors=True)
    if ranks is not None:
        import torch.distributed as dist
        dist.destroy_process_group()
    return 1 if run.status == Status.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
