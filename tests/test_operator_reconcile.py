"""The pure reconcile function: a Pipeline resource and observed objects in, the objects to
apply and prune and the status out. Create, update, prune, idempotence, delete."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from algorail.cli import cli
from algorail.naming import RELEASE_MAX, consumer_group, helm_release
from algorail.operator.reconcile import (
    SHARED_GATEWAY_SERVICE,
    compile_resource,
    finalize,
    object_key,
    operator_plan,
    reconcile,
)
from algorail.operator.resource import OWNER_LABEL, pipeline_document

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "k8s" / "hello-pipeline.yaml"
UID = "4f2b0c8e-5f4d-4a59-9d5e-7d1f0e6c2a11"
BUILTIN_GROUPS = ("", "apps", "policy", "networking.k8s.io")


def _resource(**spec: Any) -> dict[str, Any]:
    resource = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    resource["metadata"].update(namespace="pipelines", uid=UID, generation=1)
    resource["spec"].update(spec)
    return resource


def _with_algo(resource: dict[str, Any], name: str) -> dict[str, Any]:
    """`resource` with a second algo `name` after upper, feeding the response hook."""
    changed = copy.deepcopy(resource)
    spec = changed["spec"]
    spec["algos"].append({**copy.deepcopy(spec["algos"][0]), "name": name,
                          "inputs": [{"name": "text"}], "outputs": [{"name": "result"}]})
    spec["pipes"] = [{"from": "api.in", "to": "upper.text"},
                     {"from": "upper.result", "to": f"{name}.text"},
                     {"from": f"{name}.result", "to": "result"}]
    changed["metadata"]["generation"] += 1
    return changed


def _served(objects: list[dict[str, Any]], ready: bool = True) -> list[dict[str, Any]]:
    """The objects as the API server returns them: its own fields added, runners ready."""
    served = []
    for number, obj in enumerate(copy.deepcopy(objects)):
        obj["metadata"].update(uid=f"uid-{number}", resourceVersion=str(100 + number),
                               creationTimestamp="2026-01-01T00:00:00Z")
        if obj["kind"] == "Deployment":
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {"replicas": replicas, "readyReplicas": replicas if ready else 0}
        served.append(obj)
    return served


def _keys(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


@pytest.fixture(scope="module")
def created():
    resource = _resource()
    return resource, reconcile(resource, [])


def test_create_applies_every_object_of_the_chart_owned_by_the_resource(created):
    resource, result = created
    assert result.apply == result.desired and result.prune == []
    kinds = {o["kind"] for o in result.apply}
    assert {"KafkaTopic", "Deployment", "Mapping", "ConfigMap"} <= kinds
    for obj in result.apply:
        assert obj["metadata"]["namespace"] == "pipelines"
        assert obj["metadata"]["labels"][OWNER_LABEL] == UID
        owners = obj["metadata"].get("ownerReferences", [])
        if obj["kind"] == "KafkaTopic":
            assert owners == []  # kept with the data when the Pipeline goes
        else:
            assert owners == [{"apiVersion": "algorail.io/v1", "kind": "Pipeline",
                               "name": "hello", "uid": UID, "controller": True,
                               "blockOwnerDeletion": True}]
    runner = next(o for o in result.apply if o["kind"] == "Deployment")
    assert runner["metadata"]["name"] == "alice-hello-upper"
    assert runner["spec"]["template"]["spec"]["containers"][0]["resources"] == \
        resource["spec"]["deployment"]["resources"]


def test_created_builtin_objects_pass_the_kubernetes_schemas(created):
    for obj in created[1].desired:
        if obj["apiVersion"].rpartition("/")[0] in BUILTIN_GROUPS:
            kubernetes_validate.validate(obj, "1.29", strict=True)


def test_status_before_and_after_the_runners_are_ready(created):
    resource, result = created
    status = result.status
    assert status["planVersion"] == "1.0.0" and status["planHash"].startswith("sha256:")
    assert status["endpoints"] == ["/alice/hello/in"]
    assert _condition(status, "Ready")["status"] == "False"
    assert _condition(status, "Progressing")["status"] == "True"

    unready = reconcile(resource, _served(result.desired, ready=False)).status
    assert _condition(unready, "Ready")["reason"] == "RunnersNotReady"
    assert unready["components"]["upper"] == {"kind": "algo", "desiredReplicas": 1,
                                              "readyReplicas": 0}
    ready = reconcile(resource, _served(result.desired)).status
    assert _condition(ready, "Ready") | {"lastTransitionTime": None} == {
        "type": "Ready", "status": "True", "observedGeneration": 1, "reason": "Ready",
        "message": "1 components ready", "lastTransitionTime": None}
    assert _condition(ready, "Degraded")["status"] == "False"


def test_reconciling_twice_changes_nothing(created):
    resource, result = created
    observed = _served(result.desired)
    again = reconcile(resource, observed)
    assert again.apply == [] and again.prune == []
    resource = {**resource, "status": again.status}
    assert reconcile(resource, observed).status == again.status  # transition times kept


def test_a_deleted_owned_object_comes_back(created):
    resource, result = created
    observed = [o for o in _served(result.desired) if o["kind"] != "Deployment"]
    assert _keys(reconcile(resource, observed).apply) == {("Deployment", "alice-hello-upper")}


def test_a_changed_algo_patches_its_deployment_and_the_plan(created):
    resource, result = created
    changed = copy.deepcopy(resource)
    changed["spec"]["algos"][0]["command"][-1] = "print('{}')"
    changed["metadata"]["generation"] = 2
    update = reconcile(changed, _served(result.desired))
    assert _keys(update.apply) == {("Deployment", "alice-hello-upper"),
                                   ("ConfigMap", "alice-hello-plan")}
    plan = next(o for o in update.apply if o["kind"] == "ConfigMap")
    assert "print('{}')" in plan["data"]["plan.json"]  # the runner reads its command there

    def checksum(objects):
        runner = next(o for o in objects if o["kind"] == "Deployment")
        return runner["spec"]["template"]["metadata"]["annotations"]["checksum/plan"]

    assert checksum(update.apply) != checksum(result.desired)  # so the pods roll
    assert update.prune == []
    assert _condition(update.status, "Ready")["observedGeneration"] == 2


def test_a_removed_algo_is_pruned_and_its_topics_kept_unless_cleaned(created):
    resource, _ = created
    two = _with_algo(resource, "shout")
    observed = _served(reconcile(two, []).desired)
    assert ("Deployment", "alice-hello-shout") in _keys(observed)

    kept = reconcile(resource, observed)
    assert _keys(kept.prune) == {("Deployment", "alice-hello-shout"),
                                 ("PodDisruptionBudget", "alice-hello-shout")}

    clean = reconcile({**resource, "spec": {**resource["spec"], "cleanTopicsOnDelete": True}},
                      observed)
    pruned_topics = {o["spec"]["topicName"] for o in clean.prune if o["kind"] == "KafkaTopic"}
    assert pruned_topics == {"alice.hello.shout.result", "alice.hello.shout.dead-letter",
                             *(f"alice.hello.shout.retry.{n}" for n in (1, 2, 3))}


def test_delete_removes_topics_only_with_clean_topics_on_delete(created):
    resource, result = created
    observed = _served(result.desired)
    kept = finalize(resource, observed)
    assert "KafkaTopic" not in {o["kind"] for o in kept}
    assert {object_key(o) for o in kept} == {object_key(o) for o in observed
                                             if o["kind"] != "KafkaTopic"}
    clean = finalize(_resource(cleanTopicsOnDelete=True), observed)
    assert {object_key(o) for o in clean} == {object_key(o) for o in observed}


def test_clean_topics_on_delete_makes_the_topics_owned():
    result = reconcile(_resource(cleanTopicsOnDelete=True), [])
    topics = [o for o in result.desired if o["kind"] == "KafkaTopic"]
    assert topics and all(o["metadata"]["ownerReferences"][0]["uid"] == UID for o in topics)


def test_an_invalid_spec_changes_nothing_and_says_what_algorail_validate_says(tmp_path, created):
    resource, result = created
    broken = copy.deepcopy(resource)
    broken["spec"]["pipes"].append({"from": "nowhere.out", "to": "upper.text"})
    broken["spec"]["algos"][0]["runtime"] = "no-such-runtime"
    broken["metadata"]["generation"] = 3
    outcome = reconcile(broken, _served(result.desired))
    assert outcome.apply == [] and outcome.prune == [] and outcome.problems

    path = tmp_path / "hello.yaml"
    path.write_text(yaml.safe_dump(pipeline_document(broken)))
    printed = CliRunner().invoke(cli, ["validate", str(path)])
    assert printed.exit_code == 1
    expected = [re.sub(r"^\S+?:(\d+:)? ", "", line) for line in printed.output.splitlines()]
    ready = _condition(outcome.status, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert ready["observedGeneration"] == 3
    assert [line.split(": ", 1)[1] for line in ready["message"].splitlines()] == expected
    assert _condition(outcome.status, "Degraded")["status"] == "True"


def test_a_bad_deployment_setting_is_a_problem_not_a_crash(created):
    resource, _ = created
    outcome = reconcile(_resource(deployment={"autoscaling": {"maxReplicas": 0}}), [])
    assert outcome.apply == []
    assert "spec.deployment.autoscaling.maxReplicas" in \
        _condition(outcome.status, "Ready")["message"]


def test_autoscaling_adds_a_keda_scaled_object_per_runner():
    scaling = {"enabled": True, "minReplicas": 1, "maxReplicas": 5, "lagThreshold": 50}
    result = reconcile(_resource(deployment={"autoscaling": scaling}), [])
    scaled = [o for o in result.desired if o["kind"] == "ScaledObject"]
    runner = next(o for o in result.desired if o["kind"] == "Deployment")
    assert [s["spec"]["scaleTargetRef"]["name"] for s in scaled] == ["alice-hello-upper"]
    assert "replicas" not in runner["spec"]  # KEDA owns it
    trigger = scaled[0]["spec"]["triggers"][0]
    assert trigger["type"] == "kafka" and trigger["metadata"]["lagThreshold"] == "50"
    assert trigger["metadata"]["consumerGroup"] == consumer_group("alice", "hello", "upper")


def test_object_names_come_from_the_plan_and_mappings_reach_the_shared_gateway(created):
    resource, result = created
    plan = operator_plan(compile_resource(resource))
    assert plan.deployment == "hello" and plan.helm.release == helm_release("alice", "hello")
    config_map = next(o for o in result.desired if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] == plan.helm.plan_config_map)
    assert json.loads(config_map["data"]["plan.json"])["helm"] == plan.to_cluster_dict()["helm"]
    mappings = [o for o in result.desired if o["kind"] == "Mapping"]
    assert mappings and {m["spec"]["service"] for m in mappings} == {
        f"{SHARED_GATEWAY_SERVICE}.pipelines:80"}
    values = {"mappings": {"gatewayService": "edge-gateway", "gatewayNamespace": "edge"}}
    elsewhere = reconcile(resource, [], operator_values=values)
    assert {o["spec"]["service"] for o in elsewhere.desired if o["kind"] == "Mapping"} == {
        "edge-gateway.edge:80"}


def test_a_long_resource_name_gets_the_release_rule_and_keeps_its_names():
    resource = _resource()
    resource["metadata"]["name"] = "a-pipeline-name-" + "x" * 34  # 50, the longest allowed
    first, second = reconcile(resource, []), reconcile(resource, [])
    assert first.problems == [] and first.desired
    release = helm_release("alice", resource["metadata"]["name"])
    assert len(release) == RELEASE_MAX and re.search(r"-[0-9a-f]{8}$", release)
    assert _keys(first.desired) == _keys(second.desired)
    assert second.apply == second.desired  # nothing observed yet: the same set, again
    for obj in first.desired:
        meta = obj["metadata"]
        if obj["kind"] not in ("KafkaTopic", "KafkaConnector"):  # those carry topic names
            assert meta["name"].startswith(release) and len(meta["name"]) <= 63, meta["name"]
        assert meta["labels"][OWNER_LABEL] == UID
        if obj["kind"] != "KafkaTopic":
            assert meta["ownerReferences"][0]["name"] == resource["metadata"]["name"]


def test_a_resource_rendered_with_its_modules_mounts_them_in_its_runners(tmp_path):
    """`algorail render --resource` packs hello_algos next to examples/hello.yaml into the
    resource; the operator, which has no files, renders them into the code ConfigMap."""
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["render", str(EXAMPLE.parent.parent / "hello.yaml"),
                                      "-o", str(out), "--resource", "-n", "pipelines"])
    assert result.exit_code == 0, result.output
    resource = yaml.safe_load((out / "pipeline.yaml").read_text())
    hello_algos = (EXAMPLE.parent.parent / "hello_algos.py").read_text()
    assert resource["spec"]["deployment"]["code"] == {"hello_algos.py": hello_algos}
    resource["metadata"].update(uid=UID, generation=1)
    outcome = reconcile(resource, [])
    assert not outcome.problems
    (code,) = [o for o in outcome.desired if o["metadata"]["name"] == "alice-hello-code"]
    assert code["data"] == {"hello_algos.py": hello_algos}
    assert code["metadata"]["ownerReferences"][0]["uid"] == UID
    (runner,) = [o for o in outcome.desired if o["kind"] == "Deployment"]
    container = runner["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PYTHONPATH", "value": "/opt/algorail/code"} in container["env"]

    resource["spec"]["deployment"]["code"] = {"../escape.py": "x = 1\n"}
    refused = reconcile(resource, [])
    assert refused.apply == [] and "spec.deployment.code" in str(refused.problems[0])


def test_a_seldon_pipeline_becomes_a_valid_algorail_pipeline_owned_by_it():
    from algorail.errors import PipelineError
    from algorail.operator.reconcile import compile_resource
    from algorail.operator.seldon_pipelines import derived_pipeline

    seldon = yaml.safe_load((EXAMPLE.parent.parent / "seldon" / "tfsimples.yaml").read_text())
    seldon["metadata"].update(namespace="pipelines", uid="uid-s")
    bindings = {"data": {"bindings.yaml": (EXAMPLE.parent.parent / "seldon" /
                                           "bindings.yaml").read_text()}}
    resource = derived_pipeline(seldon, bindings)
    assert resource["metadata"]["name"] == "tfsimples"
    assert resource["metadata"]["ownerReferences"][0]["kind"] == "Pipeline"
    assert resource["metadata"]["ownerReferences"][0]["apiVersion"] == "mlops.seldon.io/v1alpha1"
    plan = compile_resource({**resource, "metadata": {**resource["metadata"], "uid": UID}})
    assert [r.component for r in plan.runners] == ["tfsimple1", "tfsimple2"]
    with pytest.raises(PipelineError, match="tfsimple1"):
        derived_pipeline(seldon, None)  # unbound steps, no model-url annotation
    with pytest.raises(PipelineError, match="bindings.yaml"):
        derived_pipeline(seldon, {"data": {"bindings.yaml": "- a list"}})
