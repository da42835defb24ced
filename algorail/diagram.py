"""Pictures of a pipeline: Mermaid flowcharts and Graphviz dot, from the resolved graph."""

from __future__ import annotations

from algorail.graph import PipelineGraph
from algorail.spec import Pipeline

_MERMAID_SHAPES = {
    "endpoint": ("([", "])"),
    "data source": ("[(", ")]"),
    "algo": ("[", "]"),
    "data sink": ("[(", ")]"),
    "hook": ("{{", "}}"),
    "external input": ("[/", "/]"),
}
_DOT_SHAPES = {
    "endpoint": "oval",
    "data source": "cylinder",
    "algo": "box",
    "data sink": "cylinder",
    "hook": "hexagon",
    "external input": "parallelogram",
}


def _node_id(name: str) -> str:
    return "n_" + name.replace("-", "_")


def _edge_label(edge) -> str:
    label = f"{edge.source.port}"
    if not edge.trigger and edge.target.port:
        label += f" → {edge.target.port}"
    if edge.fields:
        label += f" [{', '.join(edge.fields)}]"
    if edge.map:
        label += " {" + ", ".join(f"{k}: {v}" for k, v in edge.map.items()) + "}"
    return label


def to_mermaid(pipeline: Pipeline) -> str:
    graph = PipelineGraph(pipeline)
    lines = ["flowchart LR"]
    for comp in graph.components.values():
        left, right = _MERMAID_SHAPES[comp.kind]
        lines.append(f'    {_node_id(comp.name)}{left}"{comp.name}<br/><i>{comp.kind}</i>"{right}')
    for edge in graph.edges:
        arrow = "-.->" if edge.trigger else "-->"
        label = _edge_label(edge).replace('"', "'")
        lines.append(
            f'    {_node_id(edge.source.component)} {arrow}|"{label}"| '
            f"{_node_id(edge.target.component)}"
        )
    return "\n".join(lines) + "\n"


def to_dot(pipeline: Pipeline) -> str:
    graph = PipelineGraph(pipeline)
    lines = [f'digraph "{pipeline.owner}/{pipeline.name}" {{', "    rankdir=LR;"]
    for comp in graph.components.values():
        lines.append(
            f'    {_node_id(comp.name)} [label="{comp.name}\\n({comp.kind})", '
            f"shape={_DOT_SHAPES[comp.kind]}];"
        )
    for edge in graph.edges:
        style = ", style=dashed" if edge.trigger else ""
        label = _edge_label(edge).replace('"', "'")
        lines.append(
            f"    {_node_id(edge.source.component)} -> {_node_id(edge.target.component)} "
            f'[label="{label}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"mermaid": to_mermaid, "dot": to_dot}
