"""The calling convention every algo runtime shares, as pure functions.

Inputs: an algo with one input receives that input's payload; with several, a dict
keyed by input name, or one merged dict when ``input_mode == "merged"`` (Seldon steps,
whose inputs are dicts of tensors). ``InputPlan.fields`` keeps only those JSON fields
(none present = the input counts as skipped: Seldon conditional routing) and
``InputPlan.map`` renames fields (Seldon tensorMap).

Outputs: with one output port the return value is that port's payload (None = no
output); with several, a dict keyed by port name, and a port left out produces nothing
(downstream receives a skip marker).

Batches (``batch`` on an algo): without ``rolling`` the algo receives a list of calls
and returns a list with one result per call; with ``rolling`` it receives the last
``size`` calls, newest last, and returns the result of the newest one.
"""

from __future__ import annotations

from typing import Any

from algorail.errors import AlgorailError


class ConventionError(AlgorailError):
    """An algo returned something the calling convention cannot route."""


def select_fields(
    payload: Any, fields: list[str] | None, rename: dict[str, str]
) -> tuple[Any, bool]:
    """Apply an input's field filter and renames. Returns (payload, skipped)."""
    if fields is not None:
        if not isinstance(payload, dict):
            return None, True
        payload = {k: payload[k] for k in fields if k in payload}
        if not payload:
            return None, True
    if rename and isinstance(payload, dict):
        payload = {rename.get(k, k): v for k, v in payload.items()}
    return payload, False


def call_payload(input_names: list[str], values: dict[str, Any], input_mode: str) -> Any:
    """What the algo is called with, from the payloads that arrived, keyed by input name."""
    if input_mode == "merged":
        merged: dict[str, Any] = {}
        for name in input_names:
            value = values.get(name)
            if isinstance(value, dict):
                merged.update(value)
            elif name in values:
                merged[name] = value
        return merged
    if len(input_names) == 1:
        return values.get(input_names[0])
    return {name: values[name] for name in input_names if name in values}


def split_outputs(ports: list[str], result: Any) -> dict[str, Any]:
    """The algo's return value -> payload per port that produced something."""
    if len(ports) == 1:
        return {} if result is None else {ports[0]: result}
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise ConventionError(
            f"an algo with outputs {', '.join(ports)} must return a dict keyed by port "
            f"name, not {type(result).__name__}"
        )
    unknown = sorted(set(result) - set(ports))
    if unknown:
        raise ConventionError(
            f"the algo returned unknown output port(s) {', '.join(unknown)}; "
            f"its ports are {', '.join(ports)}"
        )
    return {port: result[port] for port in ports if result.get(port) is not None}


def split_batch(result: Any, size: int) -> list[Any]:
    """A non-rolling batch result -> one result per call in the batch."""
    if not isinstance(result, list) or len(result) != size:
        got = f"a list of {len(result)}" if isinstance(result, list) else type(result).__name__
        raise ConventionError(
            f"a batched algo must return a list with one result per call ({size}), got {got}"
        )
    return result
