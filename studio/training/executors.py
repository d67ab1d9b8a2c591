"""Executors: what actually trains a queued job. The queue (JobRunner) decides when; an executor decides where.

- InProcess (the default): a background thread of this process, on this machine's device;
- torchrun (`launch`), chosen by the run's own settings (--gpus N, --nproc N): N processes here;
- RayJobs: the same `studio train` command submitted to a Ray cluster the studio does not manage
  (`studio serve --executor ray --ray-address http://HEAD:8265`); it needs `pip install -e ".[cluster]"`.

Every executor leaves the same run folder behind, and the page follows each the same way.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

from studio.config import ASKED_KEY
from studio.runs import JobRunner, Run, Status
from studio.runs.state import ACTIVE_STATUSES
from studio.training.config import TrainConfig

JOB_SETTINGS_FILE = "ray-job.json"   # the settings the Ray job trains with, beside the run it writes
STOP_GRACE_SECONDS = 30              # after Stop, how long the job may take to save its best model before stop_job


class ExecutorError(RuntimeError):
    """The executor cannot be used as asked (Ray not installed, the cluster not reachable); says what to do."""


class RayJobs:
    """Submits each run as a Ray job (`studio train --config FILE --out RUN_DIR`) and follows its run folder.

    The run folder must be on storage that the cluster's workers and this studio both reach (the same
    path on both); the job asks Ray for the run's GPUs (`entrypoint_num_gpus`). Stop asks the run to stop
    through its folder (it keeps its best model), then calls Ray's `stop_job` if it has not ended."""
    name = "ray"

    def __init__(self, address: str):
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise ExecutorError("The Ray executor needs Ray: pip install -e \".[cluster]\" (or pip install "
                                "\"ray[default]\"), then start again.") from None
        try:
            self.client = JobSubmissionClient(address)
        except Exception as exc:   # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            raise ExecutorError(f"Could not reach the Ray cluster at {address} ({exc}). Is `ray start --head` "
                                "running there, with its dashboard (port 8265) reachable from here?") from None
        self.address = address

    def entrypoint(self, settings_file: Path, run_dir: Path) -> str:
        return shlex.join([sys.executable if self._same_machine() else "python", "-m", "studio", "train",
                           "--config", str(settings_file), "--out", str(run_dir), "--quiet"])

    def _same_machine(self) -> bool:
        return any(host in self.address for host in ("127.0.0.1", "localhost"))

    def start(self, config: TrainConfig, runner: JobRunner, run_dir: Path | None = None,
              resume_from: dict | None = None) -> Run:
        if resume_from is not None:
            raise ExecutorError("Resuming through Ray is not supported yet: resume the run on this machine "
                                "(studio train --resume RUN_DIR) or start it again.")
        resolved = config.resolved()
        payload = asdict(resolved)
        payload[ASKED_KEY] = {k: v for k, v in asdict(config).items() if k != "choices"}
        payload["executor"] = {"name": self.name, "address": self.address}
        return runner.start(payload, lambda run: self.follow(run, config), Path(resolved.runs_root)
                            if resolved.runs_root else None, Path(run_dir) if run_dir else None)

    def follow(self, run: Run, config: TrainConfig) -> None:
        """Job body: submit, mirror the run folder while the Ray job runs, pass Stop on, report a crash."""
        from ray.job_submission import JobStatus

        from studio.training.launch import mirror
        settings_file = run.dir / JOB_SETTINGS_FILE
        settings_file.write_text(json.dumps({k: v for k, v in asdict(config).items() if k != "choices"},
                                            default=str))
        run.update(phase=f"Submitting to the Ray cluster at {self.address}")
        job_id = self.client.submit_job(entrypoint=self.entrypoint(settings_file, run.dir),
                                        entrypoint_num_gpus=max(0, config.gpus or 0),
                                        entrypoint_num_cpus=1, submission_id=f"studio-{run.id}",
                                        runtime_env={"env_vars": {"STUDIO_OWNER": config.owner or ""}})
        run.update(ray_job=job_id, phase=f"Waiting for the Ray cluster to start job {job_id}")
        stop_asked_at = None
        ended = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
        while (status := self.client.get_job_status(job_id)) not in ended:
            if run.stop_event.is_set():   # again each time: the job's run clears a request made before it started
                run.folder.stop_request.touch()
                stop_asked_at = stop_asked_at or time.monotonic()
            if stop_asked_at is not None and time.monotonic() - stop_asked_at > STOP_GRACE_SECONDS:
                self.client.stop_job(job_id)
            mirror(run)
            time.sleep(1.0)
        mirror(run)
        if run.status in ACTIVE_STATUSES:
            logs = self.client.get_job_logs(job_id).strip().splitlines()[-5:]
            if status == JobStatus.STOPPED:
                run.finish(Status.STOPPED)
            else:
                run.finish(Status.FAILED, error=f"The Ray job {job_id} ended ({status}) before the run did. Its last "
                                                f"lines: {' / '.join(logs) or 'none'}")


def start(config: TrainConfig, runner: JobRunner, run_dir: Path | None = None,
          resume_from: dict | None = None) -> Run:
    """Start `config` with the runner's executor: Ray when the studio was served with one, else torchrun for
    --gpus/--nproc, else a thread of this process."""
    from studio.training import launch, trainer
    if getattr(runner, "executor", None) is not None:
        return runner.executor.start(config, runner, run_dir, resume_from)
    if launch.is_distributed(config):
        return launch.start_distributed(config, runner, run_dir=run_dir, resume_from=resume_from)
    return trainer.start_in_thread(config, runner, run_dir, resume_from)
