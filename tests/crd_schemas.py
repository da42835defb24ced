"""Upstream CRDs for tests: where ../shared/schemas is, and schemas in which unknown fields
are errors, as `kubectl apply --validate=strict` treats them."""

from __future__ import annotations

import functools
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


@functools.cache
def crd_validator(path: Path, api_version: str, kind: str) -> Any:
    """A strict validator of `kind` in `api_version` from the CRD file `path`."""
    import jsonschema
    import yaml

    group, _, version = api_version.partition("/")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
        if (crd or {}).get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        (served,) = [v for v in spec["versions"] if v["name"] == version and v.get("served")]
        schema = strict(served["schema"]["openAPIV3Schema"])
        return jsonschema.validators.validator_for(schema)(schema)
    raise AssertionError(f"{path.name} has no {kind} in {api_version}")
