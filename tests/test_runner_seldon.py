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


class SplittingAlgo:
    """An algo that splits batches itself, as the V2 runtimes do: one result per payload."""

    splits_batches = True

    def __init__(self):
        self.calls = []

    def __call__(self, payloads):
        self.calls.append(len(payloads))
        return [{"OUTPUT": p["INPUT"]} for p in payloads]


@pytest.mark.slow
@pytest.mark.parametrize("rolling, calls", [(False, [2, 2]), (True, [1, 2, 2, 2])])
def test_batches_of_an_algo_that_splits_them(module_broker, tmp_path, rolling, calls):
    """Tumbling: each run gets its own slice; rolling: the window goes to the model and
    the newest run gets its slice."""
    from algorail.runtime.testing import RunnerThread, plan_from_yaml

    bs = module_broker.bootstrap_servers
    text = ("apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata: {name: b}\n"
            f"spec:\n  steps: [{{name: m, batch: {{size: 2, rolling: {str(rolling).lower()}}}}}]\n")
    plan = plan_from_yaml(text, tmp_path, bs, deployment=f"b-{uuid.uuid4().hex[:6]}",
                          bindings={"m": {"runtime": "python", "entrypoint": "copy:copy"}})
    algo = SplittingAlgo()
    thread = RunnerThread(plan, "m", bs, algo=algo).start()
    try:
        produce(bs, plan.routes[0].topic, [(f"r{i}", {"INPUT": [i]}) for i in range(4)])
        out = {r["run_id"]: r["value"] for r in read_topic(bs, outputs(plan, "m"), 4)}
        assert out == {f"r{i}": {"OUTPUT": [i]} for i in range(4)}
        assert algo.calls == calls
    finally:
        thread.stop()
