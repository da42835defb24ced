"""End to end with real runners: gateway -> runner(s) -> hook dispatcher -> gateway, over
a real broker and HTTP on loopback, for examples/hello.yaml, the Seldon conditional
example (a branch not taken reaches the response hook as a skip marker), and a `kafka`
endpoint path that clients produce to directly."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager

import httpx
import pytest
from conftest import EXAMPLES, AsgiServer, wait_until

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline, validate_document
from algorail.runtime import codec, kafka_io
from algorail.runtime.gateway import create_app
from algorail.runtime.hooks import HookDispatcher
from algorail.runtime.kafka_io import ensure_topics, make_producer
from algorail.runtime.results import MemoryResultsStore
from algorail.runtime.runner import Runner
from algorail.spec import load_bindings

# A `kafka` endpoint path: clients produce to its topic themselves.
KAFKA_ENDPOINT = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "e2e", "name": "streamed", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "events", "type": "kafka"}]}],
        "algos": [{"name": "echo", "runtime": "python", "entrypoint": "copy:copy",
                   "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]}],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [{"from": "api.events", "to": "echo.in"}, {"from": "echo.out", "to": "result"}],
    },
}


@pytest.fixture(scope="module")
def deployed(module_broker):
    """Both examples deployed at once (runners in threads), and one gateway per plan."""
    bootstrap = module_broker.bootstrap_servers
    seldon = EXAMPLES / "seldon"
    plans = [
        compile_plan(load_pipeline(EXAMPLES / "hello.yaml")),
        compile_plan(load_pipeline(seldon / "conditional.yaml",
                                   bindings=load_bindings(seldon / "bindings.yaml"))),
        compile_plan(validate_document(KAFKA_ENDPOINT)),
        compile_plan(load_pipeline(seldon / "error.yaml",
                                   bindings=load_bindings(seldon / "bindings.yaml"))),
    ]
    with deploy(plans, bootstrap) as servers:
        urls = {plan.pipeline: server.url for plan, server in zip(plans, servers, strict=True)}
        yield {**urls, "bootstrap": bootstrap, "streamed-plan": plans[2]}


@contextmanager
def deploy(plans, bootstrap):
    """Runners in threads, a hook dispatcher and a gateway per plan: yields the gateways."""
    runners, threads, dispatchers, servers = [], [], [], []
    for plan in plans:
        ensure_topics(bootstrap, plan.created_topics())
        results = MemoryResultsStore()
        dispatchers.append(HookDispatcher(plan, bootstrap, results).start())
        for spec in plan.runners:
            runner = Runner(plan, spec.component, bootstrap).start()
            runners.append(runner)
            threads.append(threading.Thread(target=runner.run, daemon=True))
            threads[-1].start()
        app = create_app(plan, results=results, bootstrap_servers=bootstrap)
        servers.append(AsgiServer(app).start())
    try:
        assert all(d.wait_ready(30) for d in dispatchers)
        # every runner has its partitions before a test (one switches the Kafka client) runs
        assert all(r.ready.wait(30) for r in runners)
        yield servers
    finally:
        for server in servers:
            server.stop()
        for runner in runners:
            runner.stop()
        for thread in threads:
            thread.join(15)
        for dispatcher in dispatchers:
            dispatcher.stop()


def test_async_then_get_through_a_real_runner(deployed):
    base = deployed["hello"]
    answer = httpx.post(f"{base}/alice/hello/in", json={"text": "async hello"})
    assert answer.status_code == 202
    run_url = f"{base}/alice/hello/runs/{answer.json()['runId']}"
    deadline = time.monotonic() + 30
    while (body := httpx.get(run_url).json())["status"] == "pending":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body == {**body, "status": "complete", "results": {"result": {"text": "ASYNC HELLO"}}}


def test_sync_through_one_algo(deployed):
    answer = httpx.post(f"{deployed['hello']}/alice/hello/in?sync=true&timeout=30",
                        json={"text": "sync hello"}, timeout=40)
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == {"result": {"text": "SYNC HELLO"}}


def test_sync_and_async_through_one_algo_on_the_other_kafka_client(module_broker, monkeypatch):
    """The tests above run on the session's Kafka client; this one on the other."""
    other = next(c for c in kafka_io.CLIENTS if c != kafka_io.client_name())
    monkeypatch.setenv(kafka_io.CLIENT_ENV, other)
    plan = compile_plan(load_pipeline(EXAMPLES / "hello.yaml"), deployment=f"hello-{other}")
    with deploy([plan], module_broker.bootstrap_servers) as [server]:
        base = f"{server.url}/alice/hello-{other}"
        answer = httpx.post(f"{base}/in?sync=true&timeout=30", json={"text": "sync"}, timeout=40)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == {"result": {"text": "SYNC"}}
        accepted = httpx.post(f"{base}/in", json={"text": "async"})
        assert accepted.status_code == 202
        run_url = f"{base}/runs/{accepted.json()['runId']}"
        assert wait_until(lambda: httpx.get(run_url).json()["status"] == "complete", 30)
        assert httpx.get(run_url).json()["results"] == {"result": {"text": "ASYNC"}}


@pytest.mark.parametrize("choice, expected", [(0, [10, 20]), (1, [11, 12])])
def test_seldon_conditional_sync_returns_the_branch_taken(deployed, choice, expected):
    url = f"{deployed['tfsimple-conditional']}/default/tfsimple-conditional/inputs"
    started = time.monotonic()
    answer = httpx.post(f"{url}?sync=true&timeout=30", timeout=40,
                        json={"CHOICE": [choice], "INPUT0": [1, 2]})
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 20
    assert answer.json()["results"] == {"outputs": {"OUTPUT": expected}}


@pytest.mark.parametrize("choice, expected", [(0, [10, 20]), (1, [11, 12])])
def test_seldon_clients_speak_v2_at_the_seldon_url(deployed, choice, expected):
    """A V2 inference request in, a V2 inference response out, as a Seldon client expects."""
    url = f"{deployed['tfsimple-conditional']}/v2/pipelines/tfsimple-conditional/infer"
    request = {"inputs": [
        {"name": "CHOICE", "shape": [1], "datatype": "INT32", "data": [choice]},
        {"name": "INPUT0", "shape": [2], "datatype": "INT32", "data": [1, 2]},
    ]}
    answer = httpx.post(url, json=request, timeout=40)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "tfsimple-conditional" and body["id"]
    assert body["outputs"] == [
        {"name": "OUTPUT", "datatype": "INT32", "shape": [2], "data": expected}]


def test_v2_requests_at_the_path_and_bad_v2_bodies(deployed):
    base = f"{deployed['tfsimple-conditional']}"
    request = {"inputs": [{"name": "CHOICE", "shape": [1], "datatype": "INT64", "data": [0]},
                          {"name": "INPUT0", "shape": [2], "datatype": "INT64",
                           "data": [3, 4]}]}
    answer = httpx.post(f"{base}/default/tfsimple-conditional/inputs?sync=true&timeout=30",
                        json=request, timeout=40)
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == {
        "outputs": {"OUTPUT": {"datatype": "INT64", "shape": [2], "data": [30, 40]}}}
    bad = httpx.post(f"{base}/v2/pipelines/tfsimple-conditional/infer",
                     json={"inputs": [{"shape": [1], "data": [1]}]}, timeout=10)
    assert bad.status_code == 400 and "each with a name" in bad.json()["error"]


def test_seldon_errors_abort_the_run_and_answer_400(deployed):
    """Seldon's `error` example: the step raises on an outlier; the V2 call says so."""
    url = f"{deployed['error']}/v2/pipelines/error/infer"
    fine = httpx.post(url, json={"inputs": [{"name": "INPUT", "shape": [2], "datatype": "INT32",
                                             "data": [1, 2]}]}, timeout=40)
    assert fine.status_code == 200, fine.text
    assert fine.json()["outputs"][0]["data"] == [1, 2]
    outlier = httpx.post(url, json={"inputs": [{"name": "INPUT", "shape": [1],
                                                "datatype": "INT32", "data": [500]}]},
                         timeout=40)
    assert outlier.status_code == 400, outlier.text
    assert "outlier detected" in outlier.json()["error"]


def test_a_kafka_endpoint_run_is_read_through_the_gateway(deployed):
    plan, base = deployed["streamed-plan"], deployed["streamed"]
    [route] = plan.routes
    assert httpx.post(f"{base}{route.url}", json={}).status_code in (404, 405)
    listed = httpx.get(f"{base}/openapi.json").json()["x-algorail-kafka-endpoints"]
    assert listed == [{"path": "events", "topic": route.topic,
                       "contentType": "application/json"}]
    run_id = uuid.uuid4().hex
    producer = make_producer(deployed["bootstrap"])
    producer.send(route.topic, value=json.dumps({"event": 1}).encode(),
                  headers=codec.Envelope(run_id=run_id).to_headers()).get(timeout=10)
    producer.close()
    run_url = f"{base}/e2e/streamed/runs/{run_id}"
    deadline = time.monotonic() + 30
    while (answer := httpx.get(run_url)).status_code == 404 or (
            answer.json()["status"] != "complete"):
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)
    assert answer.json()["results"] == {"result": {"event": 1}}
