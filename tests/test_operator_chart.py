"""The operator in the algorail chart: off by default; on, a Deployment running
`algorail operator` with least-privilege RBAC covering exactly what it creates."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from algorail.operator.kube import OWNED_TYPES, PLURALS
from algorail.render import SERVICES_CHART, RenderError, manifests, render_chart


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    return manifests(render_chart(SERVICES_CHART, values, release="ops", namespace="algorail",
                                  engine="sdk"))


def _operator_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"]


def _allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               for r in rules)


def test_the_operator_is_off_by_default():
    assert _operator_objects(_render({})) == []


@pytest.mark.parametrize("namespaces", [[], ["team-a", "team-b"]])
def test_operator_objects_pass_the_kubernetes_schemas(namespaces):
    objects = _operator_objects(_render({"operator": {"enabled": True,
                                                      "watchNamespaces": namespaces}}))
    kinds = sorted(o["kind"] for o in objects)
    if namespaces:
        assert kinds == ["ConfigMap", "Deployment", "Role", "Role", "RoleBinding",
                         "RoleBinding", "ServiceAccount"]
        assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"} == \
            set(namespaces)
    else:
        assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
                         "ServiceAccount"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.29", strict=True)


def test_the_deployment_runs_algorail_operator_with_the_pipeline_values():
    objects = _operator_objects(_render({"operator": {
        "enabled": True, "watchNamespaces": ["team-a"], "resyncSeconds": 30,
        "pipelineValues": {"kafka": {"bootstrapServers": "kafka:9092"}}}}))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == [
        "operator", "--values", "/etc/algorail-operator/pipeline-values.yaml",
        "--resync", "30", "--liveness", "http://0.0.0.0:8080/healthz", "--namespace", "team-a"]
    assert pod["serviceAccountName"] == "ops-algorail-operator"
    assert pod["automountServiceAccountToken"] is True  # it calls the API
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {
        "type": "Recreate"}
    values = next(o for o in objects if o["kind"] == "ConfigMap")
    assert values["data"]["pipeline-values.yaml"] == "kafka:\n  bootstrapServers: kafka:9092\n"


def test_rbac_grants_what_the_operator_creates_and_nothing_wider():
    role = next(o for o in _render({"operator": {"enabled": True}})
                if o["kind"] == "ClusterRole")
    rules = role["rules"]
    for api_version, kind in OWNED_TYPES:
        group = api_version.rpartition("/")[0]
        for verb in ("list", "create", "patch", "delete"):
            assert _allowed(rules, group, PLURALS[kind], verb), (kind, verb)
    assert _allowed(rules, "algorail.io", "pipelines/status", "patch")
    assert _allowed(rules, "", "events", "create")
    for rule in rules:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
    assert not _allowed(rules, "", "secrets", "get")  # Secrets are referenced, never read


def test_the_schema_refuses_an_unknown_operator_key():
    with pytest.raises(RenderError, match="replica"):
        _render({"operator": {"enabled": True, "replica": 2}})


def test_watch_seldon_adds_the_flag_and_only_the_seldon_rules():
    plain = next(o for o in _render({"operator": {"enabled": True}}) if o["kind"] == "ClusterRole")
    assert not _allowed(plain["rules"], "mlops.seldon.io", "pipelines", "watch")
    objects = _operator_objects(_render({"operator": {"enabled": True, "watchSeldon": True}}))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert "--watch-seldon" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    rules = next(o for o in objects if o["kind"] == "ClusterRole")["rules"]
    for verb in ("get", "list", "watch", "patch"):
        assert _allowed(rules, "mlops.seldon.io", "pipelines", verb)
    assert _allowed(rules, "mlops.seldon.io", "pipelines/finalizers", "update")
    assert _allowed(rules, "algorail.io", "pipelines", "create")
    assert not _allowed(rules, "mlops.seldon.io", "pipelines", "delete")
