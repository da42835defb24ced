"""Kafka Connect for a plan's data sources and sinks.

Rendering (used by the CLI, the charts and the Pulumi program):
- `render_config`: the REST config of one connector (the connector plugin's own
  `kafka_connect_config`, plus its name);
- `kafka_connector_resource`: the same as a Strimzi ``KafkaConnector`` custom resource;
- `connect_build_plugins` / `kafka_connect_build`: the Strimzi ``KafkaConnect`` ``spec.build``
  section listing the plugin artifacts the worker image needs, `worker_config` the
  worker settings the rendered configs rely on (config providers, client overrides), and
  `worker_group` those with the Connect group and its storage topics, as each Strimzi API
  version (`STRIMZI_API_VERSIONS`) wants them.

`KafkaConnectClient` talks to a Connect cluster's REST API for clusters Strimzi does not
manage: apply (idempotent), status with task states and traces, delete (idempotent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from algorail.backoff import Backoff
from algorail.errors import AlgorailError

# The Strimzi APIs algorail renders for: Strimzi 1.x serves only `v1` (the default), 0.4x
# only `v1beta2`. The CLI, the operator and the Pulumi program take their choices from here.
STRIMZI_API_VERSIONS = ("kafka.strimzi.io/v1", "kafka.strimzi.io/v1beta2")
STRIMZI_API_VERSION = STRIMZI_API_VERSIONS[0]
DEFAULT_CLUSTER = "algorail-connect"
CONNECT_URL_ENV = "ALGORAIL_CONNECT_URL"


class KafkaConnectError(AlgorailError):
    """Kafka Connect refused a request or cannot be reached."""


def _registry(registry: Any) -> Any:
    if registry is None:
        from algorail.plugin_manager import get_registry

        registry = get_registry()
    return registry


def connector_plugin(cp: Any, registry: Any = None) -> Any:
    connector = _registry(registry).connectors.get(cp.connector)
    if connector is None:
        raise AlgorailError(f"{cp.kind} {cp.name!r}: no connector named {cp.connector!r} "
                            "is installed; see `algorail plugins`")
    return connector


def connector_name(plan: Any, cp: Any) -> str:
    return cp.connect_name


def render_config(plan: Any, cp: Any, registry: Any = None) -> dict[str, str]:
    """The Kafka Connect REST config of one data source or sink, with its ``name``."""
    config = connector_plugin(cp, registry).kafka_connect_config(cp)
    return {"name": connector_name(plan, cp), **config}


def render_plan(plan: Any, registry: Any = None) -> dict[str, dict[str, str]]:
    return {connector_name(plan, cp): render_config(plan, cp, registry) for cp in plan.connectors}


def kafka_connector_resource(plan: Any, cp: Any, cluster: str = DEFAULT_CLUSTER,
                             namespace: str | None = None, registry: Any = None,
                             api_version: str = STRIMZI_API_VERSION) -> dict[str, Any]:
    """A Strimzi ``KafkaConnector`` for one data source or sink, run by `cluster`. Its
    spec (class, tasksMax, config) is the same in both API versions."""
    config = render_config(plan, cp, registry)
    name = config.pop("name")
    connector_class = config.pop("connector.class")
    tasks_max = int(config.pop("tasks.max"))
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "strimzi.io/cluster": cluster,
            "app.kubernetes.io/managed-by": "algorail",
            "algorail.io/deployment": plan.deployment.lower(),
            "algorail.io/component": cp.name.lower(),
        },
        "annotations": {"algorail.io/id": cp.id},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": api_version,
        "kind": "KafkaConnector",
        "metadata": metadata,
        "spec": {"class": connector_class, "tasksMax": tasks_max, "config": config},
    }


def kafka_connector_resources(plan: Any, cluster: str = DEFAULT_CLUSTER,
                              namespace: str | None = None, registry: Any = None,
                              api_version: str = STRIMZI_API_VERSION) -> list[dict]:
    return [kafka_connector_resource(plan, cp, cluster, namespace, registry, api_version)
            for cp in plan.connectors]


def connect_build_plugins(connectors: list[str] | None = None, registry: Any = None) -> list[dict]:
    """Strimzi ``spec.build.plugins`` entries for the named connectors (default: all
    installed), each plugin once. Connectors with no ``plugin`` need none (MirrorMaker 2
    ships with Kafka)."""
    installed = _registry(registry).connectors
    names = connectors if connectors is not None else sorted(installed)
    plugins: dict[str, dict] = {}
    for name in names:
        plugin = getattr(installed.get(name), "plugin", None)
        if plugin is not None:
            plugins.setdefault(plugin.name, plugin.strimzi())
    return list(plugins.values())


def worker_config() -> dict[str, str]:
    """KafkaConnect ``spec.config`` entries the rendered connector configs need: the
    config providers that resolve ``${secrets:...}``, ``${file:...}``, ``${directory:...}``
    and ``${env:...}``, and the client override policy the external-Kafka sink uses."""
    provider = "org.apache.kafka.common.config.provider."
    return {
        "config.providers": "secrets,env,file,directory",
        "config.providers.secrets.class": "io.strimzi.kafka.KubernetesSecretConfigProvider",
        "config.providers.env.class": provider + "EnvVarConfigProvider",
        "config.providers.file.class": provider + "FileConfigProvider",
        "config.providers.directory.class": provider + "DirectoryConfigProvider",
        "connector.client.config.override.policy": "All",
    }


def worker_group(cluster: str, api_version: str = STRIMZI_API_VERSION) -> dict[str, Any]:
    """The KafkaConnect ``spec`` entries of the Connect group named after `cluster`: its
    group id and storage topics, plus `worker_config`. `v1` requires them as spec fields
    (and refuses them in ``config``); `v1beta2` takes them as worker config entries."""
    group = {"groupId": f"{cluster}-cluster", "offsetStorageTopic": f"{cluster}-offsets",
             "configStorageTopic": f"{cluster}-configs", "statusStorageTopic": f"{cluster}-status"}
    config: dict[str, Any] = {
        "config.storage.replication.factor": -1,
        "offset.storage.replication.factor": -1,
        "status.storage.replication.factor": -1,
        **worker_config(),
    }
    if api_version.endswith("/v1beta2"):
        keys = {"groupId": "group.id", "offsetStorageTopic": "offset.storage.topic",
                "configStorageTopic": "config.storage.topic",
                "statusStorageTopic": "status.storage.topic"}
        return {"config": {**{keys[k]: v for k, v in group.items()}, **config}}
    return {**group, "config": config}


def kafka_connect_build(image: str, push_secret: str | None = None,
                        connectors: list[str] | None = None, registry: Any = None) -> dict:
    """The whole Strimzi ``KafkaConnect`` ``spec.build`` section: where the built worker
    image goes and the plugins in it."""
    output: dict[str, Any] = {"type": "docker", "image": image}
    if push_secret:
        output["pushSecret"] = push_secret
    return {"output": output, "plugins": connect_build_plugins(connectors, registry)}


# -- the REST client ------------------------------------------------------------------------


@dataclass
class TaskState:
    id: int
    state: str
    worker: str = ""
    trace: str = ""


@dataclass
class ConnectorState:
    name: str
    state: str
    worker: str = ""
    type: str = ""
    tasks: list[TaskState] = field(default_factory=list)
    trace: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == "RUNNING" and all(t.state == "RUNNING" for t in self.tasks)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConnectorState:
        connector = data.get("connector", {})
        return cls(
            name=data.get("name", ""),
            state=connector.get("state", "UNKNOWN"),
            worker=connector.get("worker_id", ""),
            type=data.get("type", ""),
            trace=connector.get("trace", ""),
            tasks=[TaskState(t.get("id", 0), t.get("state", "UNKNOWN"), t.get("worker_id", ""),
                             t.get("trace", "")) for t in data.get("tasks", [])],
        )


class KafkaConnectClient:
    """The Kafka Connect REST API calls algorail needs. A 409 (a rebalance in progress)
    is retried a few times with backoff, as the API asks."""

    def __init__(self, url: str, timeout: float = 10.0, retries: int = 5,
                 backoff_s: float = 0.5):
        import httpx

        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = Backoff(backoff_s, backoff_s * 2 ** retries)
        self.http = httpx.Client(base_url=self.url, timeout=timeout,
                                 headers={"accept": "application/json"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> KafkaConnectClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _request(self, method: str, path: str, body: Any = None, ok=(200,)) -> Any:
        import httpx

        waits = self.backoff.delays()
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError as exc:
                raise KafkaConnectError(
                    f"cannot reach Kafka Connect at {self.url}: {exc}; check --connect-url "
                    f"or {CONNECT_URL_ENV}") from None
            if response.status_code != 409 or attempt == self.retries:
                break
            time.sleep(next(waits))
        if response.status_code not in ok:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise KafkaConnectError(
                f"Kafka Connect at {self.url} answered {method} {path} with "
                f"HTTP {response.status_code}: {message}")
        return response

    def plugin_classes(self) -> set[str]:
        return {p["class"] for p in self._request("GET", "/connector-plugins").json()}

    def config(self, name: str) -> dict[str, str] | None:
        response = self._request("GET", f"/connectors/{name}/config", ok=(200, 404))
        return response.json() if response.status_code == 200 else None

    def apply(self, name: str, config: dict[str, str]) -> str:
        """Create or update a connector: "created", "updated" or "unchanged"."""
        body = {k: v for k, v in config.items()}
        body["name"] = name
        if self.config(name) == body:
            return "unchanged"
        connector_class = body.get("connector.class", "")
        if connector_class not in self.plugin_classes():
            raise KafkaConnectError(
                f"Kafka Connect at {self.url} has no plugin {connector_class!r} for connector "
                f"{name!r}; add it to the worker image (`algorail connectors plugins`)")
        response = self._request("PUT", f"/connectors/{name}/config", body, ok=(200, 201))
        return "created" if response.status_code == 201 else "updated"

    def status(self, name: str) -> ConnectorState | None:
        response = self._request("GET", f"/connectors/{name}/status", ok=(200, 404))
        return ConnectorState.from_json(response.json()) if response.status_code == 200 else None

    def delete(self, name: str) -> str:
        """Remove a connector: "deleted", or "absent" when there was none."""
        response = self._request("DELETE", f"/connectors/{name}", ok=(200, 204, 404))
        return "absent" if response.status_code == 404 else "deleted"


def apply_plan(client: KafkaConnectClient, plan: Any,
               registry: Any = None) -> list[tuple[str, str]]:
    """Apply every data source and sink of `plan`; (connector name, outcome) pairs."""
    return [(name, client.apply(name, config))
            for name, config in render_plan(plan, registry).items()]


def status_plan(client: KafkaConnectClient, plan: Any) -> list[tuple[str, ConnectorState | None]]:
    names = [connector_name(plan, cp) for cp in plan.connectors]
    return [(name, client.status(name)) for name in names]


def delete_plan(client: KafkaConnectClient, plan: Any) -> list[tuple[str, str]]:
    return [(name, client.delete(name)) for name in (connector_name(plan, cp)
                                                     for cp in plan.connectors)]
