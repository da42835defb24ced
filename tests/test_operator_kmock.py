"""The operator's kopf handlers against a Kubernetes API over real HTTP (kmock, a stateful
API mock server on 127.0.0.1): apply a Pipeline, see its objects and status appear, edit
it, delete it. The API is a mock: no garbage collector, no controllers, no admission."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kube_api import serve_resources, write_kubeconfig

kmock = pytest.importorskip("kmock", reason="kmock is in the test extra")
pytest.importorskip("kopf", reason="kopf is in the operator extra")

import kopf  # noqa: E402

from algorail.operator.handlers import OperatorConfig, registry, run_operator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "k8s" / "hello-pipeline.yaml"
NAMESPACE = "pipelines"
PIPELINES = f"/apis/algorail.io/v1/namespaces/{NAMESPACE}/pipelines"


@pytest.fixture
def api(kmock, tmp_path, monkeypatch):
    # kopf discovers CRDs and namespaces (the operator below does not scan them: kmock 0.8
    # cannot list a cluster-scoped resource of the core group).
    serve_resources(kmock)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url), NAMESPACE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kmock


@pytest.fixture
def operator(api):
    """The operator in a thread of its own, stopped (and joined) after the test."""
    yield from _operator(OperatorConfig(namespaces=[NAMESPACE], resync_seconds=2.0))


@pytest.fixture
def seldon_operator(api):
    """The operator with --watch-seldon."""
    api.resources["mlops.seldon.io/v1alpha1/pipelines"] = api.ResourceInfo(
        kind="Pipeline", namespaced=True, verbs={"list", "watch", "get", "create", "patch",
                                                 "delete"})
    yield from _operator(OperatorConfig(namespaces=[NAMESPACE], resync_seconds=2.0,
                                        watch_seldon=True))


def _operator(config: OperatorConfig):
    stop, ready = threading.Event(), threading.Event()
    handlers = registry(config)

    @kopf.on.startup(registry=handlers)
    def no_scanning(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.scanning.disabled = True  # watch the namespace given, not the namespace list

    thread = threading.Thread(target=run_operator, args=(config,), daemon=True, kwargs={
        "handlers": handlers, "stop_flag": stop, "ready_flag": ready})
    thread.start()
    assert ready.wait(30), "the operator did not start"
    yield
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


async def _until(check, timeout: float = 30.0) -> Any:
    """Poll `check` (an async callable) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {check.__name__}")


async def _invalid_spec_event(http: httpx.AsyncClient) -> dict[str, Any]:
    """The first InvalidSpec Event the operator writes in the namespace (waited for)."""

    async def warned():
        response = await http.get(f"/api/v1/namespaces/{NAMESPACE}/events")
        return [e for e in response.json()["items"] if e.get("reason") == "InvalidSpec"]
    return (await _until(warned))[0]


def _pipeline() -> dict[str, Any]:
    resource = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    # kmock keeps what it is given: the fields the API server would set are set here.
    resource["metadata"].update(namespace=NAMESPACE, uid="uid-hello", generation=1,
                                resourceVersion="1")
    return resource


@pytest.mark.slow
@pytest.mark.asyncio
async def test_apply_edit_delete_a_pipeline(api, operator):
    async with httpx.AsyncClient(base_url=str(api.url), timeout=10) as http:
        async def get(path: str) -> dict[str, Any] | None:
            response = await http.get(path)
            return response.json() if response.status_code == 200 else None

        deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
        topics = f"/apis/kafka.strimzi.io/v1/namespaces/{NAMESPACE}/kafkatopics"
        resource = _pipeline()
        assert (await http.post(PIPELINES, json=resource)).status_code < 300

        # Applied: the owned objects and the status appear.
        async def runner_created():
            return await get(f"{deployments}/alice-hello-upper")
        runner = await _until(runner_created)
        assert runner["metadata"]["ownerReferences"][0]["name"] == "hello"

        async def status_written():
            body = await get(f"{PIPELINES}/hello")
            return body if (body or {}).get("status", {}).get("planHash") else None
        status = (await _until(status_written))["status"]
        assert status["planVersion"] == "1.0.0"
        assert status["endpoints"] == ["/alice/hello/in"]
        assert {c["type"] for c in status["conditions"]} == {"Ready", "Progressing", "Degraded"}
        topic_names = {t["spec"]["topicName"] for t in (await get(topics))["items"]}
        assert "alice.hello.in" in topic_names

        async def applied_event():
            events = (await get(f"/api/v1/namespaces/{NAMESPACE}/events")) or {"items": []}
            return [e for e in events["items"] if e.get("reason") == "Applied"]
        event = (await _until(applied_event))[0]
        assert event["involvedObject"]["name"] == "hello"
        assert "applied 18 objects" in event["message"]  # 3 of them upper's retry topics

        # Level-based: an owned object deleted by hand comes back on the next resync.
        assert (await http.delete(f"{deployments}/alice-hello-upper")).status_code < 300
        await _until(runner_created)

        # Edited: a second algo appears; then removed again, it is pruned.
        edited = copy.deepcopy(resource)
        spec = edited["spec"]
        spec["algos"].append({**copy.deepcopy(spec["algos"][0]), "name": "again"})
        spec["pipes"] = [{"from": "api.in", "to": "upper.text"},
                         {"from": "upper.result", "to": "again.text"},
                         {"from": "again.result", "to": "result"}]
        patched = await http.patch(f"{PIPELINES}/hello", json={"spec": spec},
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert patched.status_code < 300

        async def second_runner():
            return await get(f"{deployments}/alice-hello-again")
        await _until(second_runner)

        spec = copy.deepcopy(resource["spec"])
        await http.patch(f"{PIPELINES}/hello", json={"spec": spec},
                         headers={"Content-Type": "application/merge-patch+json"})

        async def second_runner_pruned():
            return await get(f"{deployments}/alice-hello-again") is None
        await _until(second_runner_pruned)

        # Deleted: the finalizer runs, owned objects go, the topics stay (no cleanTopicsOnDelete).
        topic_names = {t["spec"]["topicName"] for t in (await get(topics))["items"]}
        await http.delete(f"{PIPELINES}/hello")

        async def pipeline_gone():
            return await get(f"{PIPELINES}/hello") is None
        await _until(pipeline_gone)
        assert await get(f"{deployments}/alice-hello-upper") is None
        assert {t["spec"]["topicName"] for t in (await get(topics))["items"]} == topic_names


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_invalid_pipeline_gets_a_condition_and_a_warning_event(api, operator):
    resource = _pipeline()
    resource["spec"]["pipes"].append({"from": "nowhere.out", "to": "upper.text"})
    async with httpx.AsyncClient(base_url=str(api.url), timeout=10) as http:
        assert (await http.post(PIPELINES, json=resource)).status_code < 300

        event = await _invalid_spec_event(http)
        assert event["type"] == "Warning" and "nowhere" in event["message"]

        async def condition_written():
            status = (await http.get(f"{PIPELINES}/hello")).json().get("status", {})
            return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        ready = await _until(condition_written)
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
        assert "nowhere" in ready["message"]
        deployments = await http.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
        assert deployments.json()["items"] == []


@pytest.mark.slow
@pytest.mark.asyncio
async def test_walkthrough_apply_answer_edit_delete(api, operator, broker):
    """docs/operator.md from `kubectl apply` to a pipeline that answers: the operator
    writes the plan ConfigMap, the gateway and hook dispatcher follow the namespace's plan
    ConfigMaps (as `--plans-from-cluster` does, here against kmock), a runner started from
    that plan plays the runner Deployment, and a sync request answers; an edit is served
    without a restart, and a delete takes the paths away."""
    from conftest import AsgiServer

    from algorail.plan import Plan
    from algorail.runtime.fleet import HookFleet
    from algorail.runtime.kafka_io import ensure_topics
    from algorail.runtime.plans import ClusterSource, PlanWatcher
    from algorail.runtime.results import MemoryResultsStore
    from algorail.runtime.router import PlanRouter
    from algorail.runtime.runner import Runner

    bootstrap = broker.bootstrap_servers
    results = MemoryResultsStore()
    watcher = PlanWatcher(ClusterSource(NAMESPACE, server=str(api.url).rstrip("/")),
                          interval=0.2)
    fleet = HookFleet(bootstrap, results, drain_seconds=5)
    watcher.subscribe(fleet.apply)
    server = AsgiServer(PlanRouter(watcher, results=results, bootstrap_servers=bootstrap))
    # kmock answers from this test's event loop: what blocks runs in threads
    await asyncio.to_thread(server.start)
    runner = thread = None
    try:
        async with httpx.AsyncClient(base_url=str(api.url), timeout=10) as http, \
                httpx.AsyncClient(base_url=server.url, timeout=40) as gateway:
            async def pipelines():
                return (await gateway.get("/healthz")).json()["pipelines"]

            resource = _pipeline()
            assert (await http.post(PIPELINES, json=resource)).status_code < 300

            async def served():
                return await pipelines() == ["alice/hello"]
            await _until(served)
            config_map = (await http.get(
                f"/api/v1/namespaces/{NAMESPACE}/configmaps/alice-hello-plan")).json()
            plan = Plan.model_validate_json(config_map["data"]["plan.json"])
            await asyncio.to_thread(ensure_topics, bootstrap, plan.created_topics())
            assert await asyncio.to_thread(fleet.wait_ready, 30)
            runner = await asyncio.to_thread(Runner(plan, "upper", bootstrap).start)
            thread = threading.Thread(target=runner.run, daemon=True)
            thread.start()
            answer = await gateway.post("/alice/hello/in?sync=true&timeout=30",
                                        json={"text": "hi"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"] == {"result": {"text": "HI"}}
            assert answer.json()["plan"]["version"] == "1.0.0"

            # kubectl edit: a new version with a second path straight to a new hook
            spec = copy.deepcopy(resource["spec"])
            spec["version"] = "1.1.0"
            spec["endpoints"][0]["paths"].append({"name": "echo"})
            spec["hooks"].append({"name": "echoed", "type": "response"})
            spec["pipes"].append({"from": "api.echo", "to": "echoed"})
            patched = await http.patch(f"{PIPELINES}/hello", json={"spec": spec},
                                       headers={"Content-Type": "application/merge-patch+json"})
            assert patched.status_code < 300

            async def new_path_served():
                status = (await gateway.post("/alice/hello/echo", json={})).status_code
                return status == 202
            await _until(new_path_served)
            await asyncio.to_thread(ensure_topics, bootstrap, ["alice.hello.echo"])
            assert await asyncio.to_thread(fleet.wait_ready, 30)
            answer = await gateway.post("/alice/hello/echo?sync=true&timeout=30",
                                        json={"n": 1})
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"] == {"echoed": {"n": 1}}
            assert answer.json()["plan"]["version"] == "1.1.0"
            answer = await gateway.post("/alice/hello/in?sync=true&timeout=30",
                                        json={"text": "again"})
            assert answer.json()["results"] == {"result": {"text": "AGAIN"}}

            # kubectl delete: the plan ConfigMap goes with the Pipeline, and so do its paths
            await http.delete(f"{PIPELINES}/hello")

            async def dropped():
                return await pipelines() == []
            await _until(dropped)
            assert (await gateway.post("/alice/hello/in", json={"text": "x"})).status_code == 404
    finally:
        if runner is not None:
            runner.stop()
            await asyncio.to_thread(thread.join, 15)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(fleet.stop)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_watch_seldon_mirrors_a_seldon_pipeline_as_an_algorail_one(api, seldon_operator):
    """`--watch-seldon`: a Seldon Pipeline with the namespace's bindings ConfigMap becomes
    an algorail Pipeline owned by it; a step left unbound is a Warning Event; deleting the
    Seldon Pipeline deletes the algorail one."""
    from algorail.seldon import seldon_to_algorail
    from algorail.spec import load_bindings

    seldon_dir = EXAMPLE.parent.parent / "seldon"
    manifest = yaml.safe_load((seldon_dir / "tfsimples.yaml").read_text())
    manifest["metadata"].update(namespace=NAMESPACE, uid="uid-seldon", resourceVersion="1")
    seldon_pipelines = f"/apis/mlops.seldon.io/v1alpha1/namespaces/{NAMESPACE}/pipelines"
    name = manifest["metadata"]["name"]
    async with httpx.AsyncClient(base_url=str(api.url), timeout=10) as http:
        assert (await http.post(seldon_pipelines, json=manifest)).status_code < 300

        event = await _invalid_spec_event(http)
        assert event["involvedObject"]["kind"] == "Pipeline" and "tfsimple1" in event["message"]

        bindings = (seldon_dir / "bindings.yaml").read_text()
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "algorail-seldon-bindings", "namespace": NAMESPACE},
            "data": {"bindings.yaml": bindings}}
        assert (await http.post(f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                                json=config_map)).status_code < 300

        async def mirrored():
            response = await http.get(f"{PIPELINES}/{name}")
            return response.json() if response.status_code == 200 else None
        resource = await _until(mirrored)  # on the next resync, with the bindings
        expected = seldon_to_algorail(manifest, load_bindings(seldon_dir / "bindings.yaml"))
        assert [a["name"] for a in resource["spec"]["algos"]] == [
            a["name"] for a in expected["spec"]["algos"]]
        assert resource["spec"]["pipes"] == expected["spec"]["pipes"]
        assert resource["metadata"]["ownerReferences"][0]["uid"] == "uid-seldon"

        await http.delete(f"{seldon_pipelines}/{name}")

        async def gone():
            return (await http.get(f"{PIPELINES}/{name}")).status_code == 404
        await _until(gone)
