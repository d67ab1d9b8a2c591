"""The job queue: a Start while the studio is busy waits its turn instead of being refused.

The queue's own tests give it plain workloads (threads that wait for the test to let them finish),
so the order is exact and nothing depends on how fast a training is; the last tests queue real
trainings on the example photos and restart the studio while one waits.
"""
from __future__ import annotations

import threading

import pytest

from studio.runs import JobRunner, RunBusyError, Status, history
from studio.runs.runner import MAX_WAITING_PER_PERSON


class Workloads:
    """Targets that record when they start and end only when the test says so."""

    def __init__(self):
        self.started: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def target(self, name: str):
        self.release[name] = threading.Event()

        def body(run):
            with self.lock:
                self.started.append(name)
            run.update(status=Status.RUNNING, phase="Training", eta_seconds=120, progress=0.6)
            self.release[name].wait(30)
            run.finish(Status.FINISHED)
        return body

    def finish(self, runner: JobRunner, name: str, run) -> None:
        self.release[name].set()
        run.wait(30)
        assert not run.is_active()


def queue(runner, work, tmp_path, name, owner=None):
    return runner.start({"backbone": name, "owner": owner}, work.target(name), runs_root=tmp_path)


def test_a_second_start_waits_in_line_then_runs(tmp_path):
    runner, work = JobRunner(slots=1), Workloads()
    first = queue(runner, work, tmp_path, "first")
    second = queue(runner, work, tmp_path, "second")
    snapshot = second.snapshot()
    assert snapshot["status"] == "queued" and second.thread is None
    assert snapshot["queue"]["place"] == 1 and snapshot["queue"]["ahead"] == 1
    assert snapshot["queue"]["expected_start_seconds"] == pytest.approx(120)   # the first run's time left
    assert "1st in line" in snapshot["phase"] and "about 2 min" in snapshot["phase"]
    # the queued run already has its folder, so the runs list shows it waiting
    rows = {row["id"]: row["status"] for row in history.list_runs(tmp_path, live=runner.runs)}
    assert rows[second.id] == "queued" and rows[first.id] == "running"
    work.finish(runner, "first", first)
    work.finish(runner, "second", second)
    assert work.started == ["first", "second"]


def test_turns_go_round_people_not_first_come(tmp_path):
    runner, work = JobRunner(slots=1), Workloads()
    runs = {"a1": queue(runner, work, tmp_path, "a1", "ann")}
    for name, owner in (("a2", "ann"), ("a3", "ann"), ("b1", "bob"), ("c1", "cy"), ("b2", "bob")):
        runs[name] = queue(runner, work, tmp_path, name, owner)
    places = {name: run.snapshot()["queue"]["place"] for name, run in runs.items() if name != "a1"}
    # ann was just served: bob and cy go before her second run, then turns keep going round
    assert sorted(places, key=places.get) == ["b1", "c1", "a2", "b2", "a3"]
    for name in ["a1", "b1", "c1", "a2", "b2", "a3"]:
        work.finish(runner, name, runs[name])
    assert work.started == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_a_queued_run_can_be_taken_out_of_the_queue(tmp_path):
    runner, work = JobRunner(slots=1), Workloads()
    first = queue(runner, work, tmp_path, "first")
    second = queue(runner, work, tmp_path, "second")
    third = queue(runner, work, tmp_path, "third")
    assert runner.stop(second)
    assert second.status == "stopped" and "out of the queue" in second.snapshot()["phase"]
    assert third.snapshot()["queue"]["place"] == 1   # everyone behind moves up
    work.finish(runner, "first", first)
    work.finish(runner, "third", third)
    assert work.started == ["first", "third"]


def test_a_restarted_studio_takes_back_only_trainings(tmp_path):
    """Queued folders that hold no training's settings (these workloads) are left alone by requeue_saved."""
    from studio.training.trainer import requeue_saved
    runner, work = JobRunner(slots=1), Workloads()
    first, second = queue(runner, work, tmp_path, "first"), queue(runner, work, tmp_path, "second")
    assert second.status == "queued"
    assert requeue_saved(JobRunner(slots=1), tmp_path) == []
    work.finish(runner, "first", first)
    work.finish(runner, "second", second)


def test_one_person_cannot_fill_the_queue(tmp_path):
    runner, work = JobRunner(slots=1), Workloads()
    running = queue(runner, work, tmp_path, "running", "ann")
    waiting = [queue(runner, work, tmp_path, f"w{i}", "ann") for i in range(MAX_WAITING_PER_PERSON)]
    with pytest.raises(RunBusyError, match="already have"):
        queue(runner, work, tmp_path, "one-too-many", "ann")
    other = queue(runner, work, tmp_path, "bob", "bob")   # someone else still gets in
    assert other.status == "queued"
    for run in [running, *waiting, other]:
        runner.stop(run)
    work.release["running"].set()
    runner.wait(30)


def test_each_slot_runs_a_job_at_once(tmp_path):
    """With two slots (a machine with two GPUs) two runs train together and the third waits."""
    runner, work = JobRunner(slots=2), Workloads()
    first, second = queue(runner, work, tmp_path, "first"), queue(runner, work, tmp_path, "second")
    third = queue(runner, work, tmp_path, "third")
    assert first.thread is not None and second.thread is not None and third.thread is None
    assert {tuple(r.snapshot()["slots"]) for r in (first, second)} == {(0,), (1,)}
    work.finish(runner, "second", second)
    third.wait(0.1)
    assert third.snapshot()["slots"] == [1]   # the freed card
    for name, run in (("first", first), ("third", third)):
        work.finish(runner, name, run)


def test_a_job_asking_for_more_slots_waits_for_all_of_them(tmp_path):
    runner, work = JobRunner(slots=2), Workloads()
    first = queue(runner, work, tmp_path, "first")
    wide = runner.start({"backbone": "wide"}, work.target("wide"), runs_root=tmp_path, slots_needed=2)
    late = queue(runner, work, tmp_path, "late")
    assert wide.thread is None and late.thread is None   # the free card is not given to the run behind it
    work.finish(runner, "first", first)
    work.finish(runner, "wide", wide)
    assert wide.snapshot()["slots"] == [0, 1]
    work.finish(runner, "late", late)
    with pytest.raises(RunBusyError, match="GPUs"):
        runner.start({"backbone": "x"}, work.target("x"), runs_root=tmp_path, slots_needed=3)


def test_queued_real_runs_survive_a_restart(small_dataset, tmp_path):
    """A studio process queues a real training behind a busy slot and is killed; a new studio on the
    same workspace puts the run back in line, in its place, and trains it to the end."""
    import json
    import subprocess
    import sys

    from studio.runs import RunFolder
    from studio.training.trainer import requeue_saved

    script = f"""
import json, os, threading
from studio.runs import JobRunner
from studio.training.config import TrainConfig
from studio.training.trainer import start_training
runner = JobRunner(slots=1)
runner.start({{"backbone": "hold"}}, lambda run: threading.Event().wait(), runs_root={str(tmp_path / "other")!r})
run = start_training(TrainConfig(data={str(small_dataset)!r}, backbone="mobilenetv2_100", freeze="all",
                                 epochs=1, runs_root={str(tmp_path)!r}), runner=runner)
print(json.dumps({{"dir": str(run.dir), "status": run.status, "queued_at": run.snapshot()["queued_at"]}}))
os._exit(0)   # killed: the waiting run never started
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before = json.loads(done.stdout.strip().splitlines()[-1])
    assert before["status"] == "queued"
    assert RunFolder(before["dir"]).read_status()["status"] == "queued"
    restarted = JobRunner(slots=1)
    back = requeue_saved(restarted, tmp_path)
    assert [str(run.dir) for run in back] == [before["dir"]]
    assert back[0].snapshot()["queued_at"] == before["queued_at"]   # it keeps its place in line
    back[0].wait(300)
    snapshot = back[0].snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    assert snapshot["best_val_accuracy"] is not None and back[0].folder.has_model()
    assert requeue_saved(JobRunner(slots=1), tmp_path) == []   # nothing waits any more


def test_the_page_asks_for_several_gpus_through_torchrun():
    """The Train step's GPUs control (shown on a machine with two or more) becomes --gpus N."""
    from components import train_step
    from studio.config import command_line
    advanced = [None] * len(train_step.ADVANCED)
    config = train_step.page_config("photos", "mobilenetv2_100", "auto", 0, "Auto", "Auto", "auto", [], [],
                                    *advanced, "balanced", 10, 2)
    assert config.gpus == 2 and "--gpus 2" in command_line(config)
    one = train_step.page_config("photos", "mobilenetv2_100", "auto", 0, "Auto", "Auto", "auto", [], [],
                                 *advanced, "balanced", 10, 0)
    assert one.gpus == 0 and "--gpus" not in command_line(one)


def test_a_ray_cluster_that_cannot_be_used_is_said_in_words(capsys):
    """Without Ray installed (CI) or with no cluster at the address, `studio serve --executor ray` stops with
    what to do, before any page is served."""
    from studio.cli import main
    assert main(["serve", "--executor", "ray", "--ray-address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "pip install" in err or "ray start --head" in err, err


def test_another_process_lists_a_studios_queued_run_as_queued(small_dataset, tmp_path):
    """`studio runs` in a terminal, while a studio server holds a run in its queue, shows it queued; once that
    server is gone it shows interrupted (until a restarted studio puts it back in line)."""
    import subprocess
    import sys

    script = f"""
import sys, threading
from studio.runs import JobRunner
from studio.training.config import TrainConfig
from studio.training.trainer import start_training
runner = JobRunner(slots=1)
runner.start({{"backbone": "hold"}}, lambda run: threading.Event().wait(), runs_root={str(tmp_path / "other")!r})
run = start_training(TrainConfig(data={str(small_dataset)!r}, freeze="all", epochs=1, runs_root={str(tmp_path)!r}),
                     runner=runner)
print(run.id, flush=True)
sys.stdin.read()   # a server, until the test closes its input
"""
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = server.stdout.readline().strip()
        assert run_id, "the 'server' did not queue its run"
        assert {row["id"]: row["status"] for row in history.list_runs(tmp_path)}[run_id] == "queued"
        from studio.training.trainer import requeue_saved
        assert requeue_saved(JobRunner(slots=1), tmp_path) == []   # a living studio's line is not taken over
    finally:
        server.stdin.close()
        server.wait(60)
    assert {row["id"]: row["status"] for row in history.list_runs(tmp_path)}[run_id] == "interrupted"
