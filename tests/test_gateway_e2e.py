"""End to end with real runners: gateway -> runner(s) -> hook dispatcher -> gateway, over
a real broker and HTTP on loopback, for examples/hello.yaml and the Seldon conditional
example (a branch not taken reaches the response hook as a skip marker)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from conftest import EXAMPLES, AsgiServer

from algorail.plan import compile_plan
from algorail.runtime.gateway import create_app
from algorail.runtime.hooks import HookDispatcher
from algorail.runtime.kafka_io import ensure_topics
from algorail.runtime.results import MemoryResultsStore
from algorail.runtime.runner import Runner
from algorail.spec import load_bindings, load_pipeline


@pytest.fixture(scope="module")
def deployed(module_broker):
    """Both examples deployed at once (runners in threads), and one gateway per plan."""
    bootstrap = module_broker.bootstrap_servers
    seldon = EXAMPLES / "seldon"
    plans = [
        compile_plan(load_pipeline(EXAMPLES / "hello.yaml")),
        compile_plan(load_pipeline(seldon / "conditional.yaml",
                                   bindings=load_bindings(seldon / "bindings.yaml"))),
    ]
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
    assert all(d.wait_ready(30) for d in dispatchers)
    yield {plan.pipeline: server.url for plan, server in zip(plans, servers, strict=True)}
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


@pytest.mark.parametrize("choice, expected", [(0, [10, 20]), (1, [11, 12])])
def test_seldon_conditional_sync_returns_the_branch_taken(deployed, choice, expected):
    url = f"{deployed['tfsimple-conditional']}/default/tfsimple-conditional/inputs"
    started = time.monotonic()
    answer = httpx.post(f"{url}?sync=true&timeout=30", timeout=40,
                        json={"CHOICE": [choice], "INPUT0": [1, 2]})
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 20
    assert answer.json()["results"] == {"outputs": {"OUTPUT": expected}}
