"""The compiler: a valid pipeline -> a plain, serialisable deployment plan (`algorail.plan`).

Every name downstream code needs (topics, consumer groups, URLs, `algorail-source` labels,
Helm object names) is derived here once, through `algorail.naming`, and stored in the plan;
spec model instances never reach the plan, whose types are its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from algorail import naming
from algorail.backoff import Backoff
from algorail.errors import AlgorailError
from algorail.graph import Edge, PipelineGraph
from algorail.loader import load_pipeline
from algorail.plan import (
    PLAN_API_VERSION,
    BatchPlan,
    ConnectorPlan,
    HelmNames,
    HookPlan,
    InputPlan,
    JoinPlan,
    Plan,
    RetryPlan,
    RetryTopic,
    RoutePlan,
    RunnerPlan,
    TopicPlan,
)
from algorail.spec import Join, Pipeline, read_document


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
            max_step_revisits=spec.max_step_revisits,
            clean_topics_on_delete=spec.clean_topics_on_delete,
            error_topic=self.error_topic,
            errors_consumer_group=naming.errors_consumer_group(self.owner, self.deployment),
            runs_url=naming.runs_url(self.owner, self.deployment),
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
                pipe=naming.pipe(role, component, port),
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

    def _retry_topics(self, component: str, retry: Any) -> list[RetryTopic]:
        """One topic per distinct backoff wait of the algo's retries."""
        waits = Backoff.from_ms(retry.backoff_ms, retry.max_backoff_ms).steps(retry.attempts)
        return [RetryTopic(name=self._topic(naming.retry_topic(self.owner, self.deployment,
                                                               component, step), "retry",
                                            component),
                           delay_ms=round(wait * 1000))
                for step, wait in enumerate(waits, 1)]

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
            source=naming.source(edge.source.component, edge.source.port),
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
            object_prefix=naming.object_prefix(self.owner, self.deployment, path.name),
            content_type=path.content_type,
            source=naming.source(endpoint.name, path.name),
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
        if join is None and (len(algo.inputs) > 1 or triggers):
            join = Join()  # the spec's defaults: the window triggers wait in
        return RunnerPlan(
            component=algo.name,
            id=self._id(algo.name),
            index=self.index[algo.name],
            ref=algo.ref or naming.algo_ref(self.owner, algo.name, self.version),
            runtime=algo.runtime,
            command=algo.command,
            entrypoint=algo.entrypoint,
            url=algo.url,
            image=algo.image,
            env=algo.env,
            config=algo.config,
            inputs=inputs,
            triggers=triggers,
            join=JoinPlan(**join.model_dump()) if join else None,
            triggers_join=algo.triggers_join,
            batch=BatchPlan(**algo.batch.model_dump()) if algo.batch else None,
            input_mode=algo.input_mode,
            file_input=algo.file_input,
            outputs=self._outputs(algo.name, ports),
            output_content_types=ports,
            output_sources={port: naming.source(algo.name, port) for port in ports},
            error_source=naming.error_source(algo.name),
            error_topic=self.error_topic,
            dead_letter_topic=self._dead_letter(algo.name),
            consumer_group=self._group(algo.name),
            timeout_ms=algo.timeout_ms,
            retry=RetryPlan(**algo.retry.model_dump()),
            retry_topics=self._retry_topics(algo.name, algo.retry),
            replicas=algo.replicas,
            resources=algo.resources,
            base_dir=self.pipeline.base_dir,
        )

    def _connector(self, comp: Any, kind: Literal["source", "sink"]) -> ConnectorPlan:
        """A data source (it produces to its output topics) or sink (it subscribes)."""
        if kind == "source":
            ports = {p.name: p.content_type for p in comp.outputs}
            wiring: dict[str, Any] = {
                "outputs": self._outputs(comp.name, ports),
                "output_sources": {port: naming.source(comp.name, port) for port in ports},
            }
        else:
            edges = self.graph.edges_into(comp.name)
            report = naming.sink_report_topic(self.owner, self.deployment, comp.name)
            wiring = {"inputs": [self._input(e, e.target.port) for e in edges],
                      "report_topic": self._topic(report, "sink-report", comp.name),
                      "report_source": naming.sink_report_source(comp.name),
                      "report_consumer_group": naming.sink_report_consumer_group(
                          self.owner, self.deployment, comp.name)}
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
            inputs=[self._input(e, naming.source(e.source.component, e.source.port))
                    for e in edges],
            dead_letter_topic=self._dead_letter(hook.name),
            consumer_group=self._group(hook.name),
            publish_topic=output_topic if hook.type == "response" else None,
            publish_source=naming.source(hook.name, "outputs") if hook.type == "response"
            else None,
        )
