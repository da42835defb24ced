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

kmock = pytest.importorskip("kmock", reason="kmock is in the test extra")
pytest.importorskip("kopf", reason="kopf is in the operator extra")

import kopf  # noqa: E402

from algorail.operator.handlers import OperatorConfig, registry, run_operator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "k8s" / "hello-pipeline.yaml"
NAMESPACE = "pipelines"
RESOURCES = {
    "algorail.io/v1/pipelines": "Pipeline",
    "v1/configmaps": "ConfigMap",
    "v1/serviceaccounts": "ServiceAccount",
    "v1/events": "Event",
    "apps/v1/deployments": "Deployment",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
    "networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
    "kafka.strimzi.io/v1/kafkatopics": "KafkaTopic",
    "kafka.strimzi.io/v1/kafkaconnectors": "KafkaConnector",
    "getambassador.io/v3alpha1/mappings": "Mapping",
    "monitoring.coreos.com/v1/podmonitors": "PodMonitor",
}
PIPELINES = f"/apis/algorail.io/v1/namespaces/{NAMESPACE}/pipelines"


@pytest.fixture
def api(kmock, tmp_path, monkeypatch):
    # kopf discovers CRDs and namespaces (the operator below does not scan them: kmock 0.8
    # cannot list a cluster-scoped resource of the core group).
    kmock.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch"})
    kmock.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs={"list", "watch"})
    for key, kind in RESOURCES.items():
        kmock.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=True,
            subresources={"status"} if kind == "Pipeline" else set(),
            verbs={"list", "watch", "get", "create", "patch", "delete"})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test",
                                                   "namespace": NAMESPACE}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kmock


@pytest.fixture
def operator(api):
    """The operator in a thread of its own, stopped (and joined) after the test."""
    stop, ready = threading.Event(), threading.Event()
    config = OperatorConfig(namespaces=[NAMESPACE], resync_seconds=2.0)
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
        assert "applied 15 objects" in event["message"]

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

        async def warned():
            response = await http.get(f"/api/v1/namespaces/{NAMESPACE}/events")
            return [e for e in response.json()["items"] if e.get("reason") == "InvalidSpec"]
        event = (await _until(warned))[0]
        assert event["type"] == "Warning" and "nowhere" in event["message"]

        async def condition_written():
            status = (await http.get(f"{PIPELINES}/hello")).json().get("status", {})
            return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        ready = await _until(condition_written)
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
        assert "nowhere" in ready["message"]
        deployments = await http.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")
        assert deployments.json()["items"] == []
