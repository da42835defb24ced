"""Random pipelines, well-formed or not, never raise anything but PipelineError; the
valid ones compile to a plan that survives a JSON round trip. The CLI, given mutated
pipeline, Seldon and bindings files (or their bytes), exits 0 or 1 without a traceback."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorail.cli import cli
from algorail.compiler import compile_plan
from algorail.errors import PipelineError
from algorail.loader import validate_document
from algorail.plan import Plan
from algorail.spec import SELDON_API_VERSION

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


# -- the CLI over mutated pipeline files ---------------------------------------------------

SEEDS = sorted(EXAMPLES.glob("*.yaml")) + sorted((EXAMPLES / "seldon").glob("*.yaml"))
BINDINGS = EXAMPLES / "seldon" / "bindings.yaml"
ODD_VALUES = st.one_of(
    JSONISH,
    st.sampled_from(["", "2024-01-01", "name", "1e400", "\x00", "ü", "{{x}}", "!!binary"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(1, 400).map(lambda n: nested(n)),
)
COMMANDS = st.sampled_from(
    [["validate"], ["plan"], ["plan", "--json"], ["graph"], ["graph", "--format", "dot"],
     ["render", "-o", "{out}"]]
)


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@st.composite
def mutated_document(draw, seed: Path) -> Any:
    """The seed's data with a few nodes replaced, removed or added."""
    data = yaml.safe_load(seed.read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        node, key = data, None
        while True:  # walk down to a random node
            children = (
                list(node) if isinstance(node, dict) else
                list(range(len(node))) if isinstance(node, list) else []
            )
            if not children or draw(st.integers(0, 3)) == 0:
                break
            parent, key = node, draw(st.sampled_from(children))
            node = parent[key]
        if key is None:
            data = draw(ODD_VALUES) if draw(st.integers(0, 9)) == 0 else data
            continue
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[key] = draw(ODD_VALUES)
        elif action == "remove":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(ODD_VALUES)
        else:
            parent.insert(key, draw(ODD_VALUES))
    return data


@st.composite
def mutated_bytes(draw, seed: Path) -> bytes:
    """The seed's bytes with a few spliced, dropped or replaced; or nesting very deep."""
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.sampled_from([1_000, 20_000]))
        return draw(st.sampled_from([b"[" * depth, b"{a: " * depth, b"- " * depth,
                                     b"[" * depth + b"]" * depth]))
    raw = bytearray(seed.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
            [b"\xff", b"\xc3", b"\t", b"&a", b"*a", b"!!python/object:os.system", b": [", b"}"]))
        if action == "insert":
            raw[at:at] = piece
        elif action == "delete":
            del raw[at:at + len(piece)]
        else:
            raw[at:at + len(piece)] = piece
    return bytes(raw)


def file_content(draw, seed: Path) -> tuple[str, bytes]:
    """(suffix, bytes) of a mutated version of `seed`, as YAML, JSON or raw bytes."""
    form = draw(st.sampled_from(["yaml", "json", "bytes"]))
    if form == "bytes":
        return ".yaml", draw(mutated_bytes(seed))
    data = draw(mutated_document(seed))
    if form == "json":
        return ".json", json.dumps(data, allow_nan=True).encode()
    return ".yaml", yaml.safe_dump(data, allow_unicode=True).encode()


def assert_clean_exit(result) -> None:
    """Exit 0 or 1, no exception escaped, no traceback printed, an error line on failure."""
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        "".join(traceback.format_exception(result.exception)) + result.output
    )
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert result.output.strip(), "failed without saying why"


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cli_on_mutated_files_exits_0_or_1_without_traceback(tmp_path, data):
    seed = data.draw(st.sampled_from(SEEDS), label="seed")
    suffix, content = file_content(data.draw, seed)
    pipeline = tmp_path / f"pipeline{suffix}"
    pipeline.write_bytes(content)
    args = [a.format(out=tmp_path / "out") for a in data.draw(COMMANDS, label="command")]
    args.append(str(pipeline))
    if "seldon" in seed.parts and data.draw(st.booleans(), label="with bindings"):
        bindings = tmp_path / "bindings.yaml"
        bindings.write_bytes(file_content(data.draw, BINDINGS)[1])
        args += ["--bindings", str(bindings)]
    assert_clean_exit(CliRunner().invoke(cli, args, catch_exceptions=True))
