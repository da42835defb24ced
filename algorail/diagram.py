"""Pictures of a pipeline: Mermaid flowcharts and Graphviz dot, from the resolved graph,
and SVG or PNG images drawn from the dot text by Graphviz's `dot` (the system package:
`apt-get install graphviz`, `brew install graphviz`).

With live status each component is filled by its state and each pipe labelled with its
rate in messages per second.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from algorail.errors import AlgorailError
from algorail.graph import PipelineGraph
from algorail.spec import Pipeline

STATE_COLOURS = {
    "running": "palegreen",
    "up to date": "palegreen",
    "catching up": "khaki",
    "stalled": "orange",
    "down": "salmon",
}
UNKNOWN_COLOUR = "lightgrey"
IMAGE_FORMATS = ("svg", "png")


@dataclass
class LiveStatus:
    """What `algorail status` saw: state per component, rate per pipe (`component.port`)."""

    states: dict[str, str] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)

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


def to_dot(pipeline: Pipeline, status: LiveStatus | None = None) -> str:
    graph = PipelineGraph(pipeline)
    lines = [f'digraph "{pipeline.owner}/{pipeline.name}" {{', "    rankdir=LR;"]
    for comp in graph.components.values():
        label, fill = f"{comp.name}\\n({comp.kind})", ""
        if status is not None:
            state = status.states.get(comp.name)
            if state:
                label += f"\\n{state}"
            colour = STATE_COLOURS.get(state or "", UNKNOWN_COLOUR)
            fill = f', style=filled, fillcolor="{colour}"'
        lines.append(
            f'    {_node_id(comp.name)} [label="{label}", '
            f"shape={_DOT_SHAPES[comp.kind]}{fill}];"
        )
    for edge in graph.edges:
        style = ", style=dashed" if edge.trigger else ""
        label = _edge_label(edge).replace('"', "'")
        rate = status.rates.get(str(edge.source)) if status is not None else None
        if rate is not None:
            label += f"\\n{rate:g} msg/s"
        lines.append(
            f"    {_node_id(edge.source.component)} -> {_node_id(edge.target.component)} "
            f'[label="{label}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"mermaid": to_mermaid, "dot": to_dot}


def render_image(dot_text: str, fmt: str) -> bytes:
    """The dot text drawn as an SVG or PNG by Graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise AlgorailError("drawing images needs Graphviz's `dot` on PATH: install the "
                            "graphviz package (apt-get install graphviz, brew install graphviz)")
    done = subprocess.run([dot, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                          capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AlgorailError(f"Graphviz could not draw the graph: "
                            f"{done.stderr.decode('utf-8', 'replace').strip()}")
    return done.stdout
