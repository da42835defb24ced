"""Test helpers for plugin authors: run an algo, a hook or a connector through the real
plugins, or a whole pipeline in dev mode.

Each helper builds a one-component pipeline, validates and compiles it exactly as
`algorail validate`/`plan` would, and then calls the installed plugin, so a test exercises
the same code a deployment does. It is also a pytest plugin (entry point ``pytest11``)
offering the ``algorail_dev`` fixture; it imports nothing heavy at module level.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from algorail.errors import AlgorailError

TEST_OWNER = "test"


class DevModeError(AlgorailError):
    """`algorail dev` did not start or stopped early."""


def _document(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "algorail.io/v1",
        "kind": "Pipeline",
        "metadata": {"owner": TEST_OWNER, "name": name, "version": "0.0.1"},
        "spec": spec,
    }


def compile_document(document: dict[str, Any], base_dir: str | None = None) -> Any:
    """Validate (with the installed plugins) and compile a pipeline document to its Plan."""
    from algorail.compiler import compile_plan
    from algorail.loader import validate_document

    file = str(Path(base_dir or ".").resolve() / "test-pipeline.yaml")
    return compile_plan(validate_document(document, file=file))


def _entrypoint(target: str | Callable[..., Any]) -> str:
    """`module:function` for a callable, a registered packaged algo's name, or as given."""
    if callable(target):
        return f"{target.__module__}:{target.__qualname__}"
    if ":" in target:
        return target
    from algorail.plugin_manager import get_registry

    algos = get_registry().algos
    if target not in algos:
        known = ", ".join(sorted(algos)) or "none"
        raise AlgorailError(
            f"no packaged algo named {target!r} is installed (installed: {known}); "
            "pass 'module:function' or install the package that registers it"
        )
    return algos[target].entrypoint


def run_algo(
    target: str | Callable[..., Any],
    payload: Any,
    *,
    inputs: tuple[str, ...] = ("in",),
    outputs: tuple[str, ...] = ("out",),
    config: dict[str, Any] | None = None,
    runtime: str = "python",
    base_dir: str | None = None,
) -> Any:
    """Call an algo once, in this process, through the installed `runtime` plugin.

    `target` is a callable, ``'module:function'``, or the name of a packaged algo (the
    `register_algos` hook). The payload and the return value follow the runner's calling
    convention: one input gets the payload, several get a dict keyed by input name.
    """
    from algorail.plugin_manager import get_registry

    pipes = [{"from": f"api.{i}", "to": f"algo.{i}"} for i in inputs]
    pipes += [{"from": f"algo.{o}", "to": "result"} for o in outputs]
    algo = {
        "name": "algo",
        "runtime": runtime,
        "entrypoint": _entrypoint(target),
        "config": config or {},
        "inputs": [{"name": i} for i in inputs],
        "outputs": [{"name": o} for o in outputs],
    }
    plan = compile_document(_document({
        "endpoints": [{"name": "api", "paths": [{"name": i} for i in inputs]}],
        "algos": [algo],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": pipes,
    }, "run-algo"), base_dir)
    call = get_registry().runtimes[runtime].open(plan.runner("algo"))
    try:
        return call(payload)
    finally:
        call.close()


def hook_plan(hook_type: str, config: dict[str, Any] | None = None) -> Any:
    """The validated `HookPlan` of one hook of `hook_type` fed by an endpoint."""
    plan = compile_document(_document({
        "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
        "hooks": [{"name": "hook", "type": hook_type, "config": config or {}}],
        "pipes": [{"from": "api.in", "to": "hook"}],
    }, "deliver-hook"))
    return plan.hooks[0]


def deliver_hook(
    hook_type: str,
    payload: Any,
    config: dict[str, Any] | None = None,
    run_id: str = "test-run",
    attempt: int = 1,
) -> Any:
    """Validate a hook's config and deliver one payload through the installed hook type;
    returns what it records as the hook's result. `DeliveryFailed` propagates."""
    from algorail.extensions import DeliveryContext
    from algorail.plugin_manager import get_registry

    hook = hook_plan(hook_type, config)
    context = DeliveryContext(
        run_id=run_id, deployment="deliver-hook", owner=TEST_OWNER, source="api.in",
        attempt=attempt,
    )
    return get_registry().hook_types[hook_type].deliver(hook, payload, context)


def connector_plan(connector: str, config: dict[str, Any], kind: str = "sink") -> Any:
    """The validated `ConnectorPlan` of one data source or sink using `connector`."""
    component = {"name": "data", "connector": connector, "config": config}
    if kind == "sink":
        spec = {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "dataSinks": [component],
            "pipes": [{"from": "api.in", "to": "data.in"}],
        }
    else:
        spec = {
            "dataSources": [component],
            "hooks": [{"name": "result", "type": "response"}],
            "pipes": [{"from": "data.out", "to": "result"}],
        }
    return compile_document(_document(spec, f"data-{kind}")).connectors[0]


def kafka_connect_config(connector: str, config: dict[str, Any], kind: str = "sink") -> dict:
    """Validate a connector's config and render its Kafka Connect config."""
    from algorail.plugin_manager import get_registry

    plan = connector_plan(connector, config, kind)
    return get_registry().connectors[connector].kafka_connect_config(plan)


class DevPipeline:
    """A pipeline served by `algorail dev` in a child process, on a loopback port.

    Without `bootstrap_servers` dev mode starts its own embedded broker. Its state goes
    to `work_dir`, by default a fresh temporary folder removed by `close()` (give the same
    `work_dir` to a second `DevPipeline` to restart a deployment where the first left
    off). Stopped (with its process group) by `stop()` or on leaving the ``with`` block.
    """

    def __init__(self, file: str | Path, *, bootstrap_servers: str | None = None,
                 bindings: str | Path | None = None, startup_timeout: float = 90.0,
                 work_dir: str | Path | None = None, keep_going: bool = False):
        from algorail.loader import load_pipeline
        from algorail.spec import load_bindings

        self.file = Path(file)
        pipeline = load_pipeline(self.file, bindings=load_bindings(bindings))
        self.owner, self.deployment = pipeline.owner, pipeline.name
        self.bootstrap_servers = bootstrap_servers
        self.bindings = bindings
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="algorail-dev-"))
        self.keep_going = keep_going
        self.log = self.work_dir / f"dev-{os.getpid()}-{id(self)}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DevPipeline:
        from algorail.runtime.broker import free_port

        self.port = free_port()
        command = [sys.executable, "-P", "-m", "algorail.cli", "dev", str(self.file),
                   "--port", str(self.port), "--work-dir", str(self.work_dir)]
        if self.keep_going:
            command.append("--keep-going")
        if self.bootstrap_servers:
            command += ["--bootstrap-servers", self.bootstrap_servers]
        if self.bindings:
            command += ["--bindings", str(self.bindings)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.file.parent,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise DevModeError(f"algorail dev exited early:\n{self.output()}")
            if self._announced_ready():
                healthy = (200, 503) if self.keep_going else (200,)  # 503: a component failed
                try:
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code in healthy:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise DevModeError(
            f"algorail dev was not ready within {self.startup_timeout:.0f}s:\n{self.output()}"
        )

    def _announced_ready(self) -> bool:
        """Dev mode prints a line starting with its ready word once every component runs."""
        from algorail.runtime.dev import READY_WORD

        return any(line.startswith(f"{READY_WORD}:") for line in self.output().splitlines())

    def output(self) -> str:
        """What dev mode printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def post(self, path: str, payload: Any, *, sync: bool = True, timeout: float = 60.0) -> Any:
        """POST a JSON payload to an endpoint path; returns the `httpx.Response`. A sync
        call waits up to `timeout` seconds for the pipeline's result."""
        import httpx

        from algorail import naming

        url = self.url + naming.route_url(self.owner, self.deployment, path)
        params = {"sync": "true", "timeout": f"{timeout:g}"} if sync else {}
        return httpx.post(url, json=payload, params=params, timeout=timeout + 5)

    def stop(self) -> None:
        """Stop dev mode and everything it started (its process group)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> DevPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop dev mode and remove its log, and its work folder when it made it."""
        import shutil

        self.stop()
        self.log.unlink(missing_ok=True)
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def dev_mode_available() -> bool:
    """True when the runtime's `algorail dev` command is installed."""
    from importlib.util import find_spec

    try:
        return find_spec("algorail.commands.runtime") is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture
def algorail_dev() -> Iterator[Callable[..., DevPipeline]]:
    """Start a pipeline file in dev mode: ``algorail_dev("pipeline.yaml").post("in", {...})``.

    Every pipeline started is stopped at the end of the test.
    """
    started: list[DevPipeline] = []

    def start(file: str | Path, **options: Any) -> DevPipeline:
        if not dev_mode_available():
            pytest.skip("algorail dev is not available in this algorail installation")
        pipeline = DevPipeline(file, **options)
        started.append(pipeline)
        return pipeline.start()

    yield start
    for pipeline in started:
        pipeline.close()
