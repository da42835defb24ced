"""The gateway and hook dispatcher against a real broker, the machine's Redis and real
HTTP on loopback. A small stand-in runner (a thread with a kafka-python consumer) plays
the algo `router`: it reads the endpoint topic and, depending on the request's `branch`,
produces to `router.a`, `router.b`, a skip marker, nothing, or an error report.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest
from conftest import AsgiServer, read_topic

from algorail import naming
from algorail.compiler import compile_plan
from algorail.loader import validate_document
from algorail.runtime import codec
from algorail.runtime.gateway import create_app
from algorail.runtime.hooks import HookDispatcher
from algorail.runtime.kafka_io import ensure_topics, make_consumer, make_producer
from algorail.runtime.results import RedisResultsStore

PIPELINE = {
    "apiVersion": "algorail.io/v1",
    "kind": "Pipeline",
    "metadata": {"owner": "gw", "name": "gwtest", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [
            {"name": "in", "schema": {
                "type": "object", "required": ["text"],
                "properties": {"text": {"type": "string"}, "branch": {"type": "string"}}}},
            {"name": "strict", "schema": {
                "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
        ]}],
        "algos": [
            {"name": "router", "runtime": "python", "entrypoint": "stand_in:router",
             "inputs": [{"name": "text"}], "outputs": [{"name": "a"}, {"name": "b"}]},
            {"name": "counter", "runtime": "python", "entrypoint": "stand_in:counter",
             "inputs": [{"name": "n"}], "outputs": [{"name": "out"}]},
        ],
        "hooks": [{"name": "first", "type": "response"}, {"name": "second", "type": "response"}],
        "pipes": [
            {"from": "api.in", "to": "router.text"},
            {"from": "api.strict", "to": "counter.n"},
            {"from": "router.a", "to": "first"},
            {"from": "router.b", "to": "second"},
        ],
    },
}


def make_plan(pipeline: dict):
    return compile_plan(validate_document(json.loads(json.dumps(pipeline))))


def produce(producer, topic: str, run_id: str, source: str, value: bytes | None,
            skip: bool = False) -> None:
    headers = codec.Envelope(run_id=run_id, deployment="gwtest", source=source,
                                skip=skip).to_headers()
    producer.send(topic, value=value if value is not None else b"", headers=headers)


class StandInRouter:
    """What a runner of `router` would send, chosen by the request's `branch`."""

    def __init__(self, plan, bootstrap_servers: str):
        self.plan, self.bootstrap = plan, bootstrap_servers
        self.runner = plan.runner("router")
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        producer = make_producer(self.bootstrap, linger_ms=0)
        consumer = make_consumer(self.bootstrap, self.runner.consumer_group,
                                 enable_auto_commit=True, fetch_max_wait_ms=10)
        consumer.subscribe([self.runner.inputs[0].topic])
        while not self.stop_event.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                for record in records:
                    self.route(producer, record)
            if consumer.assignment():
                self.ready.set()
            producer.flush()
        consumer.close()
        producer.close()

    def route(self, producer, record) -> None:
        run_id = codec.Envelope.from_headers(record.headers).run_id
        body = json.loads(record.value)
        branch = body.get("branch", "both")
        out = self.runner.outputs
        value = json.dumps({"text": body["text"].upper()}).encode()
        if branch in ("both", "a"):
            produce(producer, out["a"], run_id, "router.a", value)
        if branch == "both":
            produce(producer, out["b"], run_id, "router.b", json.dumps({"len": 1}).encode())
        if branch == "a":
            produce(producer, out["b"], run_id, "router.b", None, skip=True)
        if branch == "error":
            report = {"runId": run_id, "component": "router", "error": "ValueError: bad",
                      "source": "api.in", "topic": record.topic, "partition": 0,
                      "offset": record.offset}
            produce(producer, self.plan.error_topic, run_id, "router", json.dumps(report).encode())


@pytest.fixture(scope="module")
def stack(module_broker):
    """Gateway (uvicorn on loopback), hook dispatcher and stand-in runner, Redis results."""
    import redis

    if not redis.Redis(host="127.0.0.1", port=6379).ping():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    plan = make_plan(PIPELINE)
    bootstrap = module_broker.bootstrap_servers
    ensure_topics(bootstrap, plan.created_topics())
    prefix = f"algorail-test-gw-{uuid.uuid4().hex[:8]}:"
    results = RedisResultsStore("redis://127.0.0.1:6379/0", ttl=120, prefix=prefix)
    dispatcher = HookDispatcher(plan, bootstrap, results).start()
    router = StandInRouter(plan, bootstrap)
    router.thread.start()
    app = create_app(plan, results=results, bootstrap_servers=bootstrap,
                     max_body_bytes=2048, max_sync_timeout=30)
    with AsgiServer(app) as server:
        assert dispatcher.wait_ready(30) and router.ready.wait(30)
        yield {"url": server.url, "plan": plan, "bootstrap": bootstrap, "results": results}
    router.stop_event.set()
    router.thread.join(10)
    dispatcher.stop()
    for key in results.redis.scan_iter(f"{prefix}*"):
        results.redis.delete(key)
    results.close()


def post(stack, path: str, body, query: str = "", **kwargs):
    url = f"{stack['url']}/gw/gwtest/{path}{query}"
    if isinstance(body, bytes | str):
        return httpx.post(url, content=body, timeout=40, **kwargs)
    return httpx.post(url, json=body, timeout=40, **kwargs)


def test_async_post_then_get(stack):
    answer = post(stack, "in", {"text": "hi", "branch": "both"})
    assert answer.status_code == 202
    run_id = answer.json()["runId"]
    assert answer.json()["status"] == "pending"
    run_url = f"{stack['url']}/gw/gwtest/runs/{run_id}"
    deadline = time.monotonic() + 20
    while (body := httpx.get(run_url).json())["status"] == "pending":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["status"] == "complete"
    assert body["results"] == {"first": {"text": "HI"}, "second": {"len": 1}}


def test_sync_returns_results_of_all_reachable_hooks(stack):
    answer = post(stack, "in", {"text": "both ways", "branch": "both"}, "?sync=true&timeout=20")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "complete"
    assert body["results"] == {"first": {"text": "BOTH WAYS"}, "second": {"len": 1}}
    assert body["hooks"] == {"first": "delivered", "second": "delivered"}


def test_sync_with_a_branch_not_taken_returns_without_waiting_for_the_timeout(stack):
    started = time.monotonic()
    answer = post(stack, "in", {"text": "one", "branch": "a"}, "?sync=true&timeout=20")
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 10
    body = answer.json()
    assert body["results"] == {"first": {"text": "ONE"}}
    assert body["hooks"] == {"first": "delivered", "second": "skipped"}


def test_sync_timeout_answers_504_with_what_arrived(stack):
    started = time.monotonic()
    answer = post(stack, "in", {"text": "lost", "branch": "none"}, "?sync=true&timeout=1.5")
    assert answer.status_code == 504
    assert 1.4 < time.monotonic() - started < 8
    assert answer.json()["status"] == "pending" and answer.json()["results"] == {}


def test_a_runner_error_fails_the_run_and_ends_a_sync_wait(stack):
    answer = post(stack, "in", {"text": "x", "branch": "error"}, "?sync=true&timeout=20")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "failed"
    assert body["errors"][0]["component"] == "router"
    assert body["errors"][0]["error"] == "ValueError: bad"


def test_rejected_requests_leave_no_message_in_the_topic(stack):
    cases = [
        (b"n=1", {"content-type": "text/plain"}, 415, "takes Content-Type application/json"),
        (b"{not json", {"content-type": "application/json"}, 422, "body: invalid JSON"),
        (b'{"n": "one"}', {"content-type": "application/json"}, 422, "body.n"),
        (b'{"m": 1}', {"content-type": "application/json"}, 422, "'n' is a required property"),
        (b'{"n": 1}', {}, 415, "got none"),
        (b'{"n": "' + b"x" * 4000 + b'"}', {"content-type": "application/json"}, 413, "limit"),
    ]
    topic = naming.endpoint_topic("gw", "gwtest", "strict")
    before = len(read_topic(stack["bootstrap"], topic))  # other tests may have posted
    for body, headers, status, message in cases:
        answer = post(stack, "strict", body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
        assert message in answer.json()["error"]
    assert len(read_topic(stack["bootstrap"], topic)) == before
    run_id = post(stack, "strict", {"n": 1}).json()["runId"]
    *_, record = read_topic(stack["bootstrap"], topic)
    assert json.loads(record.value) == {"n": 1}
    envelope = codec.Envelope.from_headers(record.headers)
    assert envelope.run_id == run_id
    assert envelope.deployment == "gwtest" and envelope.source == "api.strict"


def test_json_that_is_not_json_or_nests_too_deep_is_a_422(stack):
    app = create_app(stack["plan"], results=stack["results"], bootstrap_servers=stack["bootstrap"],
                     max_body_bytes=1024 * 1024)
    cases = [
        (b"[" * 100_000 + b"]" * 100_000, "body: JSON nested deeper than 100 levels"),
        (b'{"n": ' + b"[" * 150 + b"1" + b"]" * 150 + b"}", "body: JSON nested deeper than 100"),
        (b'{"n": NaN}', "body: invalid JSON: NaN is not a JSON value"),
        (b'{"n": Infinity}', "body: invalid JSON: Infinity is not a JSON value"),
        (b'{"n": -Infinity}', "body: invalid JSON: -Infinity is not a JSON value"),
    ]
    topic = naming.endpoint_topic("gw", "gwtest", "strict")
    before = len(read_topic(stack["bootstrap"], topic))
    with AsgiServer(app) as server:
        for body, message in cases:
            answer = httpx.post(f"{server.url}/gw/gwtest/strict", content=body,
                                headers={"content-type": "application/json"})
            assert answer.status_code == 422, (body[:20], answer.text)
            assert message in answer.json()["error"]
    assert len(read_topic(stack["bootstrap"], topic)) == before


def test_bad_sync_timeout_is_a_400_with_or_without_sync(stack):
    for sync in ("?sync=true&", "?", "?sync=false&"):
        for timeout in ("0", "31", "soon", "nan", "inf", "-1"):
            answer = post(stack, "strict", {"n": 1}, f"{sync}timeout={timeout}")
            assert answer.status_code == 400, (sync, timeout, answer.text)
            assert "timeout must be" in answer.json()["error"]
    assert post(stack, "strict", {"n": 1}, "?timeout=5").status_code == 202


def test_a_path_with_no_hooks_completes_at_once_in_sync_mode(stack):
    answer = post(stack, "strict", {"n": 2}, "?sync=true&timeout=5")
    assert answer.status_code == 200 and answer.json()["status"] == "complete"


def test_unknown_run_is_404(stack):
    answer = httpx.get(f"{stack['url']}/gw/gwtest/runs/{uuid.uuid4().hex}")
    assert answer.status_code == 404 and "no run" in answer.json()["error"]


def test_health_metrics_and_openapi(stack):
    assert httpx.get(f"{stack['url']}/healthz").json() == {"status": "ok"}
    assert post(stack, "strict", {"m": 1}).status_code == 422
    metrics = httpx.get(f"{stack['url']}/metrics").text
    assert 'algorail_gateway_requests_total{route="/gw/gwtest/strict",status="422"}' in metrics
    document = httpx.get(f"{stack['url']}/openapi.json").json()
    assert set(document["paths"]) == {"/gw/gwtest/in", "/gw/gwtest/strict",
                                      "/gw/gwtest/runs/{runId}", "/healthz"}
    request = document["paths"]["/gw/gwtest/strict"]["post"]["requestBody"]
    assert request["content"]["application/json"]["schema"]["required"] == ["n"]


def test_api_keys(stack, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# one per line\nsecret-one\nsecret-two\nclé-trois\n", encoding="utf-8")
    from algorail.runtime.gateway import load_api_keys

    app = create_app(stack["plan"], results=stack["results"],
                     bootstrap_servers=stack["bootstrap"], api_keys=load_api_keys(keys))
    with AsgiServer(app) as server:
        url = f"{server.url}/gw/gwtest/strict"
        assert httpx.post(url, json={"n": 1}).status_code == 401
        assert httpx.post(url, json={"n": 1}, headers={"x-api-key": "nope"}).status_code == 401
        for sent in ("sécret-one".encode(), "secret-one\u00e9".encode("latin-1")):
            assert httpx.post(url, json={"n": 1}, headers={"x-api-key": sent}).status_code == 401
            bearer = {"authorization": b"Bearer " + sent}
            assert httpx.post(url, json={"n": 1}, headers=bearer).status_code == 401
        ok = httpx.post(url, json={"n": 1}, headers={"authorization": "Bearer secret-two"})
        assert ok.status_code == 202
        run_url = f"{server.url}/gw/gwtest/runs/{ok.json()['runId']}"
        assert httpx.get(run_url).status_code == 401
        assert httpx.get(run_url, headers={"x-api-key": "secret-one"}).status_code == 200
        assert httpx.get(run_url, headers={"x-api-key": "clé-trois".encode()}).status_code == 200
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_an_unreachable_results_store_is_a_503_that_says_so(stack):
    dead = RedisResultsStore("redis://127.0.0.1:1/0")
    app = create_app(stack["plan"], results=dead, bootstrap_servers=stack["bootstrap"])
    with AsgiServer(app) as server:
        answer = httpx.post(f"{server.url}/gw/gwtest/strict", json={"n": 1})
    assert answer.status_code == 503
    assert "check that Redis is running" in answer.json()["error"]
    assert "nothing entered the pipeline" in answer.json()["error"]
