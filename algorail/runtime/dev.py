"""`algorail dev`: a whole pipeline on one machine, as one process tree.

An embedded broker (unless bootstrap servers are given), the plan's topics, one
`algorail runner` process per algo and one `algorail connect` process per data source
or sink, and the gateway with the hook dispatcher in this process.

State lives in one work folder per deployment (`default_work_dir`, or `--work-dir`): the
plan, the object store, the broker's log and the gateway's write-ahead log, so requests
answered 202 but not yet taken by the broker are sent on the next start. A lock in the
folder keeps a second `algorail dev` out of it.

Children run in their own session (Ctrl-C reaches dev mode only, which stops them in
order), with ``python -P`` (the current folder never shadows the installed algorail),
and die with this process even under SIGKILL (`signals.die_with_parent`). A child that
exits with an error ends dev mode with that error, or with ``--keep-going`` is reported
as failed in the ready line and on ``/healthz`` (503).
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from algorail.errors import AlgorailError
from algorail.plan import Plan
from algorail.runtime.broker import FILL_WARNING_RECORDS, free_port
from algorail.runtime.signals import die_with_parent

READY = re.compile(r"(?<!not )\bready\b")  # what a child prints once it serves
READY_WORD = "ready"  # dev mode's own line once every component runs: "ready: ..."
STOP_TIMEOUT = 5.0
FILL_CHECK_SECONDS = 15.0
LOCK_FILE = "dev.lock"


class DevError(AlgorailError):
    """Dev mode cannot start, or a component of the pipeline failed."""


def default_work_dir(plan: Plan) -> Path:
    """The deployment's work folder under the user's state directory (platformdirs)."""
    from platformdirs import user_state_dir

    return Path(user_state_dir("algorail")) / "dev" / plan.owner / plan.deployment


class WorkFolder:
    """A deployment's work folder, held with an exclusive lock (``flock``) while dev mode
    runs. The lock file holds the owner's PID; the kernel releases the lock when that
    process ends, however it ends, so a crash never leaves the folder locked."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self._fd: int | None = None

    def lock(self) -> WorkFolder:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DevError(f"cannot use work folder {self.path}: {exc.strerror}; pass another "
                           "--work-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DevError(f"work folder {self.path} is in use by algorail dev (pid {holder}); "
                           "stop it, or pass another --work-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the lock


@dataclass
class Child:
    name: str
    kind: str
    args: list[str]
    process: subprocess.Popen | None = None
    state: str = "starting"
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    metrics_url: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def failed(self) -> bool:
        return self.state.startswith("failed")

    def error(self) -> str:
        """The child's last line of output: its one-line error, by convention."""
        said = [line.strip() for line in self.lines if line.strip()]
        return said[-1].removeprefix("Error: ") if said else "no output"


class FillWatch:
    """Says when a partition of the embedded broker passes `limit` records, once each:
    the broker slows as a partition fills and then stops serving it
    (`broker.FILL_WARNING_RECORDS`), and a user should hear that before it happens."""

    def __init__(self, bootstrap_servers: str, topics: list[str],
                 limit: int = FILL_WARNING_RECORDS):
        self.bootstrap_servers, self.topics, self.limit = bootstrap_servers, topics, limit
        self.warned: set[Any] = set()

    def check(self) -> str | None:
        """The warning for the partitions that passed the limit since the last check."""
        from algorail.ops.records import high_watermarks, open_reader
        from algorail.runtime import kafka_io

        reader = open_reader(self.bootstrap_servers)
        try:
            tps = kafka_io.partitions_of(reader, self.topics)
            ends = high_watermarks(reader, tps) if tps else {}
        finally:
            kafka_io.close_consumer(reader)
        full = sorted((tp for tp, end in ends.items()
                       if end >= self.limit and tp not in self.warned),
                      key=lambda tp: (tp.topic, tp.partition))
        if not full:
            return None
        self.warned.update(full)
        held = ", ".join(f"{tp.topic}[{tp.partition}] {ends[tp]:,}" for tp in full)
        return (f"broker: records held per partition: {held}; the embedded broker slows as "
                "a partition fills and stops serving it at about 20,000 one-record batches: "
                "restart `algorail dev` to empty it, or give --bootstrap-servers of a Kafka "
                "cluster")


class DevSupervisor:
    """Starts and watches the processes of one pipeline; `stop()` ends them all."""

    def __init__(self, plan: Plan, *, bootstrap_servers: str | None = None,
                 host: str = "127.0.0.1", port: int = 8080, grpc_port: int | None = None,
                 workdir: str | Path | None = None, keep_going: bool = False,
                 echo: Callable[[str], None] = print):
        self.plan = plan
        self.bootstrap_servers = bootstrap_servers
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self.work = WorkFolder(workdir or default_work_dir(plan))
        self.keep_going = keep_going
        self.echo = echo
        self.broker: Any = None
        self.children: list[Child] = []
        self.failure: DevError | None = None  # what ends dev mode (without --keep-going)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._preexec = die_with_parent()

    @property
    def workdir(self) -> Path:
        return self.work.path

    @property
    def plan_path(self) -> Path:
        return self.workdir / "plan.json"

    @property
    def object_store_dir(self) -> Path:
        return self.workdir / "objects"

    @property
    def wal_dir(self) -> Path:
        return self.workdir / "wal"

    def start(self) -> DevSupervisor:
        """Lock the work folder, start the broker, create the topics, spawn the children.
        Call it from the main thread: children die when the thread that forked them ends."""
        self.work.lock()
        self.echo(f"work folder: {self.workdir}")
        self._start_broker()
        self._create_topics()
        self.plan_path.write_text(self.plan.to_json(), encoding="utf-8")
        self.object_store_dir.mkdir(parents=True, exist_ok=True)
        for runner in self.plan.runners:
            port = free_port()
            self._spawn(Child(runner.component, "algo",
                              ["runner", "--component", runner.component,
                               "--metrics-port", str(port)],
                              metrics_url=f"http://127.0.0.1:{port}/metrics"))
        for connector in self.plan.connectors:
            self._spawn(Child(connector.name, f"data {connector.kind}",
                              ["connect", "--component", connector.name]))
        threading.Thread(target=self._watch, daemon=True, name="algorail-dev-watch").start()
        if self.broker is not None:
            threading.Thread(target=self._watch_fill, daemon=True,
                             name="algorail-dev-broker-fill").start()
        return self

    def _start_broker(self) -> None:
        from algorail.runtime.broker import EmbeddedBroker

        if self.bootstrap_servers is not None:
            self.echo(f"broker: {self.bootstrap_servers}")
            return
        log = self.workdir / "broker.log"
        log.unlink(missing_ok=True)  # this run's broker only: its storage is memory anyway
        self.broker = EmbeddedBroker(log_path=str(log)).start()
        self.bootstrap_servers = self.broker.bootstrap_servers
        self.echo(f"broker: {self.bootstrap_servers} (embedded, pid {self.broker.process.pid})")

    def _create_topics(self) -> None:
        from algorail.runtime import kafka_io

        topics = self.plan.created_topics()
        created = kafka_io.ensure_topics(self.bootstrap_servers, topics)
        self.echo(f"topics: {len(topics)} ({len(created)} created)")

    def _spawn(self, child: Child) -> None:
        command = [sys.executable, "-P", "-m", "algorail.cli", *child.args, "--plan",
                   str(self.plan_path), "--bootstrap-servers", self.bootstrap_servers]
        env = {**os.environ, "ALGORAIL_OBJECT_STORE_URL": f"file://{self.object_store_dir}",
               "PYTHONUNBUFFERED": "1"}
        child.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=self._preexec)
        self.children.append(child)
        self._state(child, f"starting (pid {child.process.pid})")
        child.reader = threading.Thread(target=self._read, args=(child,), daemon=True,
                                        name=f"algorail-dev-{child.name}")
        child.reader.start()

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
                if code is None or child.failed or child.state.startswith("exited"):
                    continue
                if code == 0:
                    self._state(child, "exited with status 0")
                else:
                    self._fail(child, code)

    def _watch_fill(self) -> None:
        watch = FillWatch(self.bootstrap_servers, self.plan.created_topics())
        while not self.stopping.wait(FILL_CHECK_SECONDS):
            try:
                warning = watch.check()
            except Exception:  # a busy or stopping broker: look again at the next turn
                continue
            if warning:
                self.echo(warning)

    def _fail(self, child: Child, code: int) -> None:
        """A child exited with an error: end dev mode with it, unless --keep-going."""
        if child.reader is not None:
            child.reader.join(1.0)  # its last lines, the error among them
        error = child.error()
        ending = not (self.keep_going or self.stopping.is_set())
        if ending:  # before the state: a failed child counts as ready, and no ready line may follow
            self.failure = DevError(f"{child.label} failed: {error}")
        self._state(child, f"failed (status {code}): {error}")
        if ending:
            os.kill(os.getpid(), signal.SIGTERM)  # the main thread serves the gateway: stop it

    def _state(self, child: Child, state: str) -> None:
        with self._lock:
            child.state = state
            self.echo(f"{child.label}: {state}")

    def failed(self) -> dict[str, str]:
        """Components that failed, with their errors (what /healthz reports)."""
        return {c.label: c.state for c in self.children if c.failed}

    def health(self) -> dict[str, Any] | None:
        """None while every component runs; else the problems, for /healthz."""
        failed = self.failed()
        return {"status": "failed", "failed": failed} if failed else None

    def ready(self) -> bool:
        return all(c.state in ("running", "exited with status 0") or c.failed
                   for c in self.children)

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if self.ready():
                return True
            time.sleep(0.1)
        return self.ready()

    def urls(self) -> list[str]:
        from algorail.ops.devview import DEV_INFO_PATH

        base = f"http://{self.host}:{self.port}"
        grpc = ([f"gRPC {self.host}:{self.grpc_port}  (V2 inference service)"]
                if self.grpc_port is not None else [])
        return [f"POST {base}{r.url}" for r in self.plan.routes if r.type != "grpc"] + grpc + [
            f"GET  {base}/metrics", f"GET  {base}{DEV_INFO_PATH}  (for `algorail status --dev "
                                    f"{base}` and the other ops commands)"]

    def ready_line(self) -> str:
        plan = self.plan
        failed = self.failed()
        marks = f" — failed: {', '.join(failed)}" if failed else ""
        return (f"{READY_WORD}: {plan.owner}/{plan.pipeline}:{plan.version}{marks} "
                "— Ctrl-C to stop")

    def stop(self) -> None:
        """SIGTERM every child, SIGKILL what is left after a grace period, then the broker,
        then release the work folder."""
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
            self.echo(f"{child.label}: stopped")
        if self.broker is not None:
            self.broker.stop()
            self.echo("broker: stopped")
        self.work.release()


def run_dev(plan: Plan, *, bootstrap_servers: str | None, host: str, port: int,
            grpc_port: int | None = None, workdir: str | Path | None = None,
            keep_going: bool = False,
            echo: Callable[[str], None] = print, ready_timeout: float = 60.0) -> None:
    """Run the pipeline until Ctrl-C or SIGTERM (what `algorail dev` does). Raises
    `DevError` when a component failed (without `keep_going`)."""
    supervisor = DevSupervisor(plan, bootstrap_servers=bootstrap_servers, host=host, port=port,
                               grpc_port=grpc_port, workdir=workdir, keep_going=keep_going,
                               echo=echo)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        supervisor.start()
        threading.Thread(target=_announce, args=(supervisor, ready_timeout), daemon=True,
                         name="algorail-dev-ready").start()
        _serve_gateway(supervisor)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        supervisor.stop()
    if supervisor.failure is not None:
        raise supervisor.failure


def _announce(supervisor: DevSupervisor, timeout: float) -> None:
    """Print the URLs, the component table and the ready line once every component runs
    (or failed)."""
    from algorail.ops.devview import component_table
    from algorail.runtime.broker import wait_for_port

    ready = supervisor.wait_ready(timeout)
    if supervisor.stopping.is_set() or supervisor.failure is not None:
        return
    if ready and wait_for_port(supervisor.host, supervisor.port, timeout):
        for url in supervisor.urls():
            supervisor.echo(url)
        supervisor.echo(component_table(supervisor.plan, supervisor.children,
                                        f"http://{supervisor.host}:{supervisor.port}"))
        supervisor.echo(supervisor.ready_line())
    else:
        late = [c.name for c in supervisor.children if c.state != "running"]
        supervisor.echo(f"not ready after {timeout:.0f}s: {', '.join(late)}")


def _serve_gateway(supervisor: DevSupervisor) -> None:
    """The gateway and hook dispatcher, in this process, until interrupted; its
    ``GET /v1/dev`` tells the ops commands (`--dev URL`) where the pipeline is."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from algorail.ops.devview import DEV_INFO_PATH, ChildMetrics, dev_info
    from algorail.runtime import gateway
    from algorail.runtime.objectstore import LocalObjectStore
    from algorail.runtime.results import MemoryResultsStore

    children = ChildMetrics(lambda: [c.metrics_url for c in supervisor.children
                                     if c.metrics_url])
    info = dev_info(supervisor.plan, supervisor.bootstrap_servers, supervisor.workdir)
    about = Route(DEV_INFO_PATH, lambda request: JSONResponse(info), methods=["GET"])
    console = dev_console_routes(supervisor)
    gateway.serve(supervisor.plan, bootstrap_servers=supervisor.bootstrap_servers,
                  host=supervisor.host, port=supervisor.port, results=MemoryResultsStore(),
                  object_store=LocalObjectStore(supervisor.object_store_dir), dev=True,
                  wal_dir=supervisor.wal_dir, metrics=(children,), health=supervisor.health,
                  reporting_sinks=python_sinks(supervisor.plan), extra_routes=(about, *console),
                  grpc_port=supervisor.grpc_port)


def dev_console_routes(supervisor: DevSupervisor) -> tuple[Any, ...]:
    """The read-only console of the one pipeline at ``/ui/``, and what it reads: each
    component's state, the runs as they happen (Server-Sent Events), one run's report and
    the last messages of a pipe."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from algorail.console import ConsoleFiles
    from algorail.ops.deployments import Deployment
    from algorail.ops.devview import DEV_INFO_PATH
    from algorail.ops.records import OpsError
    from algorail.ops.runs import run_report, run_stream_response
    from algorail.ops.tail import last_messages

    plan = supervisor.plan
    host = "127.0.0.1" if supervisor.host in ("0.0.0.0", "::", "") else supervisor.host
    here = Deployment(plan=plan, bootstrap_servers=supervisor.bootstrap_servers,
                      gateway_url=f"http://{host}:{supervisor.port}")

    def states(request: Any) -> JSONResponse:
        found = [{"component": r.endpoint, "state": "running"} for r in plan.routes]
        found += [{"component": c.name, "state": c.state} for c in supervisor.children]
        found += [{"component": h.name, "state": "running"} for h in plan.hooks]
        return JSONResponse(found)

    async def messages(request: Any) -> JSONResponse:
        pipe, last = request.query_params.get("pipe") or None, request.query_params.get("last")
        try:
            return JSONResponse(await run_in_threadpool(
                last_messages, plan, supervisor.bootstrap_servers, pipe,
                int(last) if last and last.isdigit() else 20))
        except OpsError as exc:
            return JSONResponse({"error": str(exc), "problems": []}, status_code=409)

    async def report(request: Any) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(run_report, here,
                                                        request.path_params["run_id"]))
        except OpsError as exc:
            return JSONResponse({"error": str(exc), "problems": []}, status_code=409)

    return (Route(f"{DEV_INFO_PATH}/components", states, methods=["GET"]),
            Route(f"{DEV_INFO_PATH}/messages", messages, methods=["GET"]),
            Route(f"{DEV_INFO_PATH}/runs", lambda request: run_stream_response(here),
                  methods=["GET"]),
            Route(f"{DEV_INFO_PATH}/runs/{{run_id}}", report, methods=["GET"]),
            Mount("/ui", app=ConsoleFiles(mode="dev"), name="console"))


def python_sinks(plan: Plan) -> frozenset[str]:
    """The data sinks dev mode runs in Python, which report each run's write; the others
    need Kafka Connect (their `algorail connect` says so and exits)."""
    from algorail.extensions import Connector
    from algorail.plugin_manager import get_registry

    installed = get_registry().connectors
    return frozenset(
        c.name for c in plan.connectors if c.kind == "sink" and c.connector in installed
        and type(installed[c.connector]).open_dev is not Connector.open_dev)
