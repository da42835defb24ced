"""Shared fixtures: real services on loopback, started here and stopped by PID.

Redis, PostgreSQL and MariaDB are the machine's own (started by .ci/run when down);
tests that need them are skipped with a clear reason only when they cannot be reached.
Area-specific fixtures live next to the tests that use them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algorail.runtime import kafka_io
from algorail.runtime.broker import EmbeddedBroker, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

REDIS_URL = os.environ.get("ALGORAIL_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("ALGORAIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("ALGORAIL_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")


def pytest_addoption(parser):
    parser.addoption(
        "--kafka-client", choices=kafka_io.CLIENTS, default=None,
        help=f"the Kafka client of the runtime under test (sets {kafka_io.CLIENT_ENV} for "
             "the session and its child processes); tests parametrized on kafka_client run "
             "on each client whatever this says")


def pytest_configure(config):
    chosen = config.getoption("--kafka-client")
    if chosen:
        os.environ[kafka_io.CLIENT_ENV] = chosen


@pytest.fixture
def kafka_client(request, monkeypatch):
    """The Kafka client the runtime uses in this test, in-process and in the processes it
    starts: the session's, or each of `kafka_io.CLIENTS` for a test that says
    ``@BOTH_CLIENTS``."""
    name = getattr(request, "param", None) or kafka_io.client_name()
    monkeypatch.setenv(kafka_io.CLIENT_ENV, name)
    return name


# Runs a test once per Kafka client backend (it takes the `kafka_client` fixture).
BOTH_CLIENTS = pytest.mark.parametrize("kafka_client", kafka_io.CLIENTS, indirect=True)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def broker():
    """A fresh embedded Kafka-protocol broker for one test."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="module")
def module_broker():
    """One broker shared by the tests of a module (they must use distinct topics)."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def redis_url():
    if not _reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    return REDIS_URL


@pytest.fixture
def postgres_url():
    if not _reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 (.ci/run starts it)")
    return POSTGRES_URL


@pytest.fixture
def mariadb_url():
    if not _reachable("127.0.0.1", 3306):
        pytest.skip("MariaDB is not running on 127.0.0.1:3306 (.ci/run starts it)")
    return MARIADB_URL


SCRATCH_SERVERS = {
    "postgresql": ("127.0.0.1", 5432, "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mariadb": ("127.0.0.1", 3306, "mysql+pymysql://root@127.0.0.1:3306"),
}


@pytest.fixture(scope="session")
def scratch_database(tmp_path_factory):
    """Factory: `scratch_database("sqlite"|"postgresql"|"mariadb")` -> URL of a new, empty
    database of your own (algorail_test_<random>), dropped when the session ends."""
    import uuid

    from sqlalchemy import create_engine, text

    created = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        host, port, server = SCRATCH_SERVERS[kind]
        if not _reachable(host, port):
            pytest.skip(f"{kind} is not running on {host}:{port} (.ci/run starts it)")
        name = f"algorail_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(f"{server}/{'test' if kind == 'mariadb' else 'postgres'}",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        created.append((kind, admin, name))
        return f"{server}/{name}"

    yield make
    for kind, admin, name in created:
        force = " WITH (FORCE)" if kind == "postgresql" else ""
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


@pytest.fixture(scope="session")
def s3_server():
    """An S3/SQS-compatible server on loopback (moto), through the same boto3 code."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not wait_for_port("127.0.0.1", port, 30):
            pytest.fail("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """boto3 pointed at the loopback S3 server with dummy credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_server


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def read_topic(bootstrap_servers: str, topic: str, idle_ms: int = 1500) -> list:
    """Every record of a one-partition topic from the start (no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=idle_ms)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        return list(consumer)
    finally:
        consumer.close()


class AsgiServer:
    """An ASGI app served by uvicorn on a free loopback port, in a thread:
    ``with AsgiServer(app) as server: httpx.get(server.url + "/healthz")``."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = None

    def start(self, timeout: float = 20.0) -> AsgiServer:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        if not wait_until(lambda: self.server.started, timeout=timeout):
            self.stop()
            raise RuntimeError(f"the ASGI app did not start on {self.url}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """kmock serving Pipelines (the CRD installed) over HTTP, KUBECONFIG pointing at it."""
    pytest.importorskip("kmock", reason="kmock is in the test extra")
    pytest.importorskip("kopf", reason="kopf is in the operator extra")
    from kube_api import KubeApiThread, write_kubeconfig

    api = KubeApiThread().start()
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", api.url,
                                                          "algorail")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield api
    api.stop()


@pytest.fixture
def kube_registry(tmp_path, cluster):
    """The registry over HTTP, deploying to `cluster`; clients of an admin key (ops) and
    of alice's."""
    from algorail.registry.api import BackgroundServer, open_registry
    from algorail.registry.auth import create_key
    from algorail.registry.client import RegistryClient
    from algorail.registry.policy import DeploymentPolicy

    policy = DeploymentPolicy(deployments_dir=EXAMPLES, namespaces=("algorail", "team-a"))
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}",
                             state_dir=tmp_path / "state", policy=policy)
    with registry.sessions() as session:
        keys = {"ops": create_key(session, "ops", admin=True),
                "alice": create_key(session, "alice")}
    server = BackgroundServer(registry).start()
    clients = {who: RegistryClient(server.url, key) for who, key in keys.items()}
    yield clients
    for client in clients.values():
        client.close()
    server.stop()
    registry.close()
