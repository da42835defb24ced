"""The compiler: a valid pipeline -> a plain, serialisable deployment plan.

The plan is the single source of truth for everything downstream (dev mode, runners,
gateway, hook dispatcher, Helm values, Pulumi, manifests): topic names, subscriptions,
routes and which hooks each endpoint path can reach are derived here and nowhere else.

Message conventions every runtime piece follows (headers are UTF-8 strings):
- ``algorail-run-id``, ``algorail-deployment``, ``algorail-source`` (``component.port``),
  ``content-type``, ``traceparent``.
- A port that produces nothing for a run emits a *skip marker*: an empty value with
  header ``algorail-skip: 1``. Consumers propagate it, so a hook downstream of a branch
  not taken reports "skipped" and a sync caller stops waiting for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from algorail import naming
from algorail.errors import AlgorailError
from algorail.graph import Edge, PipelineGraph
from algorail.spec import Batch, Join, Pipeline, Retry, load_pipeline, read_document

PLAN_API_VERSION = "algorail.io/plan/v1"
# Plan fields that hold paths of the machine the plan was compiled on.
MACHINE_FIELDS = {"source_file": True, "base_dir": True, "runners": {"__all__": {"base_dir"}}}


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicPlan(PlanModel):
    name: str
    role: Literal["endpoint", "output", "error", "dead-letter", "pipeline-output", "external",
                  "sink-report"]
    component: str | None = None
    port: str | None = None
    content_type: str = "application/json"
    external: bool = False  # owned by another pipeline or system: never created or deleted
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
    join: Join | None = None
    triggers_join: Literal["inner", "outer", "any"] = "inner"
    batch: Batch | None = None
    input_mode: Literal["keyed", "merged"] = "keyed"
    file_input: Literal["bytes", "reference"] = "bytes"
    outputs: dict[str, str]  # port -> topic
    output_content_types: dict[str, str]
    error_topic: str
    dead_letter_topic: str
    consumer_group: str
    timeout_ms: int
    retry: Retry
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
    content_type: str
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
    report_topic: str | None = None  # sinks: where each run's outcome is reported
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
        services = f"{release}-algorail"
        return cls(release=release, services_release=services, plan_config_map=f"{release}-plan",
                   gateway_service=gateway_service or f"{services}-gateway")


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
    clean_topics_on_delete: bool = False
    error_topic: str
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


def load_plan(
    path: str | Path, deployment: str | None = None, bindings: dict[str, Any] | None = None
) -> Plan:
    """A plan JSON written by `algorail plan -o` as it is; a pipeline file, compiled."""
    document = read_document(path)
    if document.get("api_version") != PLAN_API_VERSION:
        return compile_plan(load_pipeline(path, bindings=bindings), deployment=deployment)
    try:
        return Plan.model_validate(document)
    except ValidationError as exc:
        raise AlgorailError(
            f"{path}: not a plan this algorail can read; recompile it with "
            f"`algorail plan PIPELINE.yaml -o {path}`:\n{exc}"
        ) from None


def compile_plan(pipeline: Pipeline, deployment: str | None = None) -> Plan:
    """Compile a validated pipeline. `deployment` defaults to the pipeline's name."""
    return _Compiler(pipeline, deployment or pipeline.name).compile()


class _Compiler:
    def __init__(self, pipeline: Pipeline, deployment: str):
        self.pipeline = pipeline
        self.graph = PipelineGraph(pipeline)
        self.owner = pipeline.metadata.owner
        self.version = pipeline.metadata.version
        self.deployment = deployment
        self.index = {name: i for i, name in enumerate(self.graph.components, start=1)}
        self.topics: dict[str, TopicPlan] = {}

    def compile(self) -> Plan:
        meta, spec = self.pipeline.metadata, self.pipeline.spec
        self.error_topic = naming.error_topic(self.owner, self.deployment)
        routes = [self._route(ep, p) for ep in spec.endpoints for p in ep.paths]
        for ext in spec.external_inputs:
            self._topic(self._external_topic(ext), "external", ext.name, "out", external=True)
        connectors = [self._connector(s, "source") for s in spec.data_sources]
        runners = [self._runner(a) for a in spec.algos]
        connectors += [self._connector(s, "sink") for s in spec.data_sinks]
        output_topic = None
        if any(h.type == "response" for h in spec.hooks):
            output_topic = naming.pipeline_output_topic(self.owner, self.deployment)
            self._topic(output_topic, "pipeline-output")
        hooks = [self._hook(h, output_topic) for h in spec.hooks]
        self._topic(self.error_topic, "error")
        self._apply_topic_settings()
        return Plan(
            owner=self.owner,
            pipeline=meta.name,
            version=self.version,
            deployment=self.deployment,
            description=meta.description,
            labels=meta.labels,
            annotations=meta.annotations,
            source_file=self.pipeline.source_file,
            base_dir=self.pipeline.base_dir,
            allow_cycles=spec.allow_cycles,
            clean_topics_on_delete=spec.clean_topics_on_delete,
            error_topic=self.error_topic,
            output_topic=output_topic,
            topics=list(self.topics.values()),
            runners=runners,
            routes=routes,
            hooks=hooks,
            connectors=connectors,
            helm=HelmNames.for_release(naming.helm_release(self.owner, self.deployment)),
        )

    # -- pieces ---------------------------------------------------------------------------

    def _topic(
        self,
        name: str,
        role: str,
        component: str | None = None,
        port: str | None = None,
        content_type: str = "application/json",
        external: bool = False,
    ) -> str:
        if name not in self.topics:
            self.topics[name] = TopicPlan(
                name=name,
                role=role,
                component=component,
                port=port,
                content_type=content_type,
                external=external,
            )
        return name

    def _apply_topic_settings(self) -> None:
        """Partitions and replication factor the pipes set, on the topics they read."""
        for edge in self.graph.edges:
            topic = self.topics.get(self._source_topic(edge))
            if topic is None or topic.external:
                continue
            if edge.partitions is not None:
                topic.partitions = edge.partitions
            if edge.replication_factor is not None:
                topic.replication_factor = edge.replication_factor

    def _id(self, name: str) -> str:
        return naming.component_id(self.owner, name, self.version, self.index[name])

    def _dead_letter(self, component: str) -> str:
        topic = naming.dead_letter_topic(self.owner, self.deployment, component)
        return self._topic(topic, "dead-letter", component)

    def _group(self, component: str) -> str:
        return naming.consumer_group(self.owner, self.deployment, component)

    def _source_topic(self, edge: Edge) -> str:
        comp = self.graph.components[edge.source.component]
        if comp.kind == "endpoint":
            return naming.endpoint_topic(self.owner, self.deployment, edge.source.port)
        if comp.kind == "external input":
            return self._external_topic(comp.spec)
        return naming.output_topic(self.owner, self.deployment, comp.name, edge.source.port)

    def _external_topic(self, ext: Any) -> str:
        if ext.topic:
            return ext.topic
        owner = ext.owner or self.owner
        if ext.component:
            return naming.output_topic(owner, ext.pipeline, ext.component, ext.port)
        if ext.port == "outputs":
            return naming.pipeline_output_topic(owner, ext.pipeline)
        return naming.endpoint_topic(owner, ext.pipeline, ext.port)

    def _input(self, edge: Edge, name: str) -> InputPlan:
        source = self.graph.components[edge.source.component]
        return InputPlan(
            name=name,
            topic=self._source_topic(edge),
            source=str(edge.source),
            content_type=source.outputs[edge.source.port],
            fields=edge.fields,
            map=edge.map,
        )

    def _outputs(self, component: str, ports: dict[str, str]) -> dict[str, str]:
        out = {}
        for port, content_type in ports.items():
            topic = naming.output_topic(self.owner, self.deployment, component, port)
            out[port] = self._topic(topic, "output", component, port, content_type)
        return out

    def _route(self, endpoint: Any, path: Any) -> RoutePlan:
        topic = naming.endpoint_topic(self.owner, self.deployment, path.name)
        self._topic(topic, "endpoint", endpoint.name, path.name, path.content_type)
        reachable = self.graph.reachable_from(endpoint.name, path.name)
        hooks = [h.name for h in self.pipeline.spec.hooks if h.name in reachable]
        sinks = [s.name for s in self.pipeline.spec.data_sinks if s.name in reachable]
        return RoutePlan(
            endpoint=endpoint.name,
            path=path.name,
            id=self._id(endpoint.name),
            type=path.type,
            url=naming.route_url(self.owner, self.deployment, path.name),
            topic=topic,
            message_data_type=path.message_data_type,
            content_type=path.content_type,
            json_schema=path.json_schema,
            protocol=path.protocol,
            hooks=hooks,
            sinks=sinks,
        )

    def _runner(self, algo: Any) -> RunnerPlan:
        inputs = [self._input(e, e.target.port) for e in self.graph.edges_into(algo.name, False)]
        order = [p.name for p in algo.inputs]
        inputs.sort(key=lambda i: order.index(i.name))
        triggers = [
            self._input(e, f"trigger-{n}")
            for n, e in enumerate(self.graph.edges_into(algo.name, True))
        ]
        ports = {p.name: p.content_type for p in algo.outputs}
        join = algo.join
        if join is None and len(algo.inputs) > 1:
            join = Join()
        return RunnerPlan(
            component=algo.name,
            id=self._id(algo.name),
            index=self.index[algo.name],
            ref=algo.ref or f"{self.owner}/{algo.name}:{self.version}",
            runtime=algo.runtime,
            command=algo.command,
            entrypoint=algo.entrypoint,
            url=algo.url,
            image=algo.image,
            env=algo.env,
            config=algo.config,
            inputs=inputs,
            triggers=triggers,
            join=join,
            triggers_join=algo.triggers_join,
            batch=algo.batch,
            input_mode=algo.input_mode,
            file_input=algo.file_input,
            outputs=self._outputs(algo.name, ports),
            output_content_types=ports,
            error_topic=self.error_topic,
            dead_letter_topic=self._dead_letter(algo.name),
            consumer_group=self._group(algo.name),
            timeout_ms=algo.timeout_ms,
            retry=algo.retry,
            replicas=algo.replicas,
            resources=algo.resources,
            base_dir=self.pipeline.base_dir,
        )

    def _connector(self, comp: Any, kind: Literal["source", "sink"]) -> ConnectorPlan:
        """A data source (it produces to its output topics) or sink (it subscribes)."""
        if kind == "source":
            wiring: dict[str, Any] = {
                "outputs": self._outputs(comp.name, {p.name: p.content_type for p in comp.outputs})
            }
        else:
            edges = self.graph.edges_into(comp.name)
            report = naming.sink_report_topic(self.owner, self.deployment, comp.name)
            wiring = {"inputs": [self._input(e, e.target.port) for e in edges],
                      "report_topic": self._topic(report, "sink-report", comp.name)}
        return ConnectorPlan(
            name=comp.name,
            id=self._id(comp.name),
            index=self.index[comp.name],
            kind=kind,
            connector=comp.connector,
            connect_name=naming.kafka_connector_name(self.owner, self.deployment, comp.name),
            config=comp.config,
            dead_letter_topic=self._dead_letter(comp.name),
            consumer_group=self._group(comp.name),
            **wiring,
        )

    def _hook(self, hook: Any, output_topic: str | None) -> HookPlan:
        edges = self.graph.edges_into(hook.name)
        return HookPlan(
            name=hook.name,
            id=self._id(hook.name),
            index=self.index[hook.name],
            type=hook.type,
            config=hook.config,
            join=hook.join,
            inputs=[self._input(e, str(e.source)) for e in edges],
            dead_letter_topic=self._dead_letter(hook.name),
            consumer_group=self._group(hook.name),
            publish_topic=output_topic if hook.type == "response" else None,
        )
