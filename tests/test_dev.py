"""`algorail dev`: the whole reviews example (fan-out, an exec join, conditional routing)
as one process tree; a sync call gets its results; SIGTERM leaves no process behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
from conftest import EXAMPLES

from algorail.runtime.broker import free_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is as good as gone
        return f.read().split()[2] != "Z"


class Dev:
    """`algorail dev ARGS` in a subprocess, its output collected line by line."""

    def __init__(self, *args: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "algorail.cli", "dev", *args, "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(
            target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True)
        self.reader.start()
        self.seen: list[str] = []

    def wait_ready(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while not any(x.startswith("ready:") for x in self.seen) and time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
        return "".join(self.seen)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.reader.join(5)
        return code, "".join(self.seen) + "".join(self.lines.queue)


def test_dev_runs_the_reviews_pipeline_and_stops_cleanly():
    dev = Dev(str(EXAMPLES / "reviews.yaml"))
    port = dev.port
    try:
        output = dev.wait_ready()
        assert "ready: alice/reviews:1.2.0" in output, output
        assert f"POST http://127.0.0.1:{port}/alice/reviews/review" in output
        for algo in ("upper", "count", "router", "combine"):
            assert f"algo {algo}: running" in output
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        assert len(pids) == 5  # the broker and four runners

        url = f"http://127.0.0.1:{port}/alice/reviews/review?sync=true"
        short = httpx.post(url, json={"text": "good stuff"}, timeout=30).json()
        assert short["results"]["summary"] == {"text": "GOOD STUFF", "words": 2}
        assert short["hooks"]["long-reviews"] == "skipped"
        long = httpx.post(url, json={"text": "a review that is long enough"}, timeout=30).json()
        assert long["hooks"] == {"summary": "delivered", "long-reviews": "delivered"}
    finally:
        code, rest = dev.stop()
    assert code == 0, rest
    assert "broker: stopped" in rest
    gone_by = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "orphaned processes"


def test_dev_against_an_existing_broker_starts_none(module_broker):
    dev = Dev(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers",
              module_broker.bootstrap_servers)
    try:
        output = dev.wait_ready()
        assert f"broker: {module_broker.bootstrap_servers}\n" in output
        assert "embedded" not in output
        url = f"http://127.0.0.1:{dev.port}/alice/hello/in?sync=true"
        reply = httpx.post(url, json={"text": "hi"}, timeout=30).json()
        assert reply["results"]["result"] == {"text": "HI"}
    finally:
        code, rest = dev.stop()
    assert code == 0 and "broker: stopped" not in rest


def test_a_killed_dev_mode_leaves_no_broker_or_runner_behind():
    dev = Dev(str(EXAMPLES / "hello.yaml"))
    output = dev.wait_ready()
    pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
    assert len(pids) == 2, output  # the broker and one runner
    dev.proc.kill()
    dev.proc.wait(10)
    gone_by = time.monotonic() + 30  # they get SIGTERM and shut down as usual
    while any(alive(p) for p in pids) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "orphaned processes after SIGKILL"
