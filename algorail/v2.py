"""The Open Inference Protocol (KServe V2) codec: the one place tensors are read and written.

Inside a pipeline a V2 request travels as a JSON object of named tensors, each
``{"datatype", "shape", "data"}`` with flat ``data`` (and ``parameters`` when the sender
gave some), so datatypes and shapes reach the model server and the response unchanged.
A plain JSON value (a nested list) is a tensor too: its shape is read off the nesting and
its datatype guessed (INT64, FP64, BOOL or BYTES). The gateway (REST and gRPC) reads
requests with `parse_request` and answers with `response`; the http and grpc runtimes
write `request` bodies to model servers and read their answers with `decode`.

Raw tensor contents (gRPC ``raw_input_contents``, the REST binary data extension) are
little-endian; a BYTES element is a 4-byte length and its bytes, read as UTF-8 text.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from algorail.errors import AlgorailError

# datatype -> struct format of one element (BYTES has none: length-prefixed elements)
FORMATS = {
    "BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q",
    "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q",
    "FP16": "e", "FP32": "f", "FP64": "d", "BYTES": None,
}
_INT_RANGES = {name: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
               for name, bits in (("INT8", 8), ("INT16", 16), ("INT32", 32), ("INT64", 64))}
_INT_RANGES.update({f"U{name}": (0, 2 ** bits - 1)
                    for name, bits in (("INT8", 8), ("INT16", 16), ("INT32", 32),
                                       ("INT64", 64))})


class V2FormatError(AlgorailError):
    """A body that is not the V2 shape this side expects (a client error: HTTP 400)."""


@dataclass
class InferenceRequest:
    """A V2 inference request as the gateway keeps it while the run goes on."""

    tensors: dict[str, dict[str, Any]]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None  # names asked for; None = all


def tensor(data: list[Any], shape: list[int], datatype: str,
           parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"datatype": datatype, "shape": list(shape), "data": data}
    if parameters:
        out["parameters"] = parameters
    return out


def as_tensor(value: Any, name: str = "tensor") -> dict[str, Any]:
    """A pipeline value -> a tensor: typed tensors as they are, plain values guessed."""
    if isinstance(value, dict) and "data" in value:
        data, nested_shape = _flatten(value["data"])
        shape = value.get("shape")
        shape = nested_shape if shape is None else shape
        datatype = value.get("datatype") or _guess_datatype(data)
        return tensor(data, shape, datatype, value.get("parameters"))
    data, shape = _flatten(value)
    return tensor(data, shape, _guess_datatype(data))


def encode(tensors: Any, key: str) -> list[dict[str, Any]]:
    """{name: tensor or plain value} -> the V2 list of named tensors (`inputs`/`outputs`)."""
    if not isinstance(tensors, dict):
        raise V2FormatError(f"the V2 protocol needs a dict of named tensors as {key}")
    return [{"name": name, **as_tensor(value, name)} for name, value in tensors.items()]


def decode(body: Any, key: str, raw: list[bytes] | None = None) -> dict[str, dict[str, Any]]:
    """A V2 request (`key="inputs"`) or response (`"outputs"`) -> {name: checked tensor}.
    `raw` holds raw contents, one per tensor in order (gRPC), else binary-extension tensors
    take theirs from `binary`, set by `parse_request`."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) for t in items
    ):
        raise V2FormatError(f"a V2 body needs an {key!r} list of tensors, each with a name")
    if raw and len(raw) != len(items):
        raise V2FormatError(f"{len(raw)} raw contents for {len(items)} {key}")
    tensors = {}
    for index, item in enumerate(items):
        name = item["name"]
        if name in tensors:
            raise V2FormatError(f"tensor {name!r} appears twice in {key}")
        tensors[name] = _checked(item, raw[index] if raw else None)
    return tensors


def parse_request(body: Any, binary: bytes = b"", raw: list[bytes] | None = None
                  ) -> InferenceRequest:
    """A V2 inference request (JSON object, `binary` the bytes after the JSON header of the
    binary data extension, `raw` gRPC's raw contents) -> InferenceRequest."""
    if not isinstance(body, dict):
        raise V2FormatError("a V2 inference request is a JSON object with an 'inputs' list")
    if binary:
        raw = _binary_parts(body.get("inputs"), binary)
    tensors = decode(body, "inputs", raw)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise V2FormatError("'id' must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise V2FormatError("'parameters' must be an object")
    outputs = body.get("outputs")
    names = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
                isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise V2FormatError("'outputs' must be a list of objects, each with a name")
        names = [o["name"] for o in outputs]
    return InferenceRequest(tensors, request_id, parameters, names)


def is_request(body: Any) -> bool:
    """True for a V2 inference request (rather than a plain JSON object of tensors)."""
    return isinstance(body, dict) and isinstance(body.get("inputs"), list)


def request(tensors: Any, outputs: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": encode(tensors, "inputs")}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def response(tensors: Any, model_name: str, request_id: str,
             parameters: dict[str, Any] | None = None,
             outputs: list[str] | None = None) -> dict[str, Any]:
    """A V2 inference response; `outputs` keeps only (and orders by) those names."""
    if outputs is not None:
        missing = [name for name in outputs if name not in tensors]
        if missing:
            raise V2FormatError(f"requested output(s) {', '.join(missing)} not produced; "
                                f"the outputs are: {', '.join(tensors) or 'none'}")
        tensors = {name: tensors[name] for name in outputs}
    body: dict[str, Any] = {"model_name": model_name, "id": request_id,
                            "outputs": encode(tensors, "outputs")}
    if parameters:
        body["parameters"] = parameters
    return body


# -- batching: along dimension 0 ---------------------------------------------------------

def concat(calls: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """Several calls' tensors -> one call's, concatenated along dimension 0, and the first
    dimension of each call (to split the answer back with `split`)."""
    if not calls or not all(isinstance(c, dict) and c for c in calls):
        raise V2FormatError("a batch of V2 calls needs a dict of named tensors per call")
    names = list(calls[0])
    typed = [{n: as_tensor(c.get(n), n) for n in names} for c in calls]
    for call in calls[1:]:
        if list(call) != names:
            raise V2FormatError(f"calls in a batch must have the same tensors ({', '.join(names)})"
                                f", got {', '.join(call)}")
    sizes = []
    for call in typed:
        rows = {_rows(t, n) for n, t in call.items()}
        if len(rows) != 1:
            raise V2FormatError("the tensors of one call in a batch differ in dimension 0")
        sizes.append(rows.pop())
    merged = {}
    for name in names:
        first = typed[0][name]
        for call in typed[1:]:
            t = call[name]
            if t["datatype"] != first["datatype"] or t["shape"][1:] != first["shape"][1:]:
                raise V2FormatError(f"tensor {name!r} differs in datatype or shape beyond "
                                    "dimension 0 between calls of a batch")
        data = [x for call in typed for x in call[name]["data"]]
        merged[name] = tensor(data, [sum(sizes), *first["shape"][1:]], first["datatype"],
                              first.get("parameters"))
    return merged, sizes


def split(tensors: Any, sizes: list[int]) -> list[dict[str, dict[str, Any]]]:
    """A batched answer -> one answer per call: each tensor cut along dimension 0."""
    if not isinstance(tensors, dict):
        raise V2FormatError("a batched V2 answer must be a dict of named tensors")
    parts: list[dict[str, dict[str, Any]]] = [{} for _ in sizes]
    for name, value in tensors.items():
        t = as_tensor(value, name)
        if _rows(t, name) != sum(sizes):
            raise V2FormatError(f"output {name!r} has {t['shape'][0] if t['shape'] else 0} "
                                f"rows for a batch of {sum(sizes)}")
        width = math.prod(t["shape"][1:])
        start = 0
        for index, rows in enumerate(sizes):
            end = start + rows * width
            parts[index][name] = tensor(t["data"][start:end], [rows, *t["shape"][1:]],
                                        t["datatype"], t.get("parameters"))
            start = end
    return parts


def _rows(t: dict[str, Any], name: str) -> int:
    if not t["shape"]:
        raise V2FormatError(f"tensor {name!r} is a scalar: a batch needs a first dimension")
    return t["shape"][0]


# -- raw contents --------------------------------------------------------------------------

def to_raw(t: dict[str, Any]) -> bytes:
    """A tensor's data as raw little-endian contents."""
    fmt = FORMATS[t["datatype"]]
    if fmt is None:
        out = bytearray()
        for item in t["data"]:
            item = item if isinstance(item, bytes) else str(item).encode()
            out += struct.pack("<I", len(item)) + item
        return bytes(out)
    return struct.pack(f"<{len(t['data'])}{fmt}", *t["data"])


def from_raw(raw: bytes, datatype: str, count: int) -> list[Any]:
    fmt = FORMATS[datatype]
    if fmt is not None:
        if len(raw) != count * struct.calcsize(fmt):
            raise V2FormatError(f"{len(raw)} raw bytes do not hold {count} {datatype} values")
        return list(struct.unpack(f"<{count}{fmt}", raw))
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise V2FormatError("raw BYTES contents end inside an element's length")
        (length,) = struct.unpack_from("<I", raw, pos)
        item = raw[pos + 4:pos + 4 + length]
        if len(item) != length:
            raise V2FormatError("raw BYTES contents end inside an element")
        try:
            items.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise V2FormatError("BYTES elements must be UTF-8 text here") from None
        pos += 4 + length
    if len(items) != count:
        raise V2FormatError(f"raw BYTES contents hold {len(items)} elements, the shape "
                            f"{count}")
    return items


def _binary_parts(items: Any, binary: bytes) -> list[bytes] | None:
    """Cut the binary data extension's tail into one part per input (b"" = JSON data)."""
    if not isinstance(items, list):
        return None  # decode says what is wrong
    parts, pos = [], 0
    for item in items:
        size = ((item.get("parameters") or {}).get("binary_data_size")
                if isinstance(item, dict) else None)
        if size is None:
            parts.append(b"")
            continue
        if not isinstance(size, int) or size < 0 or pos + size > len(binary):
            raise V2FormatError("binary_data_size of input "
                                f"{item.get('name')!r} does not fit the binary data sent")
        parts.append(binary[pos:pos + size])
        pos += size
    if pos != len(binary):
        raise V2FormatError(f"{len(binary) - pos} bytes of binary data are not claimed by "
                            "any input's binary_data_size")
    return parts


def _has_binary(item: Any) -> bool:
    return isinstance(item, dict) and "binary_data_size" in (item.get("parameters") or {})


# -- checks --------------------------------------------------------------------------------

def _checked(item: dict[str, Any], raw: bytes | None) -> dict[str, Any]:
    name, datatype, shape = item["name"], item.get("datatype"), item.get("shape")
    if datatype not in FORMATS:
        raise V2FormatError(f"tensor {name!r}: datatype must be one of "
                            f"{', '.join(FORMATS)}, got {datatype!r}")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise V2FormatError(f"tensor {name!r}: shape must be a list of non-negative integers")
    count = math.prod(shape)
    parameters = {k: v for k, v in (item.get("parameters") or {}).items()
                  if k != "binary_data_size"}
    if raw is not None and (raw or _has_binary(item)):
        data = from_raw(raw, datatype, count)
    else:
        data, _ = _flatten(item.get("data", []))
        if len(data) != count:
            raise V2FormatError(f"tensor {name!r}: shape {shape} needs {count} values, "
                                f"got {len(data)}")
        _check_values(name, datatype, data)
    return tensor(data, shape, datatype, parameters)


def _check_values(name: str, datatype: str, data: list[Any]) -> None:
    if datatype == "BYTES":
        ok = all(isinstance(x, str) for x in data)
    elif datatype == "BOOL":
        ok = all(isinstance(x, bool) for x in data)
    elif datatype.startswith("FP"):
        ok = all(isinstance(x, int | float) and not isinstance(x, bool) for x in data)
    else:
        low, high = _INT_RANGES[datatype]
        ok = all(isinstance(x, int) and not isinstance(x, bool) and low <= x <= high
                 for x in data)
    if not ok:
        raise V2FormatError(f"tensor {name!r}: data holds values that are not {datatype}")


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


def _guess_datatype(data: list[Any]) -> str:
    if all(isinstance(x, bool) for x in data):
        return "BOOL"
    if all(isinstance(x, int) and not isinstance(x, bool) for x in data):
        return "INT64"
    if all(isinstance(x, int | float) for x in data):
        return "FP64"
    return "BYTES"


# -- the gRPC form (inference.GRPCInferenceService messages) ----------------------------

CONTENTS_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # FP16 travels as raw contents only


def from_proto(items: Any, raw: Any, key: str) -> dict[str, dict[str, Any]]:
    """gRPC tensors (`inputs` of a ModelInferRequest, `outputs` of a response) with their
    raw contents, if any -> {name: checked tensor}."""
    tensors = []
    for item in items:
        tensor_json: dict[str, Any] = {"name": item.name, "datatype": item.datatype,
                                       "shape": list(item.shape),
                                       "parameters": parameters_from_proto(item.parameters)}
        if not raw:
            field_name = CONTENTS_FIELDS.get(item.datatype)
            data = list(getattr(item.contents, field_name)) if field_name else []
            if item.datatype == "BYTES":
                try:
                    data = [x.decode("utf-8") for x in data]
                except UnicodeDecodeError:
                    raise V2FormatError("BYTES elements must be UTF-8 text here") from None
            tensor_json["data"] = data
        tensors.append(tensor_json)
    return decode({key: tensors}, key, list(raw) if raw else None)


def to_proto(tensors: Any, add: Any, raw: bool = True) -> list[bytes]:
    """Write each tensor with `add()` (a repeated field's add, e.g. response.outputs.add) and
    return their raw contents, in order; with ``raw=False`` the data goes in each tensor's
    typed `contents` instead (some servers read BYTES only so) and nothing is returned."""
    contents = []
    for name, value in tensors.items():
        t = as_tensor(value, name)
        item = add(name=name, datatype=t["datatype"], shape=t["shape"])
        parameters_to_proto(item.parameters, t.get("parameters") or {})
        if raw:
            contents.append(to_raw(t))
        elif t["datatype"] == "BYTES":
            item.contents.bytes_contents.extend(
                x if isinstance(x, bytes) else str(x).encode() for x in t["data"])
        else:
            getattr(item.contents, CONTENTS_FIELDS[t["datatype"]]).extend(t["data"])
    return contents


def has_bytes(tensors: Any) -> bool:
    return any(as_tensor(v, n)["datatype"] == "BYTES" for n, v in tensors.items())


def parameters_from_proto(parameters: Any) -> dict[str, Any]:
    return {key: getattr(value, value.WhichOneof("parameter_choice"))
            for key, value in parameters.items() if value.WhichOneof("parameter_choice")}


def parameters_to_proto(target: Any, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        else:
            target[key].string_param = value if isinstance(value, str) else str(value)
