"""Random pipelines, well-formed or not, never raise anything but PipelineError; the
valid ones compile to a plan that survives a JSON round trip."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorail.errors import PipelineError
from algorail.plan import Plan, compile_plan
from algorail.spec import SELDON_API_VERSION, validate_document

NAMES = st.sampled_from(["a", "b", "c", "in", "out", "x-y", "-bad", "UP", "a_b", ""])
CONTENT = st.sampled_from(["application/json", "text/plain", "image/*", "*/*", "x"])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
PORTS = st.lists(
    st.fixed_dictionaries({"name": NAMES}, optional={"contentType": CONTENT}), max_size=3
)
REF = st.builds(lambda c, p: f"{c}.{p}" if p else c, NAMES, st.one_of(st.just(""), NAMES))


def component(kind: str):
    base = {"name": NAMES}
    if kind == "algo":
        base.update(runtime=st.sampled_from(["python", "exec", "http", "nope"]))
        return st.fixed_dictionaries(
            base,
            optional={
                "inputs": PORTS,
                "outputs": PORTS,
                "entrypoint": st.sampled_from(["m:f", "bad"]),
                "command": st.lists(st.text(max_size=3), max_size=2),
                "url": st.sampled_from(["http://x/y", "ftp://z"]),
                "join": st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(["inner", "outer", "any", "side"]),
                        "windowMs": st.integers(-1, 5),
                    },
                ),
                "triggers": st.lists(REF | st.fixed_dictionaries({"from": REF}), max_size=2),
                "triggersJoin": st.sampled_from(["inner", "any"]),
                "batch": st.fixed_dictionaries(
                    {}, optional={"size": st.integers(0, 3), "windowMs": st.integers(0, 3)}
                ),
                "bogus": JSONISH,
            },
        )
    if kind == "endpoint":
        path = st.fixed_dictionaries(
            {"name": NAMES},
            optional={
                "type": st.sampled_from(["http", "kafka", "grpc", "smtp"]),
                "contentType": CONTENT,
                "schema": st.sampled_from([{"type": "object"}, {"type": "nope"}, {}]),
            },
        )
        return st.fixed_dictionaries({"name": NAMES, "paths": st.lists(path, max_size=3)})
    if kind == "hook":
        base.update(type=st.sampled_from(["response", "webhook", "nope"]))
        return st.fixed_dictionaries(
            base, optional={"config": st.sampled_from([{}, {"urls": ["http://h/"]}, {"urls": "x"}])}
        )
    base.update(connector=st.sampled_from(["nope", "x"]))
    return st.fixed_dictionaries(base, optional={"config": JSONISH})


PIPELINES = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["algorail.io/v1", "algorail.io/v1", "v0"]),
        "kind": st.just("Pipeline"),
        "metadata": st.fixed_dictionaries(
            {"owner": NAMES, "name": NAMES}, optional={"version": st.sampled_from(["1.0.0", "1"])}
        ),
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "endpoints": st.lists(component("endpoint"), max_size=2),
                "algos": st.lists(component("algo"), max_size=4),
                "hooks": st.lists(component("hook"), max_size=2),
                "dataSinks": st.lists(component("sink"), max_size=1),
                "pipes": st.lists(
                    st.fixed_dictionaries(
                        {"from": REF, "to": REF},
                        optional={
                            "fields": st.lists(st.text(max_size=3), max_size=2),
                            "map": st.dictionaries(
                                st.text(max_size=3), st.text(max_size=3), max_size=2
                            ),
                        },
                    ),
                    max_size=6,
                ),
                "allowCycles": st.booleans(),
                "externalInputs": st.lists(
                    st.fixed_dictionaries(
                        {"name": NAMES}, optional={"topic": st.just("t"), "pipeline": NAMES}
                    ),
                    max_size=1,
                ),
            },
        ),
    }
)

SELDON_REF = st.builds(
    lambda head, kind, tensor: ".".join(x for x in (head, kind, tensor) if x),
    st.sampled_from(["s1", "s2", "p", "zz", ""]),
    st.sampled_from(["", "outputs", "inputs", "step", "x"]),
    st.sampled_from(["", "T0", "T1"]),
)
SELDON = st.fixed_dictionaries(
    {
        "apiVersion": st.just(SELDON_API_VERSION),
        "kind": st.sampled_from(["Pipeline", "Model"]),
        "metadata": st.fixed_dictionaries({"name": st.sampled_from(["p", "s1", "", "bad_name"])}),
        "spec": st.fixed_dictionaries(
            {
                "steps": st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["s1", "s2", "s3", "inputs"])},
                        optional={
                            "inputs": st.lists(SELDON_REF, max_size=3),
                            "triggers": st.lists(SELDON_REF, max_size=2),
                            "tensorMap": st.dictionaries(
                                SELDON_REF, st.sampled_from(["A", "B"]), max_size=2
                            ),
                            "inputsJoinType": st.sampled_from(["inner", "outer", "any", "bad"]),
                            "batch": st.fixed_dictionaries(
                                {}, optional={"size": st.integers(0, 2)}
                            ),
                        },
                    ),
                    max_size=4,
                )
            },
            optional={
                "output": st.fixed_dictionaries({"steps": st.lists(SELDON_REF, max_size=2)}),
                "input": st.fixed_dictionaries(
                    {"externalInputs": st.lists(SELDON_REF, max_size=2)}
                ),
                "allowCycles": st.booleans(),
            },
        ),
    }
)


def check(doc):
    try:
        pipeline = validate_document(doc, file="fuzz.yaml")
    except PipelineError as exc:
        assert exc.problems and all(p.rule and p.message for p in exc.problems)
        return
    plan = compile_plan(pipeline)
    assert Plan.model_validate_json(plan.to_json()) == plan


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PIPELINES)
def test_random_algorail_pipelines(doc):
    check(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SELDON)
def test_random_seldon_manifests(doc):
    check(doc)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_arbitrary_json_as_spec(value):
    check(
        {
            "apiVersion": "algorail.io/v1",
            "kind": "Pipeline",
            "metadata": {"owner": "a", "name": "b"},
            "spec": value,
        }
    )
