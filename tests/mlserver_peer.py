"""MLServer (Seldon's V2 model server) as a real peer: started from its own virtualenv
(`.venv-mlserver`, made by .ci/run: its pins clash with ours) with the models of
examples/seldon/mlserver, on free loopback ports, stopped by PID."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from algorail.runtime.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
MODELS = ROOT / "examples" / "seldon" / "mlserver"


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
