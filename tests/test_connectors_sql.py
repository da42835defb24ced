"""JDBC sink and polling source in dev mode, against the machine's PostgreSQL and MariaDB
and a real broker: exact rows, a database outage that loses nothing, clear config errors."""

from __future__ import annotations

import json
import socket
import threading
import uuid

import pytest
import sqlalchemy as sa
import yaml
from conftest import wait_until
from kafka import KafkaConsumer, KafkaProducer

from algorail import naming
from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.runtime import kafka_io
from algorail.runtime.codec import Envelope, new_run_id
from algorail.runtime.connect import ConnectorConfigError, open_connector, run_connector
from algorail.runtime.runner import Runner

ALGO = (
    "def score(payload):\n"
    "    return {'id': payload['id'], 'name': payload['name'].upper(),\n"
    "            'score': len(payload['name'])}\n"
)


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://").replace(
        "mysql://", "mysql+pymysql://")


@pytest.fixture
def table(request):
    """A fresh table name, dropped afterwards, in the database of the test's parameter."""
    name = f"conn6_{uuid.uuid4().hex[:10]}"
    engines = []
    yield name, engines
    for engine in engines:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def make_table(url: str, name: str, engines: list, columns: str) -> sa.Engine:
    engine = sa.create_engine(sqlalchemy_url(url))
    engines.append(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} ({columns})"))
    return engine


def rows(engine: sa.Engine, name: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY id"))]


def make_plan(tmp_path, sinks=(), sources=()):
    """endpoint api.in -> algo score -> every sink; every source -> score.in instead."""
    (tmp_path / "conn6_algos.py").write_text(ALGO)
    pipes = [{"from": f"{sources[0]['name']}.out" if sources else "api.in", "to": "score.in"}]
    pipes += [{"from": "score.out", "to": s["name"]} for s in sinks]
    doc = {
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "conn6", "name": "shop"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "algos": [{"name": "score", "runtime": "python",
                       "entrypoint": "conn6_algos:score"}],
            "dataSinks": list(sinks), "dataSources": list(sources), "pipes": pipes,
        },
    }
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(doc))
    return compile_plan(load_pipeline(path), deployment=f"d{uuid.uuid4().hex[:8]}")


class Services:
    """Connectors and runners on threads, stopped at the end of the test."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.threads: list[tuple[threading.Thread, object]] = []
        self.errors: list[BaseException] = []

    def connector(self, plan, component):
        stop = threading.Event()

        def target():
            try:
                run_connector(plan, component, self.bootstrap, stop)
            except BaseException as exc:  # surfaced by the test
                self.errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append((thread, stop.set))

    def runner(self, plan, component):
        runner = Runner(plan, component, self.bootstrap)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        self.threads.append((thread, runner.stop))

    def stop(self):
        for _, stop in self.threads:
            stop()
        for thread, _ in self.threads:
            thread.join(timeout=15)


@pytest.fixture
def services(module_broker):
    started = Services(module_broker.bootstrap_servers)
    yield started
    started.stop()
    assert not started.errors, started.errors


def produce(bootstrap: str, topic: str, values: list, deployment: str = "") -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        envelope = Envelope(run_id=new_run_id(), deployment=deployment, source="test.out")
        producer.send(topic, json.dumps(value).encode(), headers=envelope.to_headers())
    producer.flush()
    producer.close()


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000)
    found = []
    wait_until(lambda: found.extend(consumer.poll(timeout_ms=200).get(
        next(iter(consumer.assignment()), None), [])) or len(found) >= count, timeout)
    consumer.close()
    return found


@pytest.mark.parametrize("db", ["postgres", "mariadb"])
def test_endpoint_algo_sink_writes_exactly_the_rows(db, request, tmp_path, table, services,
                                                   module_broker):
    url = request.getfixturevalue(f"{db}_url")
    name, engines = table
    engine = make_table(url, name, engines,
                        "id INTEGER PRIMARY KEY, name VARCHAR(50), score INTEGER")
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                       "config": {"url": url, "table": name}}])
    kafka_io.ensure_topics(module_broker.bootstrap_servers, plan.created_topics())
    produce(module_broker.bootstrap_servers, plan.routes[0].topic,
            [{"id": i, "name": n} for i, n in enumerate(["ada", "grace", "linus"])],
            plan.deployment)
    services.runner(plan, "score")
    services.connector(plan, "db")
    assert wait_until(lambda: len(rows(engine, name)) >= 3, 30)
    assert rows(engine, name) == [(0, "ADA", 3), (1, "GRACE", 5), (2, "LINUS", 5)]


def test_rejected_record_goes_to_dead_letter_and_the_rest_are_written(
        mariadb_url, tmp_path, table, services, module_broker):
    name, engines = table
    engine = make_table(mariadb_url, name, engines, "id INTEGER PRIMARY KEY, name VARCHAR(50)")
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                       "config": {"url": mariadb_url, "table": name}}])
    bootstrap = module_broker.bootstrap_servers
    kafka_io.ensure_topics(bootstrap, plan.created_topics())
    sink = plan.connectors[0]
    sink.inputs[0].map = {"label": "name"}  # as a pipe's `map` compiles
    produce(bootstrap, sink.inputs[0].topic,
            [{"id": 1, "label": "a"}, {"id": "not a number", "label": "b"},
             {"id": 3, "label": "c"}, {"id": 4, "colour": "red"}])
    skip = Envelope(run_id=new_run_id(), skip=True)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(sink.inputs[0].topic, b"", headers=skip.to_headers())
    producer.flush()
    producer.close()
    services.connector(plan, "db")
    assert wait_until(lambda: len(rows(engine, name)) >= 2, 30)
    dead = read_topic(bootstrap, sink.dead_letter_topic, 2)
    reasons = sorted(dict(m.headers)["algorail-error"].decode() for m in dead)
    assert len(dead) == 2  # the skip marker is neither written nor dead-lettered
    assert "Incorrect integer value" in reasons[0] or "integer" in reasons[0].lower()
    assert "colour" in reasons[1] and "have no column" in reasons[1]
    assert rows(engine, name) == [(1, "a"), (3, "c")]


def test_upsert_updates_rows_on_mariadb(mariadb_url, tmp_path, table, services, module_broker):
    name, engines = table
    engine = make_table(mariadb_url, name, engines, "id INTEGER PRIMARY KEY, name VARCHAR(50)")
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc", "config": {
        "url": mariadb_url, "table": name, "insertMode": "upsert", "pkFields": ["id"]}}])
    kafka_io.ensure_topics(module_broker.bootstrap_servers, plan.created_topics())
    produce(module_broker.bootstrap_servers, plan.connectors[0].inputs[0].topic,
            [{"id": 1, "name": "first"}, {"id": 2, "name": "two"}, {"id": 1, "name": "again"}])
    services.connector(plan, "db")
    assert wait_until(lambda: rows(engine, name) == [(1, "again"), (2, "two")], 30), \
        rows(engine, name)


class TcpProxy:
    """Forwards a loopback port to a database; `down()` cuts every connection and refuses
    new ones, `up()` listens again on the same port."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener: socket.socket | None = None
        self.port = 0
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self.listener = self.listener, None
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
        listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_sink_retries_while_the_database_is_away_and_loses_nothing(
        postgres_url, tmp_path, table, services, module_broker):
    name, engines = table
    engine = make_table(postgres_url, name, engines, "id INTEGER PRIMARY KEY, name TEXT")
    proxy = TcpProxy(5432).up()
    via_proxy = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc", "config": {
        "url": via_proxy, "table": name, "insertMode": "upsert", "pkFields": ["id"]}}])
    bootstrap = module_broker.bootstrap_servers
    kafka_io.ensure_topics(bootstrap, plan.created_topics())
    topic = plan.connectors[0].inputs[0].topic
    try:
        services.connector(plan, "db")
        produce(bootstrap, topic, [{"id": i, "name": f"n{i}"} for i in range(10)])
        assert wait_until(lambda: len(rows(engine, name)) == 10, 30)
        proxy.down()
        produce(bootstrap, topic, [{"id": i, "name": f"n{i}"} for i in range(10, 30)])
        assert not wait_until(lambda: len(rows(engine, name)) > 10, 2.0)
        proxy.up()
        assert wait_until(lambda: len(rows(engine, name)) == 30, 30)
        assert rows(engine, name) == [(i, f"n{i}") for i in range(30)]
    finally:
        services.stop()
        if proxy.listener is not None:
            proxy.down()


@pytest.mark.parametrize("config,columns,expected", [
    ({}, None, "table '{table}' does not exist"),
    ({"columns": {"score": "integer"}}, "id INTEGER PRIMARY KEY, score TEXT",
     "column {table}.score is TEXT, not a integer column"),
    ({"columns": {"rank": "integer"}}, "id INTEGER PRIMARY KEY", "has no column 'rank'"),
    ({"insertMode": "upsert", "pkFields": ["name"]}, "id INTEGER PRIMARY KEY, name TEXT",
     "is not the primary key or a unique index"),
    ({"url": "postgresql://postgres@127.0.0.1:1/test"}, None, "cannot connect to"),
])
def test_bad_config_is_a_clear_error_before_anything_starts(
        config, columns, expected, postgres_url, tmp_path, table):
    name, engines = table
    if columns:
        make_table(postgres_url, name, engines, columns)
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                       "config": {"url": postgres_url, "table": name, **config}}])
    cp, _, writer = open_connector(plan, "db")
    with pytest.raises(ConnectorConfigError, match=expected.format(table=name)):
        writer.check()
    writer.close()


def test_auto_create_makes_the_table_from_columns(postgres_url, tmp_path, table):
    name, engines = table
    engines.append(sa.create_engine(sqlalchemy_url(postgres_url)))
    plan = make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc", "config": {
        "url": postgres_url, "table": name, "autoCreate": True, "insertMode": "upsert",
        "pkFields": ["id"], "columns": {"id": "integer", "tags": "json"}}}])
    _, _, writer = open_connector(plan, "db")
    writer.check()
    writer.close()
    assert sa.inspect(engines[0]).get_pk_constraint(name)["constrained_columns"] == ["id"]


def test_polling_source_feeds_the_pipeline_and_resumes_after_restart(
        postgres_url, tmp_path, table, module_broker):
    name, engines = table
    engine = make_table(postgres_url, name, engines, "id SERIAL PRIMARY KEY, name TEXT")
    insert = sa.text(f"INSERT INTO {name} (name) VALUES (:name)")
    with engine.begin() as conn:
        conn.execute(insert, [{"name": n} for n in ("a", "b", "c")])
    plan = make_plan(tmp_path, sources=[{"name": "orders", "connector": "jdbc-source", "config": {
        "url": postgres_url, "table": name, "incrementingColumn": "id",
        "pollIntervalMs": 100}}])
    bootstrap = module_broker.bootstrap_servers
    kafka_io.ensure_topics(bootstrap, plan.created_topics())
    topic = plan.connectors[0].outputs["out"]

    first = Services(bootstrap)
    first.connector(plan, "orders")
    assert len(read_topic(bootstrap, topic, 3)) == 3
    with engine.begin() as conn:
        conn.execute(insert, [{"name": "d"}, {"name": "e"}])
    assert len(read_topic(bootstrap, topic, 5)) == 5
    first.stop()
    assert not first.errors

    second = Services(bootstrap)  # resumes after the last row it produced
    second.connector(plan, "orders")
    with engine.begin() as conn:
        conn.execute(insert, [{"name": "f"}])
    records = read_topic(bootstrap, topic, 6)
    assert not wait_until(lambda: len(read_topic(bootstrap, topic, 7, 1.5)) > 6, 2)
    second.stop()
    assert not second.errors
    assert [json.loads(r.value)["name"] for r in records] == list("abcdef")
    headers = dict(records[0].headers)
    assert headers["algorail-source"] == b"orders.out"
    assert headers["algorail-deployment"] == plan.deployment.encode()
    assert headers["algorail-source-offset"] == b"1"
    assert len({dict(r.headers)["algorail-run-id"] for r in records}) == 6


def test_connect_command_runs_sinks_and_explains_kafka_connect_only(
        postgres_url, tmp_path, module_broker):
    import subprocess
    import sys

    plan = make_plan(tmp_path, sources=[{"name": "cdc", "connector": "postgres-cdc", "config": {
        "url": postgres_url, "password": "${env:PGPASSWORD}", "tables": ["public.x"]}}],
        sinks=[{"name": "db", "connector": "jdbc", "config": {
            "url": postgres_url, "table": "conn6_no_such_table"}}])
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    base = [sys.executable, "-m", "algorail.cli", "connect", "--plan", str(plan_file),
            "--bootstrap-servers", module_broker.bootstrap_servers, "--component"]
    cdc = subprocess.run([*base, "cdc"], capture_output=True, text=True, timeout=60)
    assert cdc.returncode == 0, cdc.stderr
    assert "needs Kafka Connect" in cdc.stderr
    bad = subprocess.run([*base, "db"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "table 'conn6_no_such_table' does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_algorail_dev_moves_requests_into_the_database(postgres_url, tmp_path, table,
                                                       algorail_dev):
    """The whole user path: `algorail dev` runs gateway, runner and `algorail connect`."""
    name, engines = table
    engine = make_table(postgres_url, name, engines,
                        "id INTEGER PRIMARY KEY, name TEXT, score INTEGER")
    make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                "config": {"url": postgres_url, "table": name}}])
    pipeline = algorail_dev(tmp_path / "shop.yaml", startup_timeout=90)
    assert "data sink db: running" in pipeline.output()
    for i, person in enumerate(["ada", "grace"]):
        response = pipeline.post("in", {"id": i, "name": person}, sync=False)
        assert response.status_code < 300, response.text
    assert wait_until(lambda: len(rows(engine, name)) == 2, 40), pipeline.output()
    assert rows(engine, name) == [(0, "ADA", 3), (1, "GRACE", 5)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_sync_call_waits_for_the_write_and_a_rejected_row_fails_its_run(
        kind, scratch_database, tmp_path, algorail_dev):
    """A sync call to a pipeline ending in a sink answers once the row is written. 300
    characters into a varchar(255): the record goes to the sink's dead-letter topic with
    the database's message, and the run is `failed` with that error, not `complete`."""
    url = scratch_database(kind)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, name VARCHAR(255), "
                             "score INTEGER)"))
    plain = url.replace("+psycopg", "").replace("mysql+pymysql", "mysql")
    make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                "config": {"url": plain, "table": "people"}}])
    pipeline = algorail_dev(tmp_path / "shop.yaml")
    try:
        good = pipeline.post("in", {"id": 1, "name": "ada"}, timeout=30).json()
        assert good["status"] == "complete" and good["hooks"] == {"db": "delivered"}, good
        assert rows(engine, "people") == [(1, "ADA", 3)]  # written before the answer
        view = pipeline.post("in", {"id": 2, "name": "x" * 300}, timeout=30).json()
    finally:
        engine.dispose()
    assert view["status"] == "failed", view
    [error] = view["errors"]
    assert error["component"] == "db"
    message = error["error"].lower()
    assert "too long" in message and ("255" in message or "name" in message), message
    dead = read_topic(_dev_broker(pipeline), naming.dead_letter_topic("conn6", "shop", "db"), 1)
    assert dict(dead[0].headers)["algorail-error"].decode().lower() == message


def _dev_broker(pipeline) -> str:
    """The embedded broker's address, as dev mode printed it."""
    import re

    return re.search(r"broker: (\S+) \(embedded", pipeline.output()).group(1)


@pytest.mark.slow
def test_a_sink_whose_database_does_not_exist_ends_dev_mode(tmp_path, postgres_url):
    from algorail.testing import DevModeError, DevPipeline

    missing = postgres_url.rsplit("/", 1)[0] + f"/algorail_missing_{uuid.uuid4().hex[:8]}"
    make_plan(tmp_path, sinks=[{"name": "db", "connector": "jdbc",
                                "config": {"url": missing, "table": "people"}}])
    with pytest.raises(DevModeError) as failed:
        DevPipeline(tmp_path / "shop.yaml").start()
    output = str(failed.value)
    assert "Error: data sink db failed: " in output and "does not exist" in output, output
    assert "Traceback" not in output


def test_the_sink_never_lets_mariadb_truncate_a_value_silently(mariadb_url):
    """Whatever the server's default sql_mode, the sink's sessions are strict, so a value
    too long for its column is an error (and a dead letter), not a truncated row."""
    from algorail.connectors.sql import SqlTable

    table = SqlTable({"url": mariadb_url, "table": "unused"})
    try:
        with table.connect() as conn:
            mode = conn.execute(sa.text("SELECT @@SESSION.sql_mode")).scalar()
    finally:
        table.close()
    assert "STRICT_ALL_TABLES" in mode.split(",")
