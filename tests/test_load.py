"""Ten people watching one training through the real server, each in their own gradio_client session:
every poll is answered, every watcher sees the run through to its end, and the run is not disturbed.
(How much the watching slows training is measured by benchmarks/poll_load.py, not asserted here.)"""
import statistics
import threading
import time

import pytest
from gradio_client import Client

from helpers import free_port

pytestmark = pytest.mark.slow  # ten sessions watch a real run to its end

WATCHERS = 10


def test_ten_sessions_watch_one_run_to_its_end(small_dataset):
    from components.app import launch
    from components.train_step import TICK_SECONDS
    from studio.runs import JobRunner
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training

    runner = JobRunner()   # the server's: the run started below is the one its pages watch
    demo, url = launch(port=free_port(), block=False, runner=runner)
    try:
        clients = [Client(url, verbose=False) for _ in range(WATCHERS)]   # one session each, like browser tabs
        stop = threading.Event()
        seen = [[] for _ in clients]
        latencies, errors = [], []

        def watch(client, statuses):
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status, progress = client.predict(api_name="/watch_training")  # (the run key is page state)
                    latencies.append(time.perf_counter() - started)
                    if not statuses or statuses[-1] != status:
                        statuses.append(status)
                except Exception as exc:  # noqa: BLE001 - every failure is reported below
                    errors.append(repr(exc))
                stop.wait(TICK_SECONDS / 4)   # four times the page's cadence: a harder load than ten tabs

        threads = [threading.Thread(target=watch, args=(c, s), daemon=True) for c, s in zip(clients, seen)]
        for thread in threads:
            thread.start()
        run = start_training(TrainConfig(data=str(small_dataset), backbone="mobilenetv2_100", freeze="6",
                                         epochs=3, patience=0), runner=runner)
        run.wait()
        deadline = time.monotonic() + 60   # until every watcher has polled once more after the end
        while time.monotonic() < deadline and not all(s and s[-1].startswith("**Finished") for s in seen):
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        demo.close()

    snapshot = run.snapshot()
    assert snapshot["status"] == "finished" and len(snapshot["history"]) == 3, snapshot["error"]
    assert not errors, errors[:3]
    for statuses in seen:
        assert any("Epoch" in s for s in statuses), statuses        # saw it training
        assert statuses[-1].startswith("**Finished"), statuses[-1]   # and saw it end
    ordered = sorted(latencies)
    print(f"\n{WATCHERS} sessions, {len(latencies)} polls: p50 {statistics.median(ordered):.3f} s, "
          f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:.3f} s")
