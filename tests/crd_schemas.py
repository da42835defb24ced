"""Upstream CRDs for tests: where ../shared/schemas is, and schemas in which unknown fields
are errors, as `kubectl apply --validate=strict` treats them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _schemas_dir() -> Path | None:
    """../shared/schemas from the project root (in CI a clone with shared/ beside it), or
    the nearest shared/schemas above it (a checkout one level deeper, such as a worktree)."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "schemas"
        if candidate.is_dir():
            return candidate
    return None


SCHEMAS = _schemas_dir()
MISSING = "upstream CRD schemas not found at ../shared/schemas"


def strict(schema: Any) -> Any:
    """An openAPIV3Schema where unknown fields are errors."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: strict(v) for k, v in schema.items()}
    if ("properties" in result and "additionalProperties" not in result
            and not result.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    return result
