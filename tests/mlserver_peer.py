"""MLServer (Seldon's V2 model server) as a real peer: started from its own virtualenv
(`.venv-mlserver`, made by .ci/run: its pins clash with ours) with the models of
examples/seldon/mlserver, on free loopback ports, stopped by PID."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from algorail.runtime.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
MODELS = ROOT / "examples" / "seldon" / "mlserver"


def tfsimple_batch(client, tensor, count: int) -> list:
    """`count` tfsimple-batch requests at once (so the batched step sees them together), the
    i-th with INPUT0 = INPUT1 = i as INT32 [1, 2]; their OUTPUT0 arrays, in order. `client()`
    gives a tritonclient (http or grpc) client, `tensor(name, array)` its input."""
    import numpy as np

    def one(i):
        a = np.full((1, 2), i, dtype=np.int32)
        result = client().infer("tfsimple-batch", [tensor("INPUT0", a), tensor("INPUT1", a)])
        return result.as_numpy("OUTPUT0")

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def mlserver_missing() -> str | None:
    """Why MLServer cannot be started here, or None."""
    if not MLSERVER.exists():
        return f"MLServer is not installed: run .ci/run (or python3 -m venv .venv-mlserver && " \
               f".venv-mlserver/bin/pip install mlserver) to make {MLSERVER}"
    return None


class MLServer:
    """`mlserver start examples/seldon/mlserver` on 127.0.0.1; `http`/`grpc` are its
    addresses once `start()` returned."""

    def __init__(self, log_path: Path | None = None):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> MLServer:
        env = {**os.environ, "PYTHONPATH": str(MODELS), "MLSERVER_HOST": "127.0.0.1",
               "MLSERVER_HTTP_PORT": str(self.http_port),
               "MLSERVER_GRPC_PORT": str(self.grpc_port),
               "MLSERVER_METRICS_PORT": str(free_port()), "MLSERVER_PARALLEL_WORKERS": "0"}
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen([str(MLSERVER), "start", str(MODELS)], env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"MLServer exited with status {self.process.returncode}"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if httpx.get(f"{self.http}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"MLServer was not ready within {timeout:g}s")

    def model_url(self) -> str:
        return f"{self.http}/v2/models/{{name}}/infer"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# the marks of a test module that runs MLServer: slow, and skipped (saying why) without it
NEEDS_MLSERVER = [pytest.mark.slow,
                  pytest.mark.skipif(bool(mlserver_missing()), reason=str(mlserver_missing()))]


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory):
    """One MLServer for the session's tests (import this fixture into a test module)."""
    if mlserver_missing():
        pytest.skip(mlserver_missing())
    server = MLServer(tmp_path_factory.mktemp("mlserver") / "mlserver.log").start()
    yield server
    server.stop()


class Deployment:
    """Plans deployed for a test: runners in threads, a hook dispatcher and a gateway each
    (REST, and gRPC when `grpc`), on a real broker. `urls[pipeline]`, `grpc[pipeline]`
    (HOST:PORT) and `runners[(pipeline, step)]` once started."""

    def __init__(self, plans: dict, bootstrap_servers: str, grpc: bool = False):
        self.plans, self.bootstrap, self.use_grpc = plans, bootstrap_servers, grpc
        self.urls: dict[str, str] = {}
        self.grpc: dict[str, str] = {}
        self.runners: dict[tuple[str, str], object] = {}
        self.threads: list = []
        self.dispatchers: list = []
        self.servers: list = []

    def start(self) -> Deployment:
        import threading

        from conftest import AsgiServer

        from algorail.runtime.gateway import create_app
        from algorail.runtime.hooks import HookDispatcher
        from algorail.runtime.kafka_io import ensure_topics
        from algorail.runtime.results import MemoryResultsStore
        from algorail.runtime.runner import Runner

        for name, plan in self.plans.items():
            ensure_topics(self.bootstrap, plan.created_topics())
            results = MemoryResultsStore()
            self.dispatchers.append(HookDispatcher(plan, self.bootstrap, results).start())
            for spec in plan.runners:
                runner = Runner(plan, spec.component, self.bootstrap).start()
                self.runners[(name, spec.component)] = runner
                self.threads.append(threading.Thread(target=runner.run, daemon=True))
                self.threads[-1].start()
            grpc_address = ("127.0.0.1", free_port()) if self.use_grpc else None
            app = create_app(plan, results=results, bootstrap_servers=self.bootstrap,
                             grpc_address=grpc_address)
            self.servers.append(AsgiServer(app).start())
            self.urls[name] = self.servers[-1].url
            if grpc_address:
                self.grpc[name] = f"{grpc_address[0]}:{grpc_address[1]}"
        assert all(d.wait_ready(30) for d in self.dispatchers)
        assert all(r.ready.wait(30) for r in self.runners.values())
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for runner in self.runners.values():
            runner.stop()
        for thread in self.threads:
            thread.join(15)
        for dispatcher in self.dispatchers:
            dispatcher.stop()
