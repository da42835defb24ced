"""The reconcile function: a Pipeline resource and the objects observed for it in, the
objects to apply, the objects to prune and the resource's status out. Pure: no API calls.

The desired objects are the algorail-pipeline chart rendered (helm-python-sdk, or the helm
CLI when on PATH) from `render.helm_values` of the plan the compiler makes of the resource
(deployment: the resource's name; release and object names: the plan's `helm`): the same
objects `algorail render` writes, so the chart stays the one place that says what a
pipeline's objects look like. A render takes well under a second, and a
reconcile runs on a change or a resume, not in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from algorail import naming
from algorail.compiler import compile_plan
from algorail.errors import PipelineError, Problem
from algorail.operator.resource import (
    KIND,
    OWNER_LABEL,
    RESOURCE_API_VERSION,
    DeploymentSettings,
    pipeline_document,
)
from algorail.plan import Plan, plan_hash
from algorail.render import (
    PIPELINE_CHART,
    HelmValues,
    deep_merge,
    helm_values,
    manifests,
    render_chart,
)

TOPIC_KIND = "KafkaTopic"
# The gateway serving every Pipeline of a namespace: the algorail chart's, installed as
# release "algorail" (the pipeline chart's default too), unless the operator's values
# name another in mappings.gatewayService.
SHARED_GATEWAY_SERVICE = naming.gateway_service("algorail")


@dataclass
class Reconciliation:
    """What one reconcile decided."""

    desired: list[dict[str, Any]] = field(default_factory=list)
    apply: list[dict[str, Any]] = field(default_factory=list)  # missing or changed
    prune: list[dict[str, Any]] = field(default_factory=list)  # owned, no longer desired
    status: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def resource_name(resource: Mapping[str, Any]) -> str:
    meta = resource.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


def compile_resource(resource: Mapping[str, Any], registry: Any = None) -> Plan:
    """The plan of a Pipeline resource, checked as `algorail validate` checks a file (the
    resource's namespace/name stands for the file name); raises `PipelineError`."""
    from algorail.connectors.secrets import require_secret_references
    from algorail.loader import validate_document

    where = resource_name(resource)
    deployment_settings(resource, where)
    pipeline = validate_document(pipeline_document(dict(resource)), file=where, registry=registry)
    plan = compile_plan(pipeline)
    require_secret_references(plan)
    return plan


def deployment_settings(resource: Mapping[str, Any], where: str) -> DeploymentSettings:
    try:
        return DeploymentSettings.model_validate(
            (resource.get("spec") or {}).get("deployment") or {})
    except ValidationError as exc:
        raise PipelineError([
            Problem("shape", f"spec.deployment.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}",
                    file=where)
            for e in exc.errors()
        ]) from None


def operator_plan(plan: Plan, operator_values: Mapping[str, Any] | None = None) -> Plan:
    """`plan` as the operator installs it: the plan's own release (`naming.helm_release`
    of owner and resource name, so names are stable across reconciles), its Mappings
    routed to the namespace's shared gateway."""
    mappings = (operator_values or {}).get("mappings") or {}
    gateway = mappings.get("gatewayService") or SHARED_GATEWAY_SERVICE
    return plan.with_release(plan.helm.release, gateway_service=gateway)


def chart_values(resource: Mapping[str, Any], plan: Plan,
                 operator_values: Mapping[str, Any] | None = None) -> HelmValues:
    """The charts' values for `plan` (from `operator_plan`): the plan's, then the
    operator's (its cluster-wide settings), then the resource's deployment settings."""
    settings = deployment_settings(resource, resource_name(resource))
    values = deep_merge(operator_values or {}, {})
    values.get("mappings", {}).pop("gatewayService", None)  # carried by the plan
    own: dict[str, Any] = {"commonLabels": {OWNER_LABEL: resource["metadata"]["uid"]}}
    if settings.image:
        own["image"] = settings.image.to_dict()
    if settings.resources:
        own["runner"] = {"resources": settings.resources}
    if settings.kafka:
        own["kafka"] = settings.kafka.to_dict()
    # the resource carries its packed modules: the operator has no files to pack
    return helm_values(plan, deep_merge(values, own), code=settings.code or {})


def owner_reference(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": RESOURCE_API_VERSION, "kind": KIND,
            "name": resource["metadata"]["name"], "uid": resource["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def desired_objects(resource: Mapping[str, Any], plan: Plan,
                    operator_values: Mapping[str, Any] | None = None,
                    engine: str = "auto") -> list[dict[str, Any]]:
    """Every object the pipeline needs, owned by the resource. A KafkaTopic is owned only
    when the pipeline sets cleanTopicsOnDelete: otherwise it outlives the resource, data
    and all, as it outlives `helm uninstall`."""
    values = chart_values(resource, plan, operator_values)
    objects = manifests(render_chart(PIPELINE_CHART, values.pipeline, release=values.release,
                                     namespace=resource["metadata"].get("namespace", "default"),
                                     engine=engine))
    objects += scaled_objects(resource, plan, objects)
    for obj in objects:
        if obj["kind"] != TOPIC_KIND or plan.clean_topics_on_delete:
            obj["metadata"]["ownerReferences"] = [owner_reference(resource)]
    return objects


def scaled_objects(resource: Mapping[str, Any], plan: Plan, objects: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """With `deployment.autoscaling.enabled`, a KEDA ScaledObject per runner Deployment
    scaling it on its consumer group's lag (on the brokers the runner is given); the
    Deployment then leaves `replicas` to KEDA."""
    settings = deployment_settings(resource, resource_name(resource))
    scaling = settings.autoscaling
    if not scaling or not scaling.enabled:
        return []
    by_id = {r.id: r for r in plan.runners}
    scaled = []
    for obj in objects:
        runner = by_id.get(obj["metadata"].get("annotations", {}).get("algorail.io/id", ""))
        if obj["kind"] != "Deployment" or runner is None:
            continue
        obj["spec"].pop("replicas", None)
        env = {e["name"]: e.get("value") for e in
               obj["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        scaled.append({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": obj["metadata"]["name"],
                         "namespace": obj["metadata"]["namespace"],
                         "labels": dict(obj["metadata"]["labels"])},
            "spec": {
                "scaleTargetRef": {"name": obj["metadata"]["name"]},
                "minReplicaCount": scaling.min_replicas,
                "maxReplicaCount": scaling.max_replicas,
                "triggers": [{"type": "kafka", "metadata": {
                    "bootstrapServers": env["ALGORAIL_BOOTSTRAP_SERVERS"],
                    "consumerGroup": runner.consumer_group,
                    "lagThreshold": str(scaling.lag_threshold),
                }}],
            },
        })
    return scaled


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def contains(observed: Any, desired: Any) -> bool:
    """Whether `observed` already holds every field `desired` sets (the API server adds
    its own fields, so equality would never hold)."""
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and all(
            k in observed and contains(observed[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(observed, list) and len(observed) == len(desired)
                and all(contains(o, d) for o, d in zip(observed, desired, strict=True)))
    return observed == desired


def prunable(obj: Mapping[str, Any], plan: Plan | None) -> bool:
    """Owned objects go when no longer desired; a topic only with cleanTopicsOnDelete."""
    return obj["kind"] != TOPIC_KIND or bool(plan and plan.clean_topics_on_delete)


def reconcile(resource: Mapping[str, Any], observed: Iterable[Mapping[str, Any]], *,
              operator_values: Mapping[str, Any] | None = None, registry: Any = None,
              now: datetime | None = None, engine: str = "auto") -> Reconciliation:
    """Decide what to apply and prune for `resource`, given the objects carrying its
    owner label. An invalid spec changes nothing on the cluster: the objects of the last
    valid generation keep running, and the status says why (Ready=False, Degraded=True)."""
    observed = list(observed)
    try:
        plan = operator_plan(compile_resource(resource, registry), operator_values)
    except PipelineError as exc:
        return Reconciliation(problems=exc.problems,
                              status=invalid_status(resource, exc.problems, now))
    desired = desired_objects(resource, plan, operator_values, engine)
    by_key = {object_key(o): o for o in observed}
    wanted = {object_key(o) for o in desired}
    apply = [o for o in desired if not contains(by_key.get(object_key(o)), o)]
    prune = [o for o in observed if object_key(o) not in wanted and prunable(o, plan)]
    status = pipeline_status(resource, plan, desired, by_key, pending=bool(apply or prune),
                             now=now)
    return Reconciliation(desired=desired, apply=apply, prune=prune, status=status)


def finalize(resource: Mapping[str, Any], observed: Iterable[Mapping[str, Any]]
             ) -> list[dict[str, Any]]:
    """The objects to delete with the resource: every owned one, topics only when the
    pipeline sets cleanTopicsOnDelete. (Owner references make the garbage collector do the
    same; deleting here also covers objects created before an owner reference was set.)"""
    clean = bool((resource.get("spec") or {}).get("cleanTopicsOnDelete"))
    return [dict(o) for o in observed if o["kind"] != TOPIC_KIND or clean]


# -- status -------------------------------------------------------------------------------


def condition(resource: Mapping[str, Any], kind: str, ok: bool, reason: str, message: str,
              now: datetime | None) -> dict[str, Any]:
    """A condition; its lastTransitionTime moves only when its status does."""
    status = "True" if ok else "False"
    previous = next((c for c in (resource.get("status") or {}).get("conditions", [])
                     if c.get("type") == kind), None)
    if previous and previous.get("status") == status and previous.get("lastTransitionTime"):
        since = previous["lastTransitionTime"]
    else:
        since = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": status, "observedGeneration": generation(resource),
            "lastTransitionTime": since, "reason": reason, "message": message}


def generation(resource: Mapping[str, Any]) -> int:
    return int(resource.get("metadata", {}).get("generation") or 0)


def invalid_status(resource: Mapping[str, Any], problems: list[Problem],
                   now: datetime | None) -> dict[str, Any]:
    message = "\n".join(str(p) for p in problems)
    kept = {k: v for k, v in (resource.get("status") or {}).items()
            if k in ("components", "planVersion", "planHash", "endpoints")}
    return {**kept, "observedGeneration": generation(resource), "conditions": [
        condition(resource, "Ready", False, "InvalidSpec", message, now),
        condition(resource, "Progressing", False, "InvalidSpec",
                  "the spec does not validate; the last valid generation keeps running", now),
        condition(resource, "Degraded", True, "InvalidSpec", message, now),
    ]}


def pipeline_status(resource: Mapping[str, Any], plan: Plan, desired: list[dict[str, Any]],
                    observed: Mapping[tuple, Mapping[str, Any]], *, pending: bool,
                    now: datetime | None) -> dict[str, Any]:
    by_id = {r.id: r.component for r in plan.runners}
    components: dict[str, dict[str, Any]] = {}
    for obj in desired:
        component = by_id.get(obj["metadata"].get("annotations", {}).get("algorail.io/id", ""))
        if obj["kind"] != "Deployment" or component is None:
            continue
        seen = observed.get(object_key(obj)) or {}
        state = {"kind": "algo", "desiredReplicas": int(obj["spec"].get("replicas", 1)),
                 "readyReplicas": int((seen.get("status") or {}).get("readyReplicas") or 0)}
        if error := deployment_error(seen):
            state["lastError"] = error
        components[component] = state
    for connector in plan.connectors:
        components[connector.name] = {"kind": connector.kind}
    waiting = sorted(n for n, s in components.items()
                     if s["kind"] == "algo" and s["readyReplicas"] < s["desiredReplicas"])
    failing = sorted(n for n, s in components.items() if "lastError" in s)
    ready = not pending and not waiting
    if pending:
        why = ("Applying", "objects of this generation are being applied")
    elif waiting:
        why = ("RunnersNotReady", "waiting for ready runners: " + ", ".join(waiting))
    else:
        why = ("Ready", f"{len(components)} components ready")
    return {
        "observedGeneration": generation(resource),
        "planVersion": plan.version,
        "planHash": plan_hash(plan),
        "endpoints": [r.url for r in plan.routes if r.type == "http"],
        "components": components,
        "conditions": [
            condition(resource, "Ready", ready, *why, now),
            condition(resource, "Progressing", not ready, *why, now),
            condition(resource, "Degraded", bool(failing),
                      "RunnerFailing" if failing else "Healthy",
                      "; ".join(f"{n}: {components[n]['lastError']}" for n in failing)
                      or "no runner reports a failure", now),
        ],
    }


def deployment_error(deployment: Mapping[str, Any]) -> str | None:
    """The message of a failing Deployment condition (ReplicaFailure, or a rollout that
    gave up), if any."""
    for cond in (deployment.get("status") or {}).get("conditions", []):
        failed = (cond.get("type") == "ReplicaFailure" and cond.get("status") == "True") or (
            cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded")
        if failed:
            return cond.get("message") or cond.get("reason")
    return None
