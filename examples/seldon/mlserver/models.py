"""Small MLServer models for the Seldon examples, checking datatypes like the real ones.

    PYTHONPATH=examples/seldon/mlserver mlserver start examples/seldon/mlserver

Each folder here holds one model-settings.json naming its class below. A wrong datatype or
a missing tensor answers 400 (MLServer's client error), as Triton's tfsimple does.
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class BadRequest(MLServerError):
    def __init__(self, message: str):
        super().__init__(message, status_code=400)


def tensors(payload: InferenceRequest) -> dict[str, np.ndarray]:
    return {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}


def answer(model: MLModel, payload: InferenceRequest, outputs: dict[str, np.ndarray]
           ) -> InferenceResponse:
    return InferenceResponse(
        model_name=model.name, id=payload.id,
        outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()])


def needs(found: dict[str, np.ndarray], names: list[str], dtype: str | None = None) -> None:
    for name in names:
        if name not in found:
            raise BadRequest(f"input {name} is missing")
        if dtype and found[name].dtype != np.dtype(dtype):
            raise BadRequest(f"input {name} must be {dtype}, got {found[name].dtype}")


class TfSimple(MLModel):
    """Triton's `simple`: INT32 INPUT0, INPUT1 -> OUTPUT0 = sum, OUTPUT1 = difference."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["INPUT0", "INPUT1"], "int32")
        a, b = found["INPUT0"], found["INPUT1"]
        return answer(self, payload, {"OUTPUT0": a + b, "OUTPUT1": a - b})


class Identity(MLModel):
    """Every input back as it came (BYTES too, which NumpyCodec cannot read over gRPC)."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[
            ResponseOutput(name=i.name, shape=i.shape, datatype=i.datatype, data=i.data)
            for i in payload.inputs])


class Mul10(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["INPUT"])
        return answer(self, payload, {"OUTPUT": found["INPUT"] * found["INPUT"].dtype.type(10)})


class Add10(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["INPUT"])
        return answer(self, payload, {"OUTPUT": found["INPUT"] + found["INPUT"].dtype.type(10)})


class Conditional(MLModel):
    """OUTPUT0 = INPUT0 when CHOICE is 0, else OUTPUT1 = INPUT0: one branch runs."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["CHOICE", "INPUT0"])
        key = "OUTPUT0" if int(found["CHOICE"].flat[0]) == 0 else "OUTPUT1"
        return answer(self, payload, {key: found["INPUT0"]})


class OutlierError(MLModel):
    """Refuses (400) an INPUT with a value above 100 in absolute value."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["INPUT"])
        if np.any(np.abs(found["INPUT"]) > 100):
            raise BadRequest("outlier detected")
        return answer(self, payload, {"OUTPUT": found["INPUT"]})


class Check(MLModel):
    """OUTPUT = INPUT when its sum is positive, else no output: a trigger that may not fire."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = tensors(payload)
        needs(found, ["INPUT"])
        outputs = {"OUTPUT": found["INPUT"]} if found["INPUT"].sum() > 0 else {}
        return answer(self, payload, outputs)
