"""Loading a pipeline: its shape (`algorail.spec`), then every rule that spans components
(`algorail.graph`), so a `Pipeline` returned here is valid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from algorail.errors import PipelineError
from algorail.graph import check_pipeline
from algorail.spec import Pipeline, component_lines, parse_document, parse_pipeline, read_text


def load_pipeline(
    path: str | Path,
    bindings: dict[str, Any] | None = None,
    registry: Any = None,
) -> Pipeline:
    """Load and fully validate a pipeline file. Raises `PipelineError` listing every problem."""
    file = str(path)
    text = read_text(path)
    data = parse_document(text, file)
    try:
        return validate_document(data, file=file, bindings=bindings, registry=registry)
    except PipelineError as exc:
        lines = component_lines(text)
        raise PipelineError(
            [
                replace(p, line=lines.get(p.component)) if p.line is None else p
                for p in exc.problems
            ]
        ) from None


def validate_document(
    data: dict[str, Any],
    file: str | None = None,
    bindings: dict[str, Any] | None = None,
    registry: Any = None,
) -> Pipeline:
    """Shape checks and every graph rule on a loaded document; raises `PipelineError`."""
    pipeline = parse_pipeline(data, file=file, bindings=bindings)
    problems = check_pipeline(pipeline, registry=registry)
    if problems:
        raise PipelineError(problems)
    return pipeline
