"""Rules that span components: pipes, ports, content types, cycles, joins, plugin names.

`PipelineGraph` resolves every pipe and trigger to (component, port) pairs once; the
compiler (`algorail.compiler`) and the diagrams read the same resolution.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from algorail import naming
from algorail.errors import Problem
from algorail.runtime import codec
from algorail.spec import Pipeline

KINDS = ("endpoint", "data source", "algo", "data sink", "hook", "external input")
HOOK_PORT = "in"
EXTERNAL_PORT = "out"


@dataclass(frozen=True)
class PortRef:
    component: str
    port: str

    def __str__(self) -> str:
        return f"{self.component}.{self.port}"


@dataclass
class Component:
    """A node of the graph: its kind, spec object, and named ports with content types."""

    name: str
    kind: str
    spec: Any
    outputs: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass
class Edge:
    """A resolved pipe (or trigger): data flows from `source` to `target`."""

    source: PortRef
    target: PortRef
    fields: list[str] | None
    map: dict[str, str]
    trigger: bool = False
    partitions: int | None = None  # the source topic's settings, when the pipe sets them
    replication_factor: int | None = None


class PipelineGraph:
    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.file = pipeline.source_file
        self.problems: list[Problem] = []
        self.components: dict[str, Component] = {}
        self.edges: list[Edge] = []
        # Inputs some pipe names, even a broken one: not reported again as unconnected.
        self.piped: set[PortRef] = set()
        self._add_components()
        self._resolve_pipes()
        self._resolve_triggers()

    # -- building -------------------------------------------------------------------------

    def problem(self, rule: str, message: str, component: str | None = None) -> None:
        self.problems.append(Problem(rule, message, component=component, file=self.file))

    def _add(self, component: Component) -> None:
        if component.name in self.components:
            other = self.components[component.name]
            self.problem(
                "unique-name",
                f"name {component.name!r} is already used by {other.label}; "
                "component names must be unique in a pipeline",
                component.label,
            )
            return
        self.components[component.name] = component

    def _add_components(self) -> None:
        spec = self.pipeline.spec
        for ep in spec.endpoints:
            self._add(Component(ep.name, "endpoint", ep, outputs=_ports(ep.paths)))
        for src in spec.data_sources:
            self._add(Component(src.name, "data source", src, outputs=_ports(src.outputs)))
        for algo in spec.algos:
            self._add(
                Component(
                    algo.name,
                    "algo",
                    algo,
                    outputs=_ports(algo.outputs),
                    inputs=_ports(algo.inputs),
                )
            )
        for sink in spec.data_sinks:
            self._add(Component(sink.name, "data sink", sink, inputs=_ports(sink.inputs)))
        for hook in spec.hooks:
            self._add(Component(hook.name, "hook", hook, inputs={HOOK_PORT: "*/*"}))
        for ext in spec.external_inputs:
            self._add(
                Component(
                    ext.name, "external input", ext, outputs={EXTERNAL_PORT: ext.content_type}
                )
            )

    def _resolve(self, ref: str, direction: str, where: str) -> PortRef | None:
        """Resolve `component` or `component.port` to an output or input port."""
        name, _, port = ref.partition(".")
        comp = self.components.get(name)
        if comp is None:
            known = ", ".join(sorted(self.components)) or "none"
            self.problem(
                "unknown-component", f"{where}: no component named {name!r} (components: {known})"
            )
            return None
        ports = comp.outputs if direction == "output" else comp.inputs
        if not ports:
            other = "receives data" if direction == "output" else "sends data"
            self.problem(
                "pipe-direction",
                f"{where}: {comp.label} has no {direction} ports; it only {other}",
                comp.label,
            )
            return None
        if not port:
            if len(ports) != 1:
                self.problem(
                    "unknown-port",
                    f"{where}: {comp.label} has several {direction} ports "
                    f"({', '.join(sorted(ports))}); name one as {name}.PORT",
                    comp.label,
                )
                return None
            port = next(iter(ports))
        if port not in ports:
            self.problem(
                "unknown-port",
                f"{where}: {comp.label} has no {direction} port {port!r} "
                f"({direction} ports: {', '.join(sorted(ports))})",
                comp.label,
            )
            return None
        return PortRef(name, port)

    def _resolve_pipes(self) -> None:
        fed: dict[PortRef, str] = {}
        topic_settings: dict[PortRef, tuple[tuple[int | None, int | None], str]] = {}
        for pipe in self.pipeline.spec.pipes:
            where = f"pipe {pipe.from_} -> {pipe.to}"
            source = self._resolve(pipe.from_, "output", where)
            target = self._resolve(pipe.to, "input", where)
            if target is not None:
                self.piped.add(target)
            if source is None or target is None:
                continue
            target_comp = self.components[target.component]
            if target_comp.kind != "hook":
                if target in fed:
                    self.problem(
                        "one-pipe-per-input",
                        f"{where}: input {target} already has a pipe from {fed[target]}; "
                        "an input port accepts one pipe (an output may feed many)",
                        target_comp.label,
                    )
                    continue
                fed[target] = str(source)
            settings = (pipe.partitions, pipe.replication_factor)
            if settings != (None, None):
                if source in topic_settings and topic_settings[source][0] != settings:
                    self.problem(
                        "one-topic-setting",
                        f"{where}: partitions/replicationFactor differ from those of "
                        f"{topic_settings[source][1]}; the pipes from {source} share one "
                        "topic, so set them alike (or on one pipe only)",
                        self.components[source.component].label,
                    )
                topic_settings.setdefault(source, (settings, where))
            self.edges.append(Edge(source, target, pipe.fields, dict(pipe.map),
                                   partitions=pipe.partitions,
                                   replication_factor=pipe.replication_factor))

    def _resolve_triggers(self) -> None:
        for algo in self.pipeline.spec.algos:
            for trig in algo.triggers:
                where = f"trigger {trig.from_} of algo {algo.name!r}"
                source = self._resolve(trig.from_, "output", where)
                if source is not None:
                    self.edges.append(
                        Edge(source, PortRef(algo.name, "trigger"), trig.fields, {}, trigger=True)
                    )

    # -- queries --------------------------------------------------------------------------

    def edges_into(self, component: str, trigger: bool | None = None) -> list[Edge]:
        return [
            e
            for e in self.edges
            if e.target.component == component and (trigger is None or e.trigger == trigger)
        ]

    def successors(self) -> dict[str, set[str]]:
        nxt: dict[str, set[str]] = defaultdict(set)
        for e in self.edges:
            nxt[e.source.component].add(e.target.component)
        return nxt

    def reachable_from(self, component: str, port: str | None = None) -> set[str]:
        """Components downstream of a component (or of one of its output ports)."""
        nxt = self.successors()
        start = {
            e.target.component
            for e in self.edges
            if e.source.component == component and (port is None or e.source.port == port)
        }
        seen: set[str] = set()
        stack = list(start)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(nxt.get(name, ()))
        return seen

    def cycles(self) -> list[list[str]]:
        """Strongly connected components that form a cycle, each in pipeline order."""
        order = {name: i for i, name in enumerate(self.components)}
        nxt = self.successors()
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        counter = 0

        def visit(start: str) -> None:
            nonlocal counter
            work = [(start, iter(sorted(nxt.get(start, ()), key=order.get)))]
            index[start] = low[start] = counter
            counter += 1
            stack.append(start)
            on_stack.add(start)
            while work:
                node, it = work[-1]
                advanced = False
                for succ in it:
                    if succ not in index:
                        index[succ] = low[succ] = counter
                        counter += 1
                        stack.append(succ)
                        on_stack.add(succ)
                        work.append((succ, iter(sorted(nxt.get(succ, ()), key=order.get))))
                        advanced = True
                        break
                    if succ in on_stack:
                        low[node] = min(low[node], index[succ])
                if advanced:
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    scc = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        scc.append(member)
                        if member == node:
                            break
                    if len(scc) > 1 or node in nxt.get(node, ()):
                        found.append(sorted(scc, key=order.get))

        for name in self.components:
            if name not in index:
                visit(name)
        return sorted(found, key=lambda scc: order[scc[0]])


def _ports(items: Any) -> dict[str, str]:
    return {p.name: p.content_type for p in items}


# -- rules ----------------------------------------------------------------------------------


def check_pipeline(pipeline: Pipeline, registry: Any = None) -> list[Problem]:
    """Every rule, every problem: an empty list means the pipeline is valid."""
    graph = PipelineGraph(pipeline)
    _check_names(graph)
    _check_content_types(graph)
    _check_inputs_fed(graph)
    _check_cycles(graph)
    _check_algo_settings(graph)
    _check_schemas(graph)
    _check_external_inputs(graph)
    _check_plugins(graph, registry)
    return graph.problems


def code_problems(pipeline: Pipeline, registry: Any = None) -> list[Problem]:
    """Algos whose code cannot be found on this machine (`AlgoRuntime.check_code`): what
    `algorail validate` adds to the rules, which hold wherever the pipeline runs."""
    if registry is None:
        from algorail.plugin_manager import get_registry

        registry = get_registry()
    problems = []
    for algo in pipeline.spec.algos:
        runtime = registry.runtimes.get(algo.runtime)
        for message in runtime.check_code(algo, pipeline) if runtime else []:
            problems.append(Problem("entrypoint", message, component=f"algo {algo.name!r}",
                                    file=pipeline.source_file))
    return problems


def _check_name(graph: PipelineGraph, name: str, what: str, component: str | None) -> None:
    annotations = graph.pipeline.metadata.annotations
    if annotations.get(naming.NAME_RULES_ANNOTATION) == "seldon" and naming.is_seldon_name(name):
        return  # a Seldon manifest keeps Seldon's names (algorail/seldon.py checks them)
    if not naming.is_valid_name(name):
        graph.problem("name", f"{what} {name!r} is not a valid name: {naming.NAME_RULE}", component)


def _check_names(graph: PipelineGraph) -> None:
    meta = graph.pipeline.metadata
    _check_name(graph, meta.owner, "owner", None)
    _check_name(graph, meta.name, "pipeline name", None)
    if not naming.VERSION_RE.match(meta.version):
        graph.problem(
            "version", f"version {meta.version!r} is not a semantic version like 1.0.0", None
        )
    paths_seen: dict[str, str] = {}
    for comp in graph.components.values():
        _check_name(graph, comp.name, comp.kind + " name", comp.label)
        for port, what in [(p, "output") for p in comp.outputs] + [
            (p, "input") for p in comp.inputs
        ]:
            what = "path" if comp.kind == "endpoint" else what + " port"
            _check_name(graph, port, what, comp.label)
        if comp.kind == "endpoint":
            for path in comp.spec.paths:
                if path.name in paths_seen:
                    graph.problem(
                        "unique-name",
                        f"path {path.name!r} is also defined by endpoint "
                        f"{paths_seen[path.name]!r}; "
                        "paths form the URL /{owner}/{deployment}/{path} and must be unique",
                        comp.label,
                    )
                paths_seen[path.name] = comp.name
        spec = comp.spec
        for attr in ("paths", "inputs", "outputs"):
            names = [p.name for p in getattr(spec, attr, None) or []]
            for dup in sorted({n for n in names if names.count(n) > 1}):
                graph.problem("unique-name", f"{attr[:-1]} {dup!r} is declared twice", comp.label)
        if comp.kind == "algo" and spec.ref is not None and not naming.REF_RE.match(spec.ref):
            graph.problem(
                "ref",
                f"ref {spec.ref!r} must look like owner/name:version, e.g. alice/upper:1.0.0",
                comp.label,
            )


def _check_content_types(graph: PipelineGraph) -> None:
    for e in graph.edges:
        src = graph.components[e.source.component]
        produced = src.outputs[e.source.port]
        if e.trigger:
            accepted = "*/*"
        else:
            accepted = graph.components[e.target.component].inputs[e.target.port]
        kind = "trigger" if e.trigger else "pipe"
        if not codec.compatible(produced, accepted):
            graph.problem(
                "content-type",
                f"{kind} {e.source} -> {e.target}: {e.source} produces {produced!r} "
                f"but {e.target} accepts {accepted!r}",
                graph.components[e.target.component].label,
            )
        if (e.fields or e.map) and not codec.is_json(produced):
            graph.problem(
                "content-type",
                f"{kind} {e.source} -> {e.target}: 'fields' and 'map' select JSON fields, "
                f"but {e.source} produces {produced!r}",
                graph.components[e.target.component].label,
            )


def _check_inputs_fed(graph: PipelineGraph) -> None:
    for comp in graph.components.values():
        if comp.kind == "hook":
            if PortRef(comp.name, HOOK_PORT) not in graph.piped:
                graph.problem("unconnected", "no pipe delivers anything to this hook", comp.label)
            continue
        for port in comp.inputs:
            if PortRef(comp.name, port) not in graph.piped:
                graph.problem(
                    "unconnected",
                    f"input {port!r} has no pipe; add one with to: {comp.name}.{port}",
                    comp.label,
                )


def _check_cycles(graph: PipelineGraph) -> None:
    if graph.pipeline.spec.allow_cycles:
        return
    for scc in graph.cycles():
        path = " -> ".join(scc + [scc[0]])
        graph.problem(
            "cycle",
            f"components {', '.join(repr(c) for c in scc)} form a cycle ({path}); "
            "break it or set allowCycles: true",
            graph.components[scc[0]].label,
        )


def _check_algo_settings(graph: PipelineGraph) -> None:
    for algo in graph.pipeline.spec.algos:
        label = f"algo {algo.name!r}"
        if algo.join is not None and len(algo.inputs) < 2 and not algo.triggers:
            graph.problem(
                "join",
                "join is set but the algo has one input and no triggers; a join needs two or "
                "more inputs, or triggers (whose window it sets)",
                label,
            )
        if algo.join is not None and algo.join.type == "outer" and algo.join.window_ms == 0:
            graph.problem(
                "join", "an outer join waits for its window; windowMs must be above 0", label
            )
        if "triggers_join" in algo.model_fields_set and not algo.triggers:
            graph.problem("triggers", "triggersJoin is set but the algo has no triggers", label)
        if algo.batch is not None and algo.batch.size is None and algo.batch.window_ms is None:
            graph.problem("batch", "batch needs size, windowMs, or both", label)
        if algo.batch is not None and algo.join is not None and algo.join.type == "outer":
            graph.problem(
                "batch",
                f"batch combines whole runs; it cannot follow a {algo.join.type} join",
                label,
            )


def _check_schemas(graph: PipelineGraph) -> None:
    for ep in graph.pipeline.spec.endpoints:
        for path in ep.paths:
            if path.json_schema is None:
                continue
            try:
                Draft202012Validator.check_schema(path.json_schema)
            except SchemaError as exc:
                graph.problem(
                    "schema",
                    f"path {path.name!r}: invalid JSON Schema: {exc.message}",
                    f"endpoint {ep.name!r}",
                )
            if not codec.is_json(path.content_type):
                graph.problem(
                    "schema",
                    f"path {path.name!r}: a JSON Schema needs a JSON contentType, "
                    f"not {path.content_type!r}",
                    f"endpoint {ep.name!r}",
                )


def _check_external_inputs(graph: PipelineGraph) -> None:
    for ext in graph.pipeline.spec.external_inputs:
        if (ext.topic is None) == (ext.pipeline is None):
            graph.problem(
                "external-input",
                "give either topic, or pipeline (with optional component and port)",
                f"external input {ext.name!r}",
            )


def _check_plugins(graph: PipelineGraph, registry: Any) -> None:
    if registry is None:
        from algorail.plugin_manager import get_registry

        registry = get_registry()
    spec = graph.pipeline.spec
    groups = [
        ("runtime", registry.runtimes, [(a, a.runtime, "algo") for a in spec.algos]),
        (
            "connector",
            registry.connectors,
            [(c, c.connector, "data source") for c in spec.data_sources]
            + [(c, c.connector, "data sink") for c in spec.data_sinks],
        ),
        ("hook type", registry.hook_types, [(h, h.type, "hook") for h in spec.hooks]),
    ]
    for what, installed, items in groups:
        for item, wanted, kind in items:
            label = f"{kind} {item.name!r}"
            plugin = installed.get(wanted)
            if plugin is None:
                names = ", ".join(sorted(installed)) or "none"
                graph.problem(
                    f"unknown-{what.replace(' ', '-')}",
                    f"no {what} named {wanted!r} is installed (installed: {names}); "
                    "see `algorail plugins`",
                    label,
                )
                continue
            for message in plugin.validate(item, graph.pipeline):
                graph.problem(f"{what.replace(' ', '-')}-config", message, label)
