"""The V2 codec (algorail/v2.py): datatypes and shapes kept, raw contents, the binary data
extension, batching along dimension 0, and the checks that make a request a 400."""

from __future__ import annotations

import json
import struct

import pytest

from algorail import v2

SAMPLES = {
    "BOOL": [True, False], "INT8": [-128, 127], "INT16": [-2, 3], "INT32": [-(2**31), 7],
    "INT64": [2**62, -1], "UINT8": [0, 255], "UINT16": [65535, 1], "UINT32": [2**32 - 1, 0],
    "UINT64": [2**64 - 1, 5], "FP16": [0.5, -2.0], "FP32": [0.25, 3.0], "FP64": [0.1, -1e300],
    "BYTES": ["ab", ""],
}


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_passes_json_and_raw_unchanged(datatype):
    item = {"name": "T", "datatype": datatype, "shape": [1, 2], "data": SAMPLES[datatype]}
    [(name, tensor)] = v2.decode({"inputs": [item]}, "inputs").items()
    assert tensor == {"datatype": datatype, "shape": [1, 2], "data": SAMPLES[datatype]}
    assert v2.encode({name: tensor}, "outputs") == [item]
    raw = v2.to_raw(tensor)
    again = v2.decode({"inputs": [{k: v for k, v in item.items() if k != "data"}]}, "inputs",
                      raw=[raw])
    assert again["T"]["data"] == SAMPLES[datatype]


def test_the_binary_data_extension_reads_raw_inputs():
    header = {"id": "b1", "inputs": [
        {"name": "A", "datatype": "INT32", "shape": [1, 3],
         "parameters": {"binary_data_size": 12}},
        {"name": "B", "datatype": "FP32", "shape": [1], "data": [1.5]},
        {"name": "C", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
    ]}
    tail = struct.pack("<3i", 1, -2, 3) + struct.pack("<I", 2) + b"hi"
    request = v2.parse_request(header, tail)
    assert request.id == "b1"
    assert request.tensors == {
        "A": {"datatype": "INT32", "shape": [1, 3], "data": [1, -2, 3]},
        "B": {"datatype": "FP32", "shape": [1], "data": [1.5]},
        "C": {"datatype": "BYTES", "shape": [1], "data": ["hi"]}}
    with pytest.raises(v2.V2FormatError, match="not claimed"):
        v2.parse_request(header, tail + b"x")
    with pytest.raises(v2.V2FormatError, match="does not fit"):
        v2.parse_request(header, tail[:10])


@pytest.mark.parametrize("item, message", [
    ({"name": "A", "datatype": "INT32", "shape": [3], "data": [1, 2]}, "needs 3 values"),
    ({"name": "A", "datatype": "UINT8", "shape": [1], "data": [-1]}, "not UINT8"),
    ({"name": "A", "datatype": "BOOL", "shape": [1], "data": [1]}, "not BOOL"),
    ({"name": "A", "datatype": "BYTES", "shape": [1], "data": [3]}, "not BYTES"),
    ({"name": "A", "datatype": "FP32", "shape": [-1], "data": []}, "non-negative"),
    ({"name": "A", "shape": [1], "data": [1]}, "datatype must be one of"),
])
def test_bad_tensors_are_refused_naming_the_tensor(item, message):
    with pytest.raises(v2.V2FormatError, match=message) as info:
        v2.parse_request({"inputs": [item]})
    assert "'A'" in str(info.value)


def test_nested_data_is_flattened_and_plain_values_are_guessed():
    [t] = v2.decode({"inputs": [{"name": "N", "datatype": "INT16", "shape": [2, 2],
                                 "data": [[1, 2], [3, 4]]}]}, "inputs").values()
    assert t["data"] == [1, 2, 3, 4]
    assert v2.encode({"P": [[1.5, 2.0]]}, "inputs") == [
        {"name": "P", "datatype": "FP64", "shape": [1, 2], "data": [1.5, 2.0]}]


def test_response_echoes_id_and_parameters_and_keeps_the_outputs_asked_for():
    tensors = {"X": {"datatype": "INT32", "shape": [1], "data": [1]}, "Y": [2]}
    body = v2.response(tensors, "p", "id-1", {"k": "v"}, outputs=["Y"])
    assert body == {"model_name": "p", "id": "id-1", "parameters": {"k": "v"},
                    "outputs": [{"name": "Y", "datatype": "INT64", "shape": [1], "data": [2]}]}
    with pytest.raises(v2.V2FormatError, match="Z not produced"):
        v2.response(tensors, "p", "id-1", outputs=["Z"])
    json.dumps(body)


def test_batches_concatenate_along_dimension_0_and_split_back():
    calls = [{"A": {"datatype": "INT32", "shape": [1, 2], "data": [1, 2]}},
             {"A": {"datatype": "INT32", "shape": [2, 2], "data": [3, 4, 5, 6]}}]
    merged, sizes = v2.concat(calls)
    assert merged == {"A": {"datatype": "INT32", "shape": [3, 2], "data": [1, 2, 3, 4, 5, 6]}}
    assert sizes == [1, 2]
    assert v2.split(merged, sizes) == calls
    with pytest.raises(v2.V2FormatError, match="differs in datatype"):
        v2.concat([calls[0], {"A": {**calls[0]["A"], "datatype": "FP32"}}])
    with pytest.raises(v2.V2FormatError, match="2 rows for a batch of 3"):
        v2.split({"A": {"datatype": "INT32", "shape": [2], "data": [1, 2]}}, sizes)
