"""The few Kubernetes API calls the operator makes, over HTTP with the credentials kopf
logged in with: list a Pipeline's objects by label, server-side apply, delete. The
registry's kubernetes target makes its calls with this client too (`login`).

The objects are of any kind the chart renders (Strimzi, Emissary, KEDA ...), so this is a
client for plain JSON objects, not one typed per kind.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from algorail.errors import AlgorailError
from algorail.kafka_connect import STRIMZI_API_VERSIONS

FIELD_MANAGER = "algorail-operator"
# Kinds the operator creates -> their API resource (plural) name.
PLURALS = {
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "KafkaTopic": "kafkatopics",
    "KafkaConnector": "kafkaconnectors",
    "Mapping": "mappings",
    "PodMonitor": "podmonitors",
    "ScaledObject": "scaledobjects",
    "Pipeline": "pipelines",  # algorail.io's, made for Seldon ones (--watch-seldon)
}
# The types listed to find what a Pipeline owns: every type the chart and the operator can
# create (Strimzi in both versions it is served as), whatever this generation wants, so
# what an earlier one created is found and pruned (a ScaledObject after autoscaling is off).
OWNED_TYPES = (
    ("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "NetworkPolicy"),
    *((version, kind) for version in STRIMZI_API_VERSIONS
      for kind in ("KafkaTopic", "KafkaConnector")),
    ("getambassador.io/v3alpha1", "Mapping"), ("monitoring.coreos.com/v1", "PodMonitor"),
    ("keda.sh/v1alpha1", "ScaledObject"),
)


class KubeError(AlgorailError):
    """The API server refused a call; the message names the object and says why."""


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{PLURALS[kind]}"


def object_path(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{collection_path(obj['apiVersion'], obj['kind'], meta['namespace'])}/{meta['name']}"


def login() -> Any:
    """Credentials outside a kopf run, found as kopf finds them: the pod's service account,
    else the kubeconfig (`KUBECONFIG`, or ~/.kube/config) and its current context."""
    import kopf
    import yaml

    settings = kopf.OperatorSettings()
    try:
        info = (kopf.login_with_service_account(settings=settings)
                or kopf.login_with_kubeconfig(settings=settings))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise KubeError(f"cannot read the Kubernetes credentials ({exc}): point KUBECONFIG "
                        "at a readable kubeconfig (default ~/.kube/config)") from None
    if info is None:
        raise KubeError("no Kubernetes credentials: run in a pod with a service account, or "
                        "point KUBECONFIG at a kubeconfig (default ~/.kube/config)")
    return info


class Kube:
    """An async client for one API server, from kopf's `ConnectionInfo`; what it applies
    is owned by `field_manager`."""

    def __init__(self, info: Any, field_manager: str = FIELD_MANAGER):
        self.field_manager = field_manager
        headers = {}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = (info.username, info.password) if info.username and info.password else None
        self._files: list[Any] = []
        self.client = httpx.AsyncClient(base_url=info.server, headers=headers, auth=auth,
                                        verify=self._tls(info), timeout=30)

    def _tls(self, info: Any) -> ssl.SSLContext | bool:
        if info.insecure:
            return False
        context = ssl.create_default_context(
            cafile=info.ca_path,
            cadata=base64.b64decode(info.ca_data).decode() if info.ca_data else None)
        cert, key = info.certificate_path, info.private_key_path
        if info.certificate_data and info.private_key_data:
            cert, key = self._file(info.certificate_data), self._file(info.private_key_data)
        if cert:
            context.load_cert_chain(cert, key)
        return context

    def _file(self, data: bytes | str) -> str:
        handle = tempfile.NamedTemporaryFile(prefix="algorail-operator-", suffix=".pem")
        handle.write(base64.b64decode(data))
        handle.flush()
        self._files.append(handle)  # removed when the client goes
        return handle.name

    async def close(self) -> None:
        await self.client.aclose()
        for handle in self._files:
            handle.close()

    async def list_owned(self, namespace: str, label: str, value: str,
                         types: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """Objects of `types` in `namespace` labelled `label=value`; a type the cluster
        does not serve (no KEDA, no Prometheus Operator) has none."""
        found = []
        for api_version, kind in dict.fromkeys(types):
            response = await self.client.get(collection_path(api_version, kind, namespace),
                                             params={"labelSelector": f"{label}={value}"})
            if response.status_code == 404:
                continue
            _raise_for(response, f"list {kind} in {namespace}")
            for item in response.json().get("items", []):
                if item.get("metadata", {}).get("labels", {}).get(label) == value:
                    found.append({"apiVersion": api_version, "kind": kind, **item})
        return found

    async def get(self, api_version: str, kind: str, namespace: str, name: str
                  ) -> dict[str, Any] | None:
        """One object, or None when there is none."""
        response = await self.client.get(
            f"{collection_path(api_version, kind, namespace)}/{name}")
        if response.status_code == 404:
            return None
        _raise_for(response, f"get {kind} {namespace}/{name}")
        return response.json()

    async def apply(self, obj: Mapping[str, Any]) -> None:
        """Server-side apply `obj` as the operator's field manager. An API that answers a
        missing object's apply with 404 (not the API server's way) gets a create."""
        response = await self.client.patch(
            object_path(obj), json=dict(obj),
            params={"fieldManager": self.field_manager, "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"})
        if response.status_code == 404:
            meta = obj["metadata"]
            response = await self.client.post(
                collection_path(obj["apiVersion"], obj["kind"], meta["namespace"]),
                json=dict(obj), params={"fieldManager": self.field_manager})
        _raise_for(response, f"apply {obj['kind']} {obj['metadata']['name']}")

    async def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves resource `plural` of `api_version` (a CRD
        installed); discovery, which every authenticated client may read."""
        response = await self.client.get(f"/apis/{api_version}")
        if response.status_code == 404:
            return False
        _raise_for(response, f"discover {api_version}")
        return any(r.get("name") == plural for r in response.json().get("resources", []))

    async def delete(self, obj: Mapping[str, Any]) -> None:
        response = await self.client.delete(object_path(obj),
                                            params={"propagationPolicy": "Background"})
        if response.status_code != 404:
            _raise_for(response, f"delete {obj['kind']} {obj['metadata']['name']}")


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        reason = response.json().get("message") or response.text
    except ValueError:
        reason = response.text
    raise KubeError(f"cannot {what}: HTTP {response.status_code}: {reason.strip()[:500]}")
