"""Event Flows: which algos subscribe to or publish to external brokers and queues.

A flow is a data source or sink whose connector is an external broker or queue (its
plugin has an ``event_flow_type``: Kafka, AmazonSQS, AzureServiceBus). Flows are listed
per owner, like Algorithmia's event-listeners API, from pipeline files or plan files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from algorail.errors import AlgorailError


@dataclass
class EventFlow:
    owner: str
    pipeline: str
    deployment: str
    component: str
    direction: str  # "subscribe" (into the pipeline) or "publish" (out of it)
    source_type: str
    uri: str
    algos: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_flows(plan: Any, registry: Any = None) -> list[EventFlow]:
    if registry is None:
        from algorail.plugin_manager import get_registry

        registry = get_registry()
    flows = []
    for cp in plan.connectors:
        connector = registry.connectors.get(cp.connector)
        flow_type = getattr(connector, "event_flow_type", None)
        if flow_type is None:
            continue
        flows.append(EventFlow(
            owner=plan.owner,
            pipeline=plan.pipeline,
            deployment=plan.deployment,
            component=cp.name,
            direction="subscribe" if cp.kind == "source" else "publish",
            source_type=flow_type,
            uri=connector.event_flow_uri(cp.config),
            algos=_algos(plan, cp),
        ))
    return flows


def _algos(plan: Any, cp: Any) -> list[str]:
    """Algos fed by a source, or feeding a sink."""
    if cp.kind == "source":
        topics = set(cp.outputs.values())
        return [r.component for r in plan.runners
                if any(i.topic in topics for i in [*r.inputs, *r.triggers])]
    topics = {i.topic for i in cp.inputs}
    return [r.component for r in plan.runners if topics & set(r.outputs.values())]


def plan_from_file(path: str | Path, deployment: str | None = None,
                   bindings: dict[str, Any] | None = None) -> Any:
    """A plan from a plan JSON file or a pipeline file (compiled); None for other files."""
    from algorail.compiler import load_plan
    from algorail.plan import PLAN_API_VERSION
    from algorail.spec import read_document

    document = read_document(path)
    if document.get("api_version") != PLAN_API_VERSION and document.get("kind") != "Pipeline":
        return None
    return load_plan(path, deployment, bindings)


def load_plans(paths: list[str]) -> list[Any]:
    """Plans from plan JSON files, pipeline files, or folders of them."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        elif path.exists():
            files.append(path)
        else:
            raise AlgorailError(f"{path}: no such file or folder")
    return [plan for plan in map(plan_from_file, files) if plan is not None]


def flows_by_owner(flows: list[EventFlow], owner: str | None = None) -> dict[str, list[EventFlow]]:
    grouped: dict[str, list[EventFlow]] = {}
    for flow in flows:
        if owner is None or flow.owner == owner:
            grouped.setdefault(flow.owner, []).append(flow)
    return grouped
