"""The deployment plan: plain, serialisable data that `algorail.compiler` makes of a pipeline.

The plan is the single source of truth for everything downstream (dev mode, runners,
gateway, hook dispatcher, Helm values, Pulumi, manifests): topic names, subscriptions,
routes, consumer groups, URLs, Kubernetes object names and which hooks each endpoint path
can reach are derived by the compiler (through `algorail.naming`) and read from here; nothing
downstream derives a name again. This module imports neither the pipeline model
(`algorail.spec`) nor its graph (`algorail.graph`): the runtime needs the plan alone.

The messages every runtime piece sends and reads (headers, skip markers, values by
content type) follow `algorail.runtime.codec`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from algorail import naming
from algorail.errors import AlgorailError

PLAN_API_VERSION = "algorail.io/plan/v1"
# Plan fields that hold paths of the machine the plan was compiled on.
MACHINE_FIELDS = {"source_file": True, "base_dir": True, "runners": {"__all__": {"base_dir"}}}


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicPlan(PlanModel):
    name: str
    role: Literal["endpoint", "output", "error", "dead-letter", "retry", "pipeline-output",
                  "external", "sink-report"]
    component: str | None = None
    port: str | None = None
    content_type: str = "application/json"
    external: bool = False  # owned by another pipeline or system: never created or deleted
    pipe: str | None = None  # how `algorail tail` and the diagrams name it: "component.port"
    partitions: int | None = None  # from the spec's pipes; unset: the deployment's default
    replication_factor: int | None = None


class InputPlan(PlanModel):
    """One subscription: messages on `topic` arrive at input `name` of a component."""

    name: str
    topic: str
    source: str  # "component.port"
    content_type: str = "application/json"
    fields: list[str] | None = None  # keep only these JSON fields; none present = skip
    map: dict[str, str] = Field(default_factory=dict)  # rename JSON fields (Seldon tensorMap)


class JoinPlan(PlanModel):
    """How an algo with several inputs (or with triggers) waits for them."""

    type: Literal["inner", "outer", "any"]
    window_ms: int
    max_pending: int


class BatchPlan(PlanModel):
    size: int | None
    window_ms: int | None
    rolling: bool


class RetryPlan(PlanModel):
    """Retries of a failed algo call; `retry_on` lists the kinds of failure retried."""

    attempts: int
    backoff_ms: int
    max_backoff_ms: int
    retry_on: list[Literal["timeout", "connection", "server", "throttled", "error"]]


class RetryTopic(PlanModel):
    """One backoff step of an algo's retries: a failed run waits on `name` until `delay_ms`
    after it was written, then is called again. Retry n of a run goes to step
    ``min(n, len(steps))``: after the backoff cap every retry waits on the last step."""

    name: str
    delay_ms: int


class RunnerPlan(PlanModel):
    component: str
    id: str
    index: int
    ref: str
    runtime: str
    command: list[str] | None = None
    entrypoint: str | None = None
    url: str | None = None
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputPlan]
    triggers: list[InputPlan] = Field(default_factory=list)
    join: JoinPlan | None = None  # set when the algo has several inputs or any trigger
    triggers_join: Literal["inner", "outer", "any"] = "inner"
    batch: BatchPlan | None = None
    input_mode: Literal["keyed", "merged"] = "keyed"
    file_input: Literal["bytes", "reference"] = "bytes"
    outputs: dict[str, str]  # port -> topic
    output_content_types: dict[str, str]
    output_sources: dict[str, str]  # port -> its `algorail-source` header, "component.port"
    error_source: str  # the `algorail-source` of this algo's error reports
    error_topic: str
    dead_letter_topic: str
    consumer_group: str
    timeout_ms: int
    retry: RetryPlan
    retry_topics: list[RetryTopic] = Field(default_factory=list)
    replicas: int = 1
    resources: dict[str, dict[str, str]] | None = None
    base_dir: str | None = None  # where the pipeline file was: python algos are found here first


class RoutePlan(PlanModel):
    endpoint: str
    path: str
    id: str
    type: Literal["http", "grpc", "kafka"]
    url: str
    topic: str
    message_data_type: Literal["embedded", "fileReference"]
    object_prefix: str  # fileReference: where its bodies go in the object store, before run id
    content_type: str
    source: str  # the `algorail-source` header of the messages it starts, "endpoint.path"
    json_schema: dict[str, Any] | None = None
    protocol: Literal["json", "v2"] = "json"
    hooks: list[str]  # hooks reachable from this path: what a sync call waits for
    # data sinks reachable from this path: a sync call waits for their writes too where the
    # sinks report them (run in Python by dev mode; Kafka Connect does not report)
    sinks: list[str] = Field(default_factory=list)


class HookPlan(PlanModel):
    name: str
    id: str
    index: int
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    join: Literal["any", "inner"] = "any"
    inputs: list[InputPlan]
    dead_letter_topic: str
    consumer_group: str
    publish_topic: str | None = None  # `response` hooks republish the pipeline's output
    publish_source: str | None = None  # the `algorail-source` of what it republishes


class ConnectorPlan(PlanModel):
    name: str
    id: str
    index: int
    kind: Literal["source", "sink"]
    connector: str
    connect_name: str  # its name on Kafka Connect and as a Strimzi KafkaConnector
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputPlan] = Field(default_factory=list)  # sinks
    outputs: dict[str, str] = Field(default_factory=dict)  # sources: port -> topic
    output_sources: dict[str, str] = Field(default_factory=dict)  # sources: port -> header
    report_topic: str | None = None  # sinks: where each run's outcome is reported
    report_source: str | None = None  # sinks: the `algorail-source` of those reports
    report_consumer_group: str | None = None  # the hook dispatcher's reader of the reports
    dead_letter_topic: str
    consumer_group: str


class HelmNames(PlanModel):
    """The Kubernetes names of one deployment's two Helm releases and of the objects one
    refers to in the other. Everything that installs or renders them reads these."""

    release: str  # the algorail-pipeline release, prefix of its objects
    services_release: str  # the algorail release (gateway, hook dispatcher), its prefix
    plan_config_map: str  # written by algorail-pipeline, mounted by algorail
    gateway_service: str  # the algorail gateway's Service, target of every Mapping

    @classmethod
    def for_release(cls, release: str, gateway_service: str | None = None) -> HelmNames:
        """The names of release `release`; `gateway_service` names a gateway installed
        apart from it (the operator's, shared by a namespace), default its own."""
        if not naming.is_valid_release(release):
            raise AlgorailError(f"Helm release name {release!r} is not valid: "
                                f"use {naming.RELEASE_RULE}")
        services = naming.services_release(release)
        return cls(release=release, services_release=services,
                   plan_config_map=naming.plan_config_map(release),
                   gateway_service=gateway_service or naming.gateway_service(services))


class Plan(PlanModel):
    api_version: str = PLAN_API_VERSION
    owner: str
    pipeline: str
    version: str
    deployment: str
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # metadata.labels, on every object
    annotations: dict[str, str] = Field(default_factory=dict)
    source_file: str | None = None
    base_dir: str | None = None
    allow_cycles: bool = False
    max_step_revisits: int | None = None
    clean_topics_on_delete: bool = False
    error_topic: str
    errors_consumer_group: str  # the hook dispatcher's error recorder, reading error_topic
    runs_url: str  # GET {runs_url}/{runId}: a run's results on the gateway
    output_topic: str | None = None
    topics: list[TopicPlan]
    runners: list[RunnerPlan]
    routes: list[RoutePlan]
    hooks: list[HookPlan]
    connectors: list[ConnectorPlan]
    helm: HelmNames

    @model_validator(mode="before")
    @classmethod
    def _default_helm_names(cls, data: Any) -> Any:
        """Plans written before `helm` existed get the names the rule gives them."""
        if isinstance(data, dict) and "helm" not in data and "owner" in data:
            release = naming.helm_release(data["owner"], data.get("deployment", ""))
            data = {**data, "helm": HelmNames.for_release(release)}
        return data

    def with_release(self, release: str, gateway_service: str | None = None) -> Plan:
        """This plan installed as Helm release `release` (every derived name follows),
        routed to `gateway_service` when the gateway is installed apart (`HelmNames`)."""
        return self.model_copy(
            update={"helm": HelmNames.for_release(release, gateway_service)})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_cluster_dict(self) -> dict[str, Any]:
        """The plan as a cluster gets it: without the paths of the machine that compiled it
        (`source_file`, `base_dir`), which mean nothing in a pod and leak a home folder."""
        return self.model_dump(mode="json", exclude=MACHINE_FIELDS)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_file(cls, path: str | Path) -> Plan:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def runner(self, component: str) -> RunnerPlan:
        for r in self.runners:
            if r.component == component:
                return r
        known = ", ".join(r.component for r in self.runners) or "none"
        raise KeyError(f"no algo named {component!r} in this plan (algos: {known})")

    def topic_names(self) -> list[str]:
        return [t.name for t in self.topics]

    def created_topics(self) -> list[str]:
        """Topics this deployment owns and creates (not other pipelines' topics)."""
        return [t.name for t in self.topics if not t.external]


def plan_hash(plan: Plan) -> str:
    """sha256 of what a plan deploys (machine paths left out): with `version`, it names
    the plan version a run started on and a Pipeline's status reports."""
    text = json.dumps(plan.to_cluster_dict(), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
