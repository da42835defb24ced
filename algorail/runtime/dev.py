"""`algorail dev`: a whole pipeline on one machine, as one process tree.

An embedded broker (unless bootstrap servers are given), the plan's topics, one
`algorail runner` process per algo and one `algorail connect` process per data source
or sink, and the gateway with the hook dispatcher in this process. Every child is
stopped by PID on Ctrl-C or SIGTERM; on Linux children also get SIGTERM if this process
dies, so nothing is orphaned.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algorail.plan import Plan
from algorail.runtime.broker import death_signal_preexec, free_port

READY = re.compile(r"(?<!not )\bready\b")  # what a child prints once it serves
READY_WORD = "ready"  # dev mode's own line once every component runs: "ready: ..."
STOP_TIMEOUT = 5.0


@dataclass
class Child:
    name: str
    kind: str
    args: list[str]
    process: subprocess.Popen | None = None
    state: str = "starting"
    lines: list[str] = field(default_factory=list)
    metrics_url: str | None = None


class DevSupervisor:
    """Starts and watches the processes of one pipeline; `stop()` ends them all."""

    def __init__(self, plan: Plan, *, bootstrap_servers: str | None = None,
                 host: str = "127.0.0.1", port: int = 8080, workdir: str | None = None,
                 echo: Callable[[str], None] = print):
        self.plan = plan
        self.bootstrap_servers = bootstrap_servers
        self.host, self.port = host, port
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="algorail-dev-"))
        self.echo = echo
        self.broker: Any = None
        self.children: list[Child] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._preexec = death_signal_preexec()

    @property
    def plan_path(self) -> Path:
        return self.workdir / "plan.json"

    @property
    def object_store_dir(self) -> Path:
        return self.workdir / "objects"

    def start(self) -> DevSupervisor:
        from algorail.runtime import kafka_io
        from algorail.runtime.broker import EmbeddedBroker

        if self.bootstrap_servers is None:
            self.broker = EmbeddedBroker(log_path=str(self.workdir / "broker.log")).start()
            self.bootstrap_servers = self.broker.bootstrap_servers
            self.echo(f"broker: {self.bootstrap_servers} (embedded, pid {self.broker.process.pid})")
        else:
            self.echo(f"broker: {self.bootstrap_servers}")
        created = kafka_io.ensure_topics(self.bootstrap_servers, self.plan.created_topics())
        self.echo(f"topics: {len(self.plan.created_topics())} ({len(created)} created)")
        self.plan_path.write_text(self.plan.to_json(), encoding="utf-8")
        self.object_store_dir.mkdir(parents=True, exist_ok=True)
        for runner in self.plan.runners:
            port = free_port()
            self._spawn(Child(runner.component, "algo", ["runner", "--component",
                                                         runner.component, "--metrics-port",
                                                         str(port)],
                              metrics_url=f"http://127.0.0.1:{port}/metrics"))
        for connector in self.plan.connectors:
            self._spawn(Child(connector.name, f"data {connector.kind}",
                              ["connect", "--component", connector.name]))
        threading.Thread(target=self._watch, daemon=True, name="algorail-dev-watch").start()
        return self

    def _spawn(self, child: Child) -> None:
        command = [sys.executable, "-m", "algorail.cli", *child.args, "--plan",
                   str(self.plan_path), "--bootstrap-servers", self.bootstrap_servers]
        env = {**os.environ, "ALGORAIL_OBJECT_STORE_URL": f"file://{self.object_store_dir}",
               "PYTHONUNBUFFERED": "1"}
        child.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, preexec_fn=self._preexec)
        self.children.append(child)
        self._state(child, f"starting (pid {child.process.pid})")
        threading.Thread(target=self._read, args=(child,), daemon=True,
                         name=f"algorail-dev-{child.name}").start()

    def _read(self, child: Child) -> None:
        for raw in child.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            child.lines = [*child.lines[-50:], line]
            if child.state.startswith("starting") and READY.search(line):
                self._state(child, "running")
            else:
                self.echo(f"  {child.name} | {line}")

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            for child in self.children:
                code = child.process.poll()
                if code is not None and not child.state.startswith("exited"):
                    self._state(child, f"exited with status {code}")

    def _state(self, child: Child, state: str) -> None:
        with self._lock:
            child.state = state
            self.echo(f"{child.kind} {child.name}: {state}")

    def ready(self) -> bool:
        return all(c.state == "running" or c.state == "exited with status 0"
                   for c in self.children)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if self.ready():
                return True
            time.sleep(0.1)
        return self.ready()

    def urls(self) -> list[str]:
        base = f"http://{self.host}:{self.port}"
        return [f"POST {base}{r.url}" for r in self.plan.routes] + [f"GET  {base}/metrics"]

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL what is left after a grace period, then the broker."""
        self.stopping.set()
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in running:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            self.echo(f"{child.kind} {child.name}: stopped")
        if self.broker is not None:
            self.broker.stop()
            self.echo("broker: stopped")


def run_dev(plan: Plan, *, bootstrap_servers: str | None, host: str, port: int,
            echo: Callable[[str], None] = print, ready_timeout: float = 60.0) -> None:
    """Run the pipeline until Ctrl-C or SIGTERM (what `algorail dev` does)."""
    from algorail.ops.devview import component_table

    supervisor = DevSupervisor(plan, bootstrap_servers=bootstrap_servers, host=host, port=port,
                               echo=echo)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        supervisor.start()

        def announce() -> None:
            from algorail.runtime.broker import wait_for_port

            if supervisor.wait_ready(ready_timeout) and wait_for_port(host, port, ready_timeout):
                for url in supervisor.urls():
                    echo(url)
                echo(component_table(plan, supervisor.children, f"http://{host}:{port}"))
                echo(f"{READY_WORD}: {plan.owner}/{plan.pipeline}:{plan.version} — Ctrl-C to stop")
            elif not supervisor.stopping.is_set():
                late = [c.name for c in supervisor.children if c.state != "running"]
                echo(f"not ready after {ready_timeout:.0f}s: {', '.join(late)}")

        threading.Thread(target=announce, daemon=True, name="algorail-dev-ready").start()
        _serve_gateway(supervisor)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        supervisor.stop()


def _serve_gateway(supervisor: DevSupervisor) -> None:
    """The gateway and hook dispatcher, in this process, until interrupted."""
    from algorail.ops.devview import ChildMetrics
    from algorail.runtime import gateway
    from algorail.runtime.objectstore import LocalObjectStore
    from algorail.runtime.results import MemoryResultsStore

    children = ChildMetrics(lambda: [c.metrics_url for c in supervisor.children
                                     if c.metrics_url])
    gateway.serve(supervisor.plan, bootstrap_servers=supervisor.bootstrap_servers,
                  host=supervisor.host, port=supervisor.port, results=MemoryResultsStore(),
                  object_store=LocalObjectStore(supervisor.object_store_dir), dev=True,
                  wal_dir=supervisor.workdir / "wal", metrics=(children,))
