"""`algorail dev`: the whole reviews example (fan-out, an exec join, conditional routing)
as one process tree; a sync call gets its results; SIGTERM or SIGKILL leaves no process
behind; its state lives in a locked work folder whose write-ahead log is replayed on the
next start; a component that fails at start ends it (or, with --keep-going, is reported);
a folder named `algorail` where it runs shadows nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES

from algorail.runtime.broker import EmbeddedBroker, free_port
from algorail.runtime.testing import DevProcess


def broken(folder: Path) -> Path:
    """hello.yaml, in `folder`, with a module for its algo that does not exist."""
    path = folder / "broken.yaml"
    hello = (EXAMPLES / "hello.yaml").read_text(encoding="utf-8")
    path.write_text(hello.replace("hello_algos:upper", "no_such_module_xyz:upper"))
    return path


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


def test_dev_runs_the_reviews_pipeline_and_stops_cleanly(tmp_path):
    dev = DevProcess(str(EXAMPLES / "reviews.yaml"), work_dir=tmp_path / "work")
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
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers",
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


@pytest.mark.slow
def test_dev_serves_the_v2_grpc_service_with_grpc_port(module_broker, tmp_path):
    """A Seldon manifest in dev mode, its steps bound to the stub models: tritonclient's
    gRPC client checks health and runs it, INT32 [1, 4] in and out."""
    grpcclient = pytest.importorskip("tritonclient.grpc")
    import numpy as np

    grpc_port = free_port()
    seldon = EXAMPLES / "seldon"
    dev = DevProcess(str(seldon / "tfsimple.yaml"), "--bindings",
                     str(seldon / "bindings.yaml"), "--grpc-port", str(grpc_port),
                     "--bootstrap-servers", module_broker.bootstrap_servers,
                     work_dir=tmp_path / "work")
    try:
        assert f"gRPC 127.0.0.1:{grpc_port}  (V2 inference service)" in dev.wait_ready()
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready() and client.is_model_ready("tfsimple.pipeline")
        a = np.arange(4, dtype=np.int32).reshape(1, 4)
        inputs = []
        for name, value in (("INPUT0", a), ("INPUT1", np.ones((1, 4), dtype=np.int32))):
            inputs.append(grpcclient.InferInput(name, [1, 4], "INT32"))
            inputs[-1].set_data_from_numpy(value)
        result = client.infer("tfsimple.pipeline", inputs, request_id="dev-1", timeout=30)
        assert result.get_response().id == "dev-1"
        out0 = result.as_numpy("OUTPUT0")
        assert out0.dtype == np.int32 and out0.shape == (1, 4) and (out0 == a + 1).all()
        assert (result.as_numpy("OUTPUT1") == a - 1).all()
    finally:
        code, _ = dev.stop()
    assert code == 0


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
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), work_dir=work, env=env)
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
        dev = DevProcess(str(EXAMPLES / "hello.yaml"), work_dir=tmp_path / f"work{trial}")
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
    from algorail.runtime import codec, kafka_io

    work = tmp_path / "work"
    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers",
                     broker.bootstrap_servers, work_dir=work)
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
    dev = DevProcess(str(EXAMPLES / "hello.yaml"), "--bootstrap-servers",
                     broker.bootstrap_servers, work_dir=work)
    try:
        dev.wait_ready()
        deadline = time.monotonic() + 60
        results = {}
        while len(results) < len(accepted) and time.monotonic() < deadline:
            for record in kafka_io.records_since(broker.bootstrap_servers,
                                                 ["alice.hello.upper.result"], 0):
                results.setdefault(codec.header_dict(record.headers)["algorail-run-id"],
                                   []).append(record.value)
            if len(results) < len(accepted):
                results.clear()
                time.sleep(1)
        entered = [codec.header_dict(r.headers)["algorail-run-id"]
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
    dev = DevProcess(str(broken(tmp_path)), work_dir=tmp_path / "work")
    try:
        code, output = dev.exit()
    finally:
        dev.kill() if dev.proc.poll() is None else None
    assert code == 1, output
    assert output.rstrip().endswith(
        "Error: algo upper failed: cannot import 'no_such_module_xyz' next to the pipeline "
        f"({tmp_path}) or on sys.path: No module named 'no_such_module_xyz'; check the "
        "algo's entrypoint"), output
    assert "Traceback" not in output
    assert "ready:" not in output
    assert not gone_within(child_pids(output), 5)


@pytest.mark.slow
def test_keep_going_marks_the_failed_component_and_healthz_answers_503(tmp_path):
    dev = DevProcess(str(broken(tmp_path)), "--keep-going", work_dir=tmp_path / "work")
    try:
        output = dev.wait_ready()
        assert "ready: alice/hello:1.0.0 — failed: algo upper — Ctrl-C to stop" in output, output
        health = httpx.get(f"{dev.url}/healthz", timeout=5)
        assert health.status_code == 503
        assert list(health.json()["failed"]) == ["algo upper"]
        assert "no_such_module_xyz" in health.json()["failed"]["algo upper"]
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
    dev = DevProcess("hello.yaml", work_dir=tmp_path / "work", cwd=tmp_path)
    try:
        dev.wait_ready()
        reply = httpx.post(f"{dev.url}/alice/hello/in?sync=true", json={"text": "hi"},
                           timeout=30).json()
        assert reply["results"]["result"] == {"text": "HI"}
    finally:
        code, output = dev.stop()
    assert code == 0, output


def test_dev_mode_says_once_when_a_partition_of_the_embedded_broker_fills(broker):
    from algorail.runtime import kafka_io
    from algorail.runtime.dev import FillWatch

    bs = broker.bootstrap_servers
    kafka_io.ensure_topics(bs, ["fill.full", "fill.light"])
    producer = kafka_io.make_producer(bs)
    for n in range(30):
        producer.send("fill.full", value=b"x", key=str(n).encode(), headers=[])
    producer.send("fill.light", value=b"x", key=b"1", headers=[])
    producer.flush()
    watch = FillWatch(bs, ["fill.full", "fill.light", "fill.absent"], limit=25)
    warning = watch.check()
    assert warning.startswith("broker: records held per partition: fill.full[0] 30; the "
                              "embedded broker slows as a partition fills"), warning
    assert "restart `algorail dev`" in warning and "fill.light" not in warning
    assert watch.check() is None  # once
    producer.close()
