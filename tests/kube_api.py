"""A Kubernetes API over real HTTP for tests: kmock (PyPI; a stateful API mock server
written for testing kopf operators) serving the kinds algorail creates, and a kubeconfig
pointing at it. `KubeApiThread` runs it in a thread with its own event loop, for tests
whose code under test calls the API synchronously (the registry).

kmock keeps what it is given: no garbage collector, no controllers, no admission, and
fields the API server would set (uid, generation) only when the test sets them.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import yaml

# API resource ("group/version/plural") -> kind, every kind the operator creates or reads.
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


def serve_resources(api: Any, resources: dict[str, str] = RESOURCES) -> None:
    """Make kmock serve `resources` (Pipelines with a status subresource), and the
    cluster-scoped lists kopf looks at."""
    import kmock

    api.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch"})
    api.resources["v1/namespaces"] = kmock.ResourceInfo(
        kind="Namespace", namespaced=False, verbs={"list", "watch"})
    for key, kind in resources.items():
        api.resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=True,
            subresources={"status"} if kind == "Pipeline" else set(),
            verbs={"list", "watch", "get", "create", "patch", "delete"})


def write_kubeconfig(path: Path, server: str, namespace: str) -> Path:
    """A kubeconfig whose current context is `server` with a bearer token."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server.rstrip("/")}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test",
                                                   "namespace": namespace}}],
    }))
    return path


class KubeApiThread:
    """kmock serving `resources` on 127.0.0.1 from a thread of its own: `start()`, `url`,
    `stop()`. Talk to it over HTTP only (its state belongs to its loop). With
    `discovery_delay`, asking whether Pipelines are served takes that many seconds (a
    deployment then stays "starting" long enough for racing requests to meet it)."""

    def __init__(self, resources: dict[str, str] = RESOURCES, discovery_delay: float = 0.0):
        self.resources = resources
        self.discovery_delay = discovery_delay
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> KubeApiThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("kmock did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import kmock

        self._loop, self._stopped = asyncio.get_running_loop(), asyncio.Event()
        async with kmock.KubernetesEmulator() as api, kmock.Server(api):
            serve_resources(api, self.resources)
            if self.discovery_delay:
                api["get /apis/algorail.io/v1"] >> (
                    lambda: asyncio.sleep(self.discovery_delay))
            self.url = str(api.url).rstrip("/")
            self._ready.set()
            await self._stopped.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)
