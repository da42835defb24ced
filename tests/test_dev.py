"""`algorail dev`: the whole reviews example (fan-out, an exec join, conditional routing)
as one process tree; a sync call gets its results; SIGTERM or SIGKILL leaves no process
behind; its state lives in a locked work folder whose write-ahead log is replayed on the
next start; a component that fails at start ends it (or, with --keep-going, is reported);
a folder named `algorail` where it runs shadows nothing."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES

from algorail.runtime.broker import EmbeddedBroker, free_port

BROKEN = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: t, name: broken, version: 1.0.0}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  algos:
    - {name: up, runtime: python, entrypoint: "no_such_module_xyz:upper",
       inputs: [{name: text}], outputs: [{name: result}]}
  hooks: [{name: result, type: response}]
  pipes:
    - {from: api.in, to: up.text}
    - {from: up.result, to: result}
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie is as good as gone
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def child_pids(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"pid (\d+)", output)]


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The PIDs still alive after waiting up to `seconds` for them to end."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


class Dev:
    """`algorail dev ARGS` in a subprocess (own session), output collected line by line."""

    def __init__(self, *args: str, work_dir: Path, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.work_dir = work_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "algorail.cli", "dev", *args, "--port", str(self.port),
             "--work-dir", str(work_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            cwd=cwd, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(
            target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True)
        self.reader.start()
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, prefix: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while not any(x.startswith(prefix) for x in self.seen):
            assert time.monotonic() < deadline, "".join(self.seen)
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.seen)
        return "".join(self.seen)

    def wait_ready(self, timeout: float = 90) -> str:
        return self.wait_for("ready:", timeout)

    def exit(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for dev mode to end by itself."""
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code, "".join(self.seen) + "".join(self.lines.queue)

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.exit(30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_dev_runs_the_reviews_pipeline_and_stops_cleanly(tmp_path):
    dev = Dev(str(EXAMPLES / "reviews.yaml"), work_dir=tmp_path / "work")
    port = dev.port
    try:
        output = dev.wait_ready()
        assert "ready: alice/reviews:1.2.0" in output, output
        assert f"work folder: {tmp_path / 'work'}\n" in output
        assert f"POST http://127.0.0.1:{port}/alice/reviews/review" in output
        for algo in ("upper", "count", "router", "combine"):
            assert f"algo {algo}: running" in output
        pids = child_pids(output)
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
    assert not gone_within(pids, 5), "orphaned processes"


def test_dev_against_an_existing_broker_starts_none(module_broker, tmp_path):
    dev = Dev(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers",
              module_broker.bootstrap_servers, work_dir=tmp_path / "work")
    try:
        output = dev.wait_ready()
        assert f"broker: {module_broker.bootstrap_servers}\n" in output
        assert "embedded" not in output
        reply = httpx.post(f"{dev.url}/alice/hello/in?sync=true", json={"text": "hi"},
                           timeout=30).json()
        assert reply["results"]["result"] == {"text": "HI"}
    finally:
        code, rest = dev.stop()
    assert code == 0 and "broker: stopped" not in rest


def test_a_work_folder_is_held_by_one_process_at_a_time(tmp_path):
    from algorail.runtime.dev import DevError, WorkFolder

    held = WorkFolder(tmp_path / "work").lock()
    with pytest.raises(DevError, match=re.escape(
            f"work folder {tmp_path / 'work'} is in use by algorail dev (pid {os.getpid()})")):
        WorkFolder(tmp_path / "work").lock()
    held.release()
    WorkFolder(tmp_path / "work").lock().release()
    (tmp_path / "file").write_text("")
    with pytest.raises(DevError, match="cannot use work folder .*: Not a directory"):
        WorkFolder(tmp_path / "file" / "work").lock()


@pytest.mark.slow
def test_a_work_folder_is_locked_and_no_temporary_folder_is_left(tmp_path):
    """A second dev mode on the same work folder fails at once with one line naming the
    folder and the PID holding it; a run leaves nothing in the temporary directory."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    work = tmp_path / "work"
    dev = Dev(str(EXAMPLES / "hello.yaml"), work_dir=work, env=env)
    try:
        dev.wait_ready()
        second = subprocess.run(
            [sys.executable, "-m", "algorail.cli", "dev", str(EXAMPLES / "hello.yaml"),
             "--port", str(free_port()), "--work-dir", str(work)],
            capture_output=True, text=True, timeout=30)
    finally:
        code, _ = dev.stop()
    assert code == 0
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"Error: work folder {work} is in use by algorail dev (pid {dev.proc.pid}); stop it, "
        "or pass another --work-dir"), second.stderr
    assert "broker:" not in second.stdout  # refused before starting anything
    assert (work / "wal").is_dir() and (work / "plan.json").is_file()
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_kill_9_of_dev_leaves_no_child_alive(tmp_path):
    """Four trials: SIGKILL dev mode; within a few seconds its broker and runners are gone."""
    for trial in range(4):
        dev = Dev(str(EXAMPLES / "hello.yaml"), work_dir=tmp_path / f"work{trial}")
        try:
            pids = child_pids(dev.wait_ready())
            assert len(pids) == 2  # the broker and one runner
        finally:
            dev.kill()
        assert not gone_within(pids, 5), f"orphaned processes after SIGKILL (trial {trial})"


@pytest.mark.slow
def test_accepted_requests_survive_a_broker_outage_and_kill_9_of_dev(tmp_path):
    """The broker goes down, dev mode answers 202 (write-ahead log), is killed with
    SIGKILL, and is started again on the same work folder with the broker back: every
    accepted request reaches the pipeline exactly once."""
    from algorail.runtime import kafka_io

    work = tmp_path / "work"
    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    dev = Dev(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers", broker.bootstrap_servers,
              work_dir=work)
    try:
        pids = child_pids(dev.wait_ready())
        broker.stop()  # the outage
        accepted = []
        with httpx.Client(timeout=10) as client:
            for n in range(300):
                reply = client.post(f"{dev.url}/alice/hello/in", json={"text": f"t{n}"})
                assert reply.status_code == 202, reply.text
                accepted.append(reply.json()["runId"])
    finally:
        dev.kill()
    assert not gone_within(pids, 5), "orphaned runner after SIGKILL"
    broker = EmbeddedBroker(port=port).start()  # the broker is back (empty)
    dev = Dev(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers", broker.bootstrap_servers,
              work_dir=work)
    try:
        dev.wait_ready()
        deadline = time.monotonic() + 60
        results = {}
        while len(results) < len(accepted) and time.monotonic() < deadline:
            for record in kafka_io.records_since(broker.bootstrap_servers,
                                                 ["alice.hello.upper.result"], 0):
                results.setdefault(kafka_io.header_dict(record.headers)["algorail-run-id"],
                                   []).append(record.value)
            if len(results) < len(accepted):
                results.clear()
                time.sleep(1)
        entered = [kafka_io.header_dict(r.headers)["algorail-run-id"]
                   for r in kafka_io.records_since(broker.bootstrap_servers,
                                                   ["alice.hello.in"], 0)]
    finally:
        dev.stop()
        broker.stop()
    assert sorted(entered) == sorted(accepted)  # each accepted request entered once
    assert sorted(results) == sorted(accepted)  # and the algo answered each of them
    assert all(len(values) == 1 for values in results.values())


@pytest.mark.slow
def test_a_runner_that_cannot_start_ends_dev_mode_with_its_error(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    dev = Dev(str(tmp_path / "broken.yaml"), work_dir=tmp_path / "work")
    try:
        code, output = dev.exit()
    finally:
        dev.kill() if dev.proc.poll() is None else None
    assert code == 1, output
    assert output.rstrip().endswith(
        "Error: algo up failed: cannot import 'no_such_module_xyz' next to the pipeline "
        f"({tmp_path}) or on sys.path: No module named 'no_such_module_xyz'; check the "
        "algo's entrypoint"), output
    assert "Traceback" not in output
    assert "ready:" not in output
    assert not gone_within(child_pids(output), 5)


@pytest.mark.slow
def test_keep_going_marks_the_failed_component_and_healthz_answers_503(tmp_path):
    (tmp_path / "broken.yaml").write_text(BROKEN)
    dev = Dev(str(tmp_path / "broken.yaml"), "--keep-going", work_dir=tmp_path / "work")
    try:
        output = dev.wait_ready()
        assert "ready: t/broken:1.0.0 — failed: algo up — Ctrl-C to stop" in output, output
        health = httpx.get(f"{dev.url}/healthz", timeout=5)
        assert health.status_code == 503
        assert list(health.json()["failed"]) == ["algo up"]
        assert "no_such_module_xyz" in health.json()["failed"]["algo up"]
    finally:
        code, _ = dev.stop()
    assert code == 0


@pytest.mark.slow
def test_a_folder_named_algorail_where_dev_runs_shadows_nothing(tmp_path):
    """Children do not put the current folder ahead of the installed algorail; the
    pipeline's own folder stays importable for its python algos (and their neighbours)."""
    shadow = tmp_path / "algorail"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('the wrong algorail')\n")
    (tmp_path / "helper_words.py").write_text("def shout(text):\n    return text.upper()\n")
    (tmp_path / "hello_algos.py").write_text(
        "from helper_words import shout\n\n\n"
        "def upper(p):\n    return {'text': shout(p['text'])}\n")
    shutil.copy(EXAMPLES / "hello.yaml", tmp_path / "hello.yaml")
    dev = Dev("hello.yaml", work_dir=tmp_path / "work", cwd=tmp_path)
    try:
        dev.wait_ready()
        reply = httpx.post(f"{dev.url}/alice/hello/in?sync=true", json={"text": "hi"},
                           timeout=30).json()
        assert reply["results"]["result"] == {"text": "HI"}
    finally:
        code, output = dev.stop()
    assert code == 0, output
