"""Stand-in models for the Seldon examples, so they run without a model server.

tfsimple: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (element-wise), like
Triton's `simple` model. Tensors are plain JSON lists here.
"""


def tfsimple(tensors):
    a, b = tensors["INPUT0"], tensors["INPUT1"]
    return {
        "OUTPUT0": [x + y for x, y in zip(a, b, strict=True)],
        "OUTPUT1": [x - y for x, y in zip(a, b, strict=True)],
    }


def identity(tensors):
    return dict(tensors)


def conditional(tensors):
    """Emit OUTPUT0 when CHOICE is 0, else OUTPUT1: only one branch runs."""
    key = "OUTPUT0" if tensors["CHOICE"][0] == 0 else "OUTPUT1"
    return {key: tensors["INPUT0"]}


def mul10(tensors):
    return {"OUTPUT": [x * 10 for x in tensors["INPUT"]]}


def add10(tensors):
    return {"OUTPUT": [x + 10 for x in tensors["INPUT"]]}


def check(tensors):
    """Trigger only when the sum is positive."""
    return {"OUTPUT": tensors["INPUT"]} if sum(tensors["INPUT"]) > 0 else {}


def outlier_error(tensors):
    if any(abs(x) > 100 for x in tensors["INPUT"]):
        raise ValueError("outlier detected")
    return {"OUTPUT": tensors["INPUT"]}
