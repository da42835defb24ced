"""`algorail connectors apply/status/delete` against a fake Kafka Connect REST server on
127.0.0.1 that answers the calls algorail makes the way the real API does (status codes,
bodies, 409 during a rebalance). A real Connect cluster is not exercised here."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
import yaml
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from algorail.cli import cli
from algorail.kafka_connect import KafkaConnectClient, KafkaConnectError
from algorail.runtime.broker import free_port


class FakeConnect:
    """In-memory state of a Connect cluster: connectors, their tasks, installed plugins."""

    def __init__(self, plugins: set[str]):
        self.plugins = plugins
        self.configs: dict[str, dict] = {}
        self.task_states: dict[str, tuple[str, str]] = {}
        self.conflicts = 0  # answer 409 to the next N writes
        self.requests: list[str] = []

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/connector-plugins", self.list_plugins),
            Route("/connectors/{name}/config", self.config, methods=["GET", "PUT"]),
            Route("/connectors/{name}/status", self.status),
            Route("/connectors/{name}", self.delete, methods=["DELETE"]),
        ])

    @staticmethod
    def error(code: int, message: str) -> JSONResponse:
        return JSONResponse({"error_code": code, "message": message}, status_code=code)

    async def list_plugins(self, request: Request):
        return JSONResponse([{"class": c, "type": "sink", "version": "1.0"} for c in self.plugins])

    async def config(self, request: Request):
        name = request.path_params["name"]
        self.requests.append(f"{request.method} {request.url.path}")
        if request.method == "GET":
            if name not in self.configs:
                return self.error(404, f"Connector {name} not found")
            return JSONResponse(self.configs[name])
        if self.conflicts:
            self.conflicts -= 1
            return self.error(409, "Cannot complete request momentarily due to stale "
                                   "configuration (typically caused by a concurrent config change)")
        body = await request.json()
        if body.get("name", name) != name:
            return self.error(400, f"Connector name configuration ({body['name']}) doesn't "
                                   f"match connector name in the URL ({name})")
        if body.get("connector.class") not in self.plugins:
            return self.error(400, "Failed to find any class that implements Connector and "
                                   f"which name matches {body.get('connector.class')}")
        created = name not in self.configs
        self.configs[name] = {**body, "name": name}
        return JSONResponse({"name": name, "config": self.configs[name], "tasks": [],
                             "type": "sink"}, status_code=201 if created else 200)

    async def status(self, request: Request):
        name = request.path_params["name"]
        if name not in self.configs:
            return self.error(404, f"No status found for connector {name}")
        state, trace = self.task_states.get(name, ("RUNNING", ""))
        task = {"id": 0, "state": state, "worker_id": "10.0.0.7:8083"}
        if trace:
            task["trace"] = trace
        return JSONResponse({"name": name, "type": "sink", "tasks": [task],
                             "connector": {"state": "RUNNING", "worker_id": "10.0.0.7:8083"}})

    async def delete(self, request: Request):
        name = request.path_params["name"]
        if self.configs.pop(name, None) is None:
            return self.error(404, f"Connector {name} not found")
        return Response(status_code=204)


@pytest.fixture
def fake_connect():
    fake = FakeConnect({"io.confluent.connect.jdbc.JdbcSinkConnector",
                        "io.confluent.connect.s3.S3SinkConnector"})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    server.should_exit = True
    thread.join(timeout=5)


def pipeline_file(tmp_path, table="scores"):
    doc = {
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "alice", "name": "shop"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "dataSinks": [
                {"name": "db", "connector": "jdbc", "config": {
                    "url": "postgresql://app@db:5432/shop", "table": table,
                    "password": "${secrets:shop/db:password}"}},
                {"name": "lake", "connector": "s3", "config": {"bucket": "lake"}},
            ],
            "pipes": [{"from": "api.in", "to": "db"}, {"from": "api.in", "to": "lake"}],
        },
    }
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def run(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_apply_is_idempotent_and_updates_changed_configs(fake_connect, tmp_path):
    file = pipeline_file(tmp_path)
    url = ["--connect-url", fake_connect.url]
    assert run("connectors", "apply", file, *url) == (
        0, "alice.shop.db: created\nalice.shop.lake: created\n")
    assert fake_connect.configs["alice.shop.db"]["connection.password"] == \
        "${secrets:shop/db:password}"
    assert run("connectors", "apply", file, *url) == (
        0, "alice.shop.db: unchanged\nalice.shop.lake: unchanged\n")
    file = pipeline_file(tmp_path, table="scores_v2")
    assert run("connectors", "apply", file, *url) == (
        0, "alice.shop.db: updated\nalice.shop.lake: unchanged\n")
    assert fake_connect.configs["alice.shop.db"]["table.name.format"] == "scores_v2"


def test_status_shows_task_state_and_error(fake_connect, tmp_path):
    file = pipeline_file(tmp_path)
    url = ["--connect-url", fake_connect.url]
    code, output = run("connectors", "status", file, *url)
    assert code == 1 and "alice.shop.db: not deployed" in output
    run("connectors", "apply", file, *url)
    code, output = run("connectors", "status", file, *url)
    assert code == 0
    assert "alice.shop.db: RUNNING on 10.0.0.7:8083\n  task 0: RUNNING" in output
    fake_connect.task_states["alice.shop.lake"] = (
        "FAILED", "org.apache.kafka.connect.errors.ConnectException: bucket lake not found\n"
                  "\tat io.confluent.connect.s3.S3SinkTask.start(S3SinkTask.java:120)")
    code, output = run("connectors", "status", file, *url)
    assert code == 1
    assert "task 0: FAILED on 10.0.0.7:8083\n    error: org.apache.kafka.connect.errors." \
           "ConnectException: bucket lake not found\n" in output
    assert "S3SinkTask.java" not in output


def test_delete_is_idempotent(fake_connect, tmp_path):
    file = pipeline_file(tmp_path)
    url = ["--connect-url", fake_connect.url]
    run("connectors", "apply", file, *url)
    assert run("connectors", "delete", file, *url) == (
        0, "alice.shop.db: deleted\nalice.shop.lake: deleted\n")
    assert fake_connect.configs == {}
    assert run("connectors", "delete", file, *url) == (
        0, "alice.shop.db: absent\nalice.shop.lake: absent\n")


def test_a_rebalance_conflict_is_retried(fake_connect):
    fake_connect.conflicts = 2
    with KafkaConnectClient(fake_connect.url, backoff_s=0.01) as client:
        config = {"connector.class": "io.confluent.connect.s3.S3SinkConnector", "topics": "t"}
        assert client.apply("c1", config) == "created"
    assert fake_connect.requests.count("PUT /connectors/c1/config") == 3


def test_missing_plugin_and_unreachable_cluster_are_clear_errors(fake_connect, tmp_path):
    fake_connect.plugins.discard("io.confluent.connect.s3.S3SinkConnector")
    with KafkaConnectClient(fake_connect.url) as client:
        with pytest.raises(KafkaConnectError, match="no plugin 'io.confluent.connect.s3.S3Sink"
                                                    "Connector' for connector 'lake'"):
            client.apply("lake", {"connector.class": "io.confluent.connect.s3.S3SinkConnector"})
    code, output = run("connectors", "apply", pipeline_file(tmp_path),
                       "--connect-url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "cannot reach Kafka Connect at http://127.0.0.1:" in output
    assert "Traceback" not in output


def test_render_prints_configs_and_strimzi_resources(tmp_path):
    file = pipeline_file(tmp_path)
    code, output = run("connectors", "render", file, "--strimzi", "--cluster", "shop-connect")
    assert code == 0
    resources = list(yaml.safe_load_all(output))
    assert [r["metadata"]["name"] for r in resources] == ["alice.shop.db", "alice.shop.lake"]
    assert {r["metadata"]["labels"]["strimzi.io/cluster"] for r in resources} == {"shop-connect"}
    assert {r["apiVersion"] for r in resources} == {"kafka.strimzi.io/v1"}
    code, output = run("connectors", "plugins", "--image", "reg.local/connect:1",
                       "--cluster", "shop-connect", "jdbc")
    spec = yaml.safe_load(output)["spec"]
    assert spec["build"]["output"] == {"type": "docker", "image": "reg.local/connect:1"}
    assert [p["name"] for p in spec["build"]["plugins"]] == ["kafka-connect-jdbc"]
    assert spec["groupId"] == "shop-connect-cluster"  # v1 requires the group in the spec


def test_the_older_strimzi_api_is_selectable(tmp_path):
    file = pipeline_file(tmp_path)
    older = "kafka.strimzi.io/v1beta2"
    code, output = run("connectors", "render", file, "--strimzi", "--strimzi-api-version", older)
    assert code == 0
    assert {r["apiVersion"] for r in yaml.safe_load_all(output)} == {older}
    code, output = run("connectors", "plugins", "--strimzi-api-version", older, "jdbc")
    spec = yaml.safe_load(output)["spec"]
    assert "groupId" not in spec and spec["config"]["group.id"] == "algorail-connect-cluster"
    code, output = run("connectors", "render", file, "--strimzi",
                       "--strimzi-api-version", "kafka.strimzi.io/v1alpha9")
    assert code == 2 and "'kafka.strimzi.io/v1alpha9' is not one of" in output
    assert "Traceback" not in output
