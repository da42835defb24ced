"""The gateway and hook dispatcher following a folder of plans (`--plans-dir`), over a real
broker, real runners and HTTP on loopback: a plan written is served, an update brings its
new routes and hooks without a restart, a run in flight across the update finishes on the
version it started on (its record names it), and a removed plan answers 404."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest
from conftest import AsgiServer, wait_until

from algorail.compiler import compile_plan
from algorail.loader import validate_document
from algorail.runtime.fleet import HookFleet
from algorail.runtime.kafka_io import ensure_topics
from algorail.runtime.plans import DirectorySource, PlanWatcher
from algorail.runtime.results import MemoryResultsStore
from algorail.runtime.router import PlanRouter
from algorail.runtime.runner import Runner

pytestmark = pytest.mark.slow


def pipeline(version: str, hooks: list[str], extra_path: bool = False) -> dict:
    """`echo` copies what api.in gets to each of `hooks`; with `extra_path`, api.direct
    goes straight to the hook `direct`."""
    paths = [{"name": "in"}, *([{"name": "direct"}] if extra_path else [])]
    pipes = [{"from": "api.in", "to": "echo.in"},
             *({"from": "echo.out", "to": h} for h in hooks),
             *([{"from": "api.direct", "to": "direct"}] if extra_path else [])]
    all_hooks = [*hooks, *(["direct"] if extra_path else [])]
    return validate_document({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "live", "name": "echo", "version": version},
        "spec": {
            "endpoints": [{"name": "api", "paths": paths}],
            "algos": [{"name": "echo", "runtime": "python", "entrypoint": "copy:copy",
                       "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]}],
            "hooks": [{"name": h, "type": "response"} for h in all_hooks],
            "pipes": pipes,
        },
    })


def write_plan(folder, name: str, plan) -> None:
    """As kubelet and `mv` do: the new file appears whole."""
    staged = folder / f".{name}.tmp"
    staged.write_text(plan.to_json(), encoding="utf-8")
    os.replace(staged, folder / name)


class EchoRunner:
    def __init__(self, plan, bootstrap: str):
        self.runner = Runner(plan, "echo", bootstrap).start()
        self.thread = threading.Thread(target=self.runner.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(15)


@pytest.fixture
def live(broker, tmp_path):
    bootstrap = broker.bootstrap_servers
    results = MemoryResultsStore()
    watcher = PlanWatcher(DirectorySource(tmp_path), interval=0.2)
    fleet = HookFleet(bootstrap, results, drain_seconds=60)
    watcher.subscribe(fleet.apply)
    router = PlanRouter(watcher, results=results, bootstrap_servers=bootstrap)
    server = AsgiServer(router).start()
    yield {"url": server.url, "dir": tmp_path, "bootstrap": bootstrap, "fleet": fleet}
    server.stop()
    fleet.stop()


def sync(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}?sync=true&timeout=30", json=body, timeout=40)


def test_plans_are_followed_and_runs_finish_on_their_version(live):
    base, folder, bootstrap = live["url"], live["dir"], live["bootstrap"]
    v1 = compile_plan(pipeline("1.0.0", ["result"]))
    v2 = compile_plan(pipeline("2.0.0", ["answer"], extra_path=True))
    ensure_topics(bootstrap, {*v1.created_topics(), *v2.created_topics()})
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "pipelines": []}
    assert httpx.post(f"{base}/live/echo/in", json={}).status_code == 404

    write_plan(folder, "echo.json", v1)
    assert wait_until(lambda: httpx.get(f"{base}/healthz").json()["pipelines"] == ["live/echo"])
    assert live["fleet"].wait_ready(30)
    runner = EchoRunner(v1, bootstrap)
    try:
        answer = sync(f"{base}/live/echo/in", {"n": 1})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == {"result": {"n": 1}}
        assert answer.json()["plan"]["version"] == "1.0.0"
        assert httpx.post(f"{base}/live/echo/direct", json={}).status_code == 404
    finally:
        runner.stop()

    # in flight across the update: accepted on 1.0.0 while no runner reads its topic
    started = httpx.post(f"{base}/live/echo/in", json={"n": 2})
    assert started.status_code == 202
    run_url = f"{base}/live/echo/runs/{started.json()['runId']}"

    write_plan(folder, "echo.json", v2)
    assert wait_until(lambda: httpx.post(f"{base}/live/echo/direct", json={"n": 0}
                                         ).status_code == 202)
    assert live["fleet"].wait_ready(30)
    answer = sync(f"{base}/live/echo/direct", {"n": 3})  # a new route and a new hook
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"] == {"direct": {"n": 3}}
    assert answer.json()["plan"]["version"] == "2.0.0"

    runner = EchoRunner(v2, bootstrap)
    try:
        # the old run completes with the hook 2.0.0 dropped, and names 1.0.0
        deadline = time.monotonic() + 30
        while (view := httpx.get(run_url).json())["status"] == "pending":
            assert time.monotonic() < deadline, view
            time.sleep(0.1)
        assert view["status"] == "complete"
        assert view["results"]["result"] == {"n": 2}
        assert view["plan"]["version"] == "1.0.0"
        answer = sync(f"{base}/live/echo/in", {"n": 4})
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == {"answer": {"n": 4}}
        assert answer.json()["plan"]["version"] == "2.0.0"
        assert answer.json()["plan"]["hash"] != view["plan"]["hash"]
    finally:
        runner.stop()

    (folder / "echo.json").unlink()
    assert wait_until(lambda: httpx.post(f"{base}/live/echo/in", json={}).status_code == 404)
    assert httpx.get(run_url).status_code == 404  # the pipeline's paths are gone with it
    assert httpx.get(f"{base}/healthz").json()["pipelines"] == []
