"""Seldon Core 2 pipeline manifests from examples/seldon run end to end on a broker, with
the stub models of stubs.py bound to their step names by bindings.yaml."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from algorail.plan import compile_plan
from algorail.runtime import kafka_io
from algorail.runtime.testing import produce, read_topic, start_runners
from algorail.spec import load_bindings, load_pipeline

SELDON = Path(__file__).resolve().parent.parent / "examples" / "seldon"


@pytest.fixture
def seldon(module_broker):
    started = []

    def _run(name):
        pipeline = load_pipeline(SELDON / f"{name}.yaml",
                                 bindings=load_bindings(SELDON / "bindings.yaml"))
        plan = compile_plan(pipeline, deployment=f"{name}-{uuid.uuid4().hex[:6]}")
        kafka_io.ensure_topics(module_broker.bootstrap_servers, plan.created_topics())
        started.extend(start_runners(plan, module_broker.bootstrap_servers))
        return plan

    yield _run
    for t in started:
        t.stop()


def outputs(plan, step):
    return plan.runner(step).outputs["outputs"]


def test_conditional_routing_runs_one_branch(seldon, module_broker):
    bs = module_broker.bootstrap_servers
    plan = seldon("conditional")
    produce(bs, plan.routes[0].topic, [("zero", {"CHOICE": [0], "INPUT0": [1, 2]}),
                                       ("one", {"CHOICE": [1], "INPUT0": [1, 2]})])
    mul = {r["run_id"]: r for r in read_topic(bs, outputs(plan, "mul10"), 2)}
    add = {r["run_id"]: r for r in read_topic(bs, outputs(plan, "add10"), 2)}
    assert mul["zero"]["value"] == {"OUTPUT": [10, 20]} and mul["one"]["skip"]
    assert add["one"]["value"] == {"OUTPUT": [11, 12]} and add["zero"]["skip"]


def test_inner_join_with_tensor_maps(seldon, module_broker):
    bs = module_broker.bootstrap_servers
    plan = seldon("tfsimples-join")
    produce(bs, plan.routes[0].topic, [("r1", {"INPUT0": [1, 2], "INPUT1": [3, 4]})])
    [out] = read_topic(bs, outputs(plan, "tfsimple3"), 1)
    # tfsimple1/2 give OUTPUT0=[4,6], OUTPUT1=[-2,-2]; tfsimple3 gets INPUT0, INPUT1 of those
    assert out["run_id"] == "r1" and out["value"] == {"OUTPUT0": [2, 4], "OUTPUT1": [6, 8]}


def test_trigger_joins(seldon, module_broker):
    bs = module_broker.bootstrap_servers
    plan = seldon("trigger-joins")
    produce(bs, plan.routes[0].topic, [("r1", {"INPUT": [1, 2], "ok1": [1]}),
                                       ("r2", {"INPUT": [3], "ok3": [1]})])
    mul = {r["run_id"]: r for r in read_topic(bs, outputs(plan, "mul10"), 2)}
    add = {r["run_id"]: r for r in read_topic(bs, outputs(plan, "add10"), 2)}
    assert mul["r1"]["value"] == {"OUTPUT": [10, 20]} and mul["r2"]["skip"]
    assert add["r2"]["value"] == {"OUTPUT": [13]} and add["r1"]["skip"]
