"""Helpers for tests and benchmarks of runners: a plan from YAML text, runners in threads,
producing inputs and reading a topic back, `algorail dev` in a subprocess. Real broker,
no mocks."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from algorail.plan import Plan
from algorail.runtime import codec, kafka_io
from algorail.runtime.broker import free_port
from algorail.runtime.runner import Runner
from algorail.runtime.signals import die_with_parent


def plan_from_yaml(text: str, directory: Path, bootstrap_servers: str,
                   deployment: str | None = None, bindings: dict | None = None) -> Plan:
    """Write `text` to a pipeline file in `directory`, compile it and create its topics."""
    from algorail.compiler import compile_plan  # the runtime itself never compiles
    from algorail.loader import load_pipeline

    path = Path(directory) / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    plan = compile_plan(load_pipeline(path, bindings=bindings), deployment=deployment)
    kafka_io.ensure_topics(bootstrap_servers, plan.created_topics())
    return plan


class RunnerThread:
    """A `Runner` in a daemon thread; `stop()` waits for its final checkpoint."""

    def __init__(self, plan: Plan, component: str, bootstrap_servers: str, **kwargs: Any):
        self.runner = Runner(plan, component, bootstrap_servers, **kwargs)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"runner-{component}")

    def _run(self) -> None:
        try:
            self.runner.run()
        except BaseException as exc:  # reported to the test by stop()
            self.error = exc

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self.runner.ready.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        self.runner.stop()
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error


def start_runners(plan: Plan, bootstrap_servers: str, components: Iterable[str] | None = None,
                  timeout: float = 30.0, **kwargs: Any) -> list[RunnerThread]:
    names = list(components) if components is not None else [r.component for r in plan.runners]
    threads = [RunnerThread(plan, name, bootstrap_servers, **kwargs).start() for name in names]
    for t in threads:
        if not t.wait_ready(timeout):
            raise TimeoutError(f"runner {t.runner.spec.component} did not get its partitions")
    return threads


def produce(bootstrap_servers: str, topic: str, items: Iterable[tuple[str, Any]],
            deployment: str = "", source: str = "test.in", skip: bool = False,
            producer: Any = None) -> int:
    """Send (run id, JSON payload) pairs with algorail headers; returns how many."""
    own = producer is None
    producer = producer or kafka_io.make_producer(bootstrap_servers)
    count = 0
    for run_id, payload in items:
        headers = codec.Envelope(run_id, deployment, source, skip=skip).to_headers()
        value = b"" if skip else json.dumps(payload).encode()
        producer.send(topic, value=value, key=run_id.encode(), headers=headers)
        count += 1
    producer.flush()
    if own:
        producer.close()
    return count


class TopicReader:
    """Reads a topic from the beginning, without a consumer group."""

    def __init__(self, bootstrap_servers: str, topic: str):
        self.consumer = kafka_io.make_consumer(bootstrap_servers)
        self.tps = kafka_io.partitions_of(self.consumer, [topic])
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning()
        self.records: list[Any] = []

    def read(self, count: int = 0, timeout: float = 20.0, settle: float = 0.0) -> list[Any]:
        """Read until `count` records in total (then `settle` seconds more), or timeout."""
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            for records in self.consumer.poll(timeout_ms=100).values():
                self.records.extend(records)
            if len(self.records) >= count:
                if settle_until is None:
                    settle_until = time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
        return self.records

    def close(self) -> None:
        kafka_io.close_consumer(self.consumer)


def read_topic(bootstrap_servers: str, topic: str, count: int = 0, timeout: float = 20.0,
               settle: float = 0.0) -> list[dict[str, Any]]:
    """Records as dicts: run_id, skip, value (decoded JSON, raw bytes or None), headers."""
    reader = TopicReader(bootstrap_servers, topic)
    try:
        return [as_dict(r) for r in reader.read(count, timeout, settle)]
    finally:
        reader.close()


def as_dict(record: Any) -> dict[str, Any]:
    headers = codec.header_dict(record.headers)
    try:
        value = codec.decode(record.value or None, headers.get(codec.CONTENT_TYPE, codec.JSON))
    except codec.CodecError:
        value = record.value  # not JSON (e.g. a poison message in a dead-letter topic)
    return {"run_id": headers.get(codec.RUN_ID), "skip": headers.get(codec.SKIP) == "1",
            "value": value, "headers": headers, "offset": record.offset}


class DevProcess:
    """`algorail dev ARGS` in a subprocess (own session, ended with the process that
    started it, so an interrupted benchmark leaves no dev behind), output collected line by
    line."""

    def __init__(self, *args: str, work_dir: Path, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.work_dir = work_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "algorail.cli", "dev", *args, "--port", str(self.port),
             "--work-dir", str(work_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, preexec_fn=die_with_parent(), cwd=cwd, env=env)
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
            if time.monotonic() > deadline:
                raise AssertionError(f"no {prefix!r} line in time:\n{''.join(self.seen)}")
            try:
                self.seen.append(self.lines.get(timeout=1))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"algorail dev ended:\n{''.join(self.seen)}") from None
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
