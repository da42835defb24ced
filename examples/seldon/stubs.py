"""Stand-in models for the Seldon examples, so they run without a model server.

tfsimple: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (element-wise), like
Triton's `simple` model. A tensor is a V2 tensor ``{"datatype", "shape", "data"}`` (what a
V2 request carries) or a plain JSON list, nested or not (``[1, N]`` like ``[N]``); the
answer keeps the input's form, shape and datatype.
"""


def _elementwise(fn, *tensors):
    first = tensors[0]
    if isinstance(first, dict):
        data = [fn(*xs) for xs in zip(*(t["data"] for t in tensors), strict=True)]
        return {**first, "data": data}
    if isinstance(first, list):
        return [_elementwise(fn, *xs) for xs in zip(*tensors, strict=True)]
    return fn(*tensors)


def _flat(tensor):
    if isinstance(tensor, dict):
        return list(tensor["data"])
    if isinstance(tensor, list):
        return [x for item in tensor for x in _flat(item)]
    return [tensor]


def tfsimple(tensors):
    a, b = tensors["INPUT0"], tensors["INPUT1"]
    return {
        "OUTPUT0": _elementwise(lambda x, y: x + y, a, b),
        "OUTPUT1": _elementwise(lambda x, y: x - y, a, b),
    }


def identity(tensors):
    return dict(tensors)


def conditional(tensors):
    """Emit OUTPUT0 when CHOICE is 0, else OUTPUT1: only one branch runs."""
    key = "OUTPUT0" if _flat(tensors["CHOICE"])[0] == 0 else "OUTPUT1"
    return {key: tensors["INPUT0"]}


def mul10(tensors):
    return {"OUTPUT": _elementwise(lambda x: x * 10, tensors["INPUT"])}


def add10(tensors):
    return {"OUTPUT": _elementwise(lambda x: x + 10, tensors["INPUT"])}


def check(tensors):
    """Trigger only when the sum is positive."""
    return {"OUTPUT": tensors["INPUT"]} if sum(_flat(tensors["INPUT"])) > 0 else {}


def counter(tensors):
    """The cyclic example's counter: its one tensor plus one, with an empty tensor
    `continue` below 10 (round the loop again) or `stop` (out)."""
    [value] = tensors.values()
    out = _elementwise(lambda x: x + 1, value)
    return {"output": out, "continue" if _flat(out)[0] < 10 else "stop": []}


def outlier_error(tensors):
    if any(abs(x) > 100 for x in _flat(tensors["INPUT"])):
        raise ValueError("outlier detected")
    return {"OUTPUT": tensors["INPUT"]}
