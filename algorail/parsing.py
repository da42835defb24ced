"""JSON and YAML from outside (pipeline files, request bodies), parsed within bounds.

Both parsers recurse once per nesting level, so a document nested thousands deep would
end in a `RecursionError` here or in whatever walks it next (validation, JSON Schema).
Nesting beyond `MAX_DEPTH` is refused with `ParseError` instead. JSON's `NaN` and
`Infinity` are refused too (they are not JSON), and YAML yields JSON values only: a
timestamp stays the string it was written as, and tags beyond JSON's types are refused.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

MAX_DEPTH = 100


class ParseError(ValueError):
    """Text that is not a JSON/YAML document within bounds; `line` is 1-based if known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def too_deep(limit: int) -> str:
    return f"nested deeper than {limit} levels"


def loads_json(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON (no NaN/Infinity) nested at most `max_depth` levels."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ParseError(f"JSON {too_deep(max_depth)}") from None
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc.msg}", exc.lineno) from None
    except ValueError as exc:  # _refuse_constant, or bytes that are not UTF-8/16/32
        raise ParseError(f"invalid JSON: {exc}") from None
    if _openings(data) > max_depth and depth_exceeds(value, max_depth):
        raise ParseError(f"JSON {too_deep(max_depth)}")
    return value


def _openings(data: str | bytes) -> int:
    """How many `[` and `{` the text holds: each nesting level opens with one, so a text
    with no more than the limit cannot nest beyond it (counted in C: request bodies are
    small and flat, and the walk below is Python)."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether lists/dicts in `value` nest deeper than `limit` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads_yaml(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one YAML document of JSON values nested at most `max_depth` levels."""
    try:
        loader = _JsonValuesLoader(text)  # checks the characters already
        loader.max_depth = max_depth
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ParseError(f"invalid YAML: {reason}", mark.line + 1 if mark else None) from None


class _JsonValuesLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting while composing and builds JSON values only."""

    max_depth = MAX_DEPTH
    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.depth >= self.max_depth and self.check_event(
            yaml.MappingStartEvent, yaml.SequenceStartEvent
        ):
            raise ParseError(f"YAML {too_deep(self.max_depth)}",
                             self.peek_event().start_mark.line + 1)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_not_json(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.tag} is not a JSON value", node.start_mark
        )


_JsonValuesLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str
)
for _tag in ("binary", "set", "omap", "pairs"):
    _JsonValuesLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}", _JsonValuesLoader.construct_not_json
    )
