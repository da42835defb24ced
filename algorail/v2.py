"""The V2 (Open/KServe) inference protocol's JSON form, as algorail uses it.

Inside a pipeline, tensors travel as a JSON object `{name: nested list}` (Seldon steps
receive and return that). These functions convert it to and from V2 bodies: the http
runtime speaks V2 to model servers, and the gateway accepts V2 requests from Seldon
clients and answers them with V2 responses.
"""

from __future__ import annotations

from typing import Any

from algorail.errors import AlgorailError


class V2FormatError(AlgorailError):
    """A body that is not the V2 shape this side expects."""


def encode(tensors: Any, key: str) -> list[dict[str, Any]]:
    """{name: nested list, or {data, shape, datatype}} -> V2 tensors (`inputs`/`outputs`)."""
    if not isinstance(tensors, dict):
        raise V2FormatError(f"the V2 protocol needs a dict of named tensors as {key}")
    encoded = []
    for name, value in tensors.items():
        if isinstance(value, dict) and "data" in value:
            data, shape = _flatten(value["data"])
            encoded.append({"name": name, "shape": value.get("shape", shape),
                            "datatype": value.get("datatype", _datatype(data)), "data": data})
        else:
            data, shape = _flatten(value)
            encoded.append({"name": name, "shape": shape, "datatype": _datatype(data),
                            "data": data})
    return encoded


def decode(body: Any, key: str) -> dict[str, Any]:
    """A V2 request (`key="inputs"`) or response (`"outputs"`) -> {name: nested list}."""
    tensors = body.get(key) if isinstance(body, dict) else None
    if not isinstance(tensors, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) for t in tensors
    ):
        raise V2FormatError(f"a V2 body needs an {key!r} list of tensors, each with a name")
    return {t["name"]: _reshape(_as_list(t.get("data", [])), t.get("shape") or []) for t in tensors}


def is_request(body: Any) -> bool:
    """True for a V2 inference request (rather than a plain JSON object of tensors)."""
    return isinstance(body, dict) and isinstance(body.get("inputs"), list)


def request(tensors: Any) -> dict[str, Any]:
    return {"inputs": encode(tensors, "inputs")}


def response(tensors: Any, model_name: str, run_id: str) -> dict[str, Any]:
    return {"model_name": model_name, "id": run_id, "outputs": encode(tensors, "outputs")}


def _flatten(value: Any) -> tuple[list[Any], list[int]]:
    if not isinstance(value, list):
        return [value], []
    if not value or not isinstance(value[0], list):
        return list(value), [len(value)]
    data: list[Any] = []
    inner: list[int] = []
    for item in value:
        flat, inner = _flatten(item)
        data.extend(flat)
    return data, [len(value), *inner]


def _as_list(data: Any) -> list[Any]:
    flat, _ = _flatten(data)  # V2 allows nested `data` too
    return flat


def _datatype(data: list[Any]) -> str:
    if all(isinstance(x, bool) for x in data):
        return "BOOL"
    if all(isinstance(x, int) and not isinstance(x, bool) for x in data):
        return "INT64"
    if all(isinstance(x, int | float) for x in data):
        return "FP64"
    return "BYTES"


def _reshape(data: list[Any], shape: list[int]) -> Any:
    if len(shape) <= 1:
        return list(data)
    step = len(data) // shape[0] if shape[0] else 0
    return [_reshape(data[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
