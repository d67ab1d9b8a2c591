"""The Ray executor against a real Ray head on this machine: start the head, queue two runs through a
JobRunner with the RayJobs executor (what `studio serve --executor ray` does), stop one, let the other
finish, check both run folders, stop the head. Prints what it saw; exits 1 on any failed check.

    pip install -e ".[cluster]"
    python benchmarks/ray_check.py [--data assets/example/hymenoptera] [--out benchmarks/ray-check.txt]

Not part of CI: installing Ray and starting a head add about a minute to a suite that is already at
its limit (README: "Scaling out"). The recorded output is in benchmarks/ray-check-*.txt.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio import paths  # noqa: E402
from studio.runs import JobRunner, history  # noqa: E402
from studio.training.config import TrainConfig  # noqa: E402
from studio.training.executors import RayJobs  # noqa: E402
from studio.training.trainer import start_training  # noqa: E402

DASHBOARD = "http://127.0.0.1:8265"


def say(lines: list[str], text: str) -> None:
    print(text, flush=True)
    lines.append(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(paths.EXAMPLE_DATASET))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    lines: list[str] = []
    failures = 0
    started = time.perf_counter()
    say(lines, f"# Ray executor check, {time.strftime('%Y-%m-%d %H:%M')}")
    head = subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--dashboard-host", "127.0.0.1",
                           "--disable-usage-stats"], capture_output=True, text=True)
    say(lines, f"ray start --head: exit {head.returncode} after {time.perf_counter() - started:.1f} s")
    if head.returncode != 0:
        print(head.stderr)
        return 1
    try:
        import ray
        say(lines, f"Ray {ray.__version__}, dashboard {DASHBOARD}")
        root = Path(tempfile.mkdtemp(prefix="studio-ray-"))
        runner = JobRunner(slots=1, executor=RayJobs(DASHBOARD))
        config = dict(data=args.data, backbone="mobilenetv2_100", freeze="all", epochs=2, runs_root=str(root))
        first = start_training(TrainConfig(**config, owner="ann"), runner=runner)
        second = start_training(TrainConfig(**{**config, "epochs": 30, "freeze": "6"}, owner="bob"), runner=runner)
        say(lines, f"queued: {first.id} ({first.status}), {second.id} ({second.status}, "
                   f"{second.snapshot()['phase']})")
        first.wait(600)
        snap = first.snapshot()
        say(lines, f"first: {snap['status']}, Ray job {snap.get('ray_job')}, best validation accuracy "
                   f"{snap.get('best_val_accuracy')}, epochs {len(snap['history'])}, model file "
                   f"{(first.dir / 'model.safetensors').is_file()}")
        failures += snap["status"] != "finished" or not (first.dir / "model.safetensors").is_file()
        while second.is_active() and not second.snapshot()["history"]:
            time.sleep(1)
        say(lines, f"second started after the first ended; stopping it after epoch "
                   f"{second.snapshot()['history'][-1]['epoch'] if second.snapshot()['history'] else 0}")
        runner.stop(second)
        second.wait(300)
        snap = second.snapshot()
        say(lines, f"second: {snap['status']} after {len(snap['history'])} epochs, Ray job {snap.get('ray_job')}, "
                   f"best model kept {(second.dir / 'model.safetensors').is_file()}")
        failures += snap["status"] != "stopped" or not (second.dir / "model.safetensors").is_file()
        rows = {row["id"]: row for row in history.list_runs(root)}
        say(lines, "runs list: " + ", ".join(f"{row['id']} {row['status']} (owner {row['owner']})"
                                             for row in rows.values()))
        failures += rows[first.id]["owner"] != "ann" or rows[second.id]["owner"] != "bob"
        from ray.job_submission import JobSubmissionClient
        jobs = JobSubmissionClient(DASHBOARD).list_jobs()
        say(lines, "Ray's own list: " + ", ".join(f"{job.submission_id} {job.status}" for job in jobs))
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True)
        say(lines, f"ray stop; {failures} failed checks; {time.perf_counter() - started:.0f} s in all")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
