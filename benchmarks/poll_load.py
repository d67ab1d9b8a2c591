"""Ten people watching one training: poll latency and what the watching costs the training.

Launches the studio, trains the same run twice through the page's API (the example data,
top layer group fine-tuned, fixed seed): once with nobody watching, once while N sessions
poll the live view as often as the page does (its timer calls /watch_training; the charts refresh on change).
Prints the 50th/95th percentile poll latency and the training-time ratio (watched / unwatched), and one JSON line.
    python benchmarks/poll_load.py [--sessions 10] [--epochs 3] [--nice]

The watchers share this machine's cores with the server; real browsers run elsewhere. The
report therefore also gives the CPU seconds the watchers themselves used, and `--nice` runs
them at the lowest priority, so that what is left of the slowdown is the server's own work.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from components.train_step import TICK_SECONDS as TICK  # noqa: E402  the page's own cadence


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_once(url: str, runner, epochs: int) -> float:
    """Start a run through the page's API and return its training seconds (from its own status)."""
    from gradio_client import Client
    client = Client(url, verbose=False)
    client.predict(api_name="/use_example")
    client.predict("mobilenetv2_100", "manual", 7, epochs, "Auto", 32, [], api_name="/start_training")
    run = runner.current
    run.wait()
    snapshot = run.snapshot()
    assert snapshot["status"] == "finished", snapshot["error"]
    return snapshot["finished"] - snapshot["started"]


def watcher(url: str, stop: threading.Event, latencies: list, errors: list) -> None:
    """One page's timer: ask for /watch_training every tick over Gradio's plain HTTP API (two small
    requests), in one session as a browser tab is. Without a session id every call is a new
    session, and Gradio builds a session's state for the whole page first: about 40 ms of server
    CPU per call on these cores, against about 1 ms within a session (measured with py-spy)."""
    import uuid

    import httpx
    session = uuid.uuid4().hex
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                event = http.post("gradio_api/call/watch_training",
                                  json={"data": [], "session_hash": session}).json()["event_id"]
                answer = http.get(f"gradio_api/call/watch_training/{event}").text
                if "event: complete" not in answer:
                    raise RuntimeError(answer[-200:])
                latencies.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc))
            stop.wait(max(0.0, TICK - (time.perf_counter() - started)))


def watch(url: str, sessions: int) -> int:
    """The watchers' process: poll until interrupted, then print the latencies as JSON."""
    stop, latencies, errors = threading.Event(), [], []
    threads = [threading.Thread(target=watcher, args=(url, stop, latencies, errors), daemon=True)
               for _ in range(sessions)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    cpu_at_start = time.process_time()
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join(10)
    print(json.dumps({"latencies": latencies, "errors": errors,
                      "watcher_cpu_seconds": round(time.process_time() - cpu_at_start, 2)}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tick", type=float, default=TICK,
                        help=f"seconds between polls (default: the page's {TICK:g})")
    parser.add_argument("--nice", action="store_true",
                        help="run the watchers at the lowest CPU priority (closer to browsers on other machines)")
    parser.add_argument("--watch", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    globals()["TICK"] = args.tick
    if args.watch:
        return watch(args.watch, args.sessions)
    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-load-"))
    from components.app import launch
    from studio.runs import JobRunner
    runner = JobRunner()
    demo, url = launch(port=free_port(), block=False, runner=runner)
    try:
        train_once(url, runner, 1)  # warm-up: weights converted, kernels ready
        cpu = time.process_time()
        alone = train_once(url, runner, args.epochs)
        server_cpu_alone = time.process_time() - cpu
        # the watchers run in their own process, as browsers would: their work must not count as the server's
        watchers = subprocess.Popen([sys.executable, __file__, "--watch", url, "--sessions", str(args.sessions),
                                     "--tick", str(args.tick)],
                                    stdout=subprocess.PIPE, text=True,
                                    preexec_fn=(lambda: os.nice(19)) if args.nice else None)
        assert watchers.stdout.readline().strip() == "ready"  # imports done: only polling from here on
        time.sleep(3)
        cpu = time.process_time()
        watched = train_once(url, runner, args.epochs)
        server_cpu_watched = time.process_time() - cpu
        watchers.send_signal(signal.SIGINT)
        result = json.loads(watchers.communicate(timeout=60)[0].strip().splitlines()[-1])
        latencies, errors = result["latencies"], result["errors"]
    finally:
        demo.close()
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))] if ordered else None
    report = {"sessions": args.sessions, "polls": len(latencies), "errors": len(errors),
              "poll_p50_s": round(statistics.median(ordered), 4) if ordered else None,
              "poll_p95_s": round(p95, 4) if p95 is not None else None,
              "train_seconds_alone": round(alone, 2), "train_seconds_watched": round(watched, 2),
              "watched_vs_alone": round(watched / alone, 3), "cores": os.cpu_count(), "tick_s": args.tick,
              "watchers_niced": args.nice, "watcher_cpu_seconds": result.get("watcher_cpu_seconds"),
              "server_cpu_seconds_alone": round(server_cpu_alone, 2),
              "server_cpu_seconds_watched": round(server_cpu_watched, 2)}
    print(f"{args.sessions} sessions polling every {TICK:g} s: {len(latencies)} polls, {len(errors)} errors, "
          f"p50 {report['poll_p50_s']} s, p95 {report['poll_p95_s']} s; training {alone:.1f} s alone, "
          f"{watched:.1f} s watched (x{report['watched_vs_alone']}); CPU seconds: server {server_cpu_alone:.1f} "
          f"alone, {server_cpu_watched:.1f} watched; watchers {report['watcher_cpu_seconds']} "
          f"(whole run, incl. the 3 s before it){' at nice 19' if args.nice else ''}")
    print(json.dumps(report))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
