"""Seldon Core 2 pipeline manifests from examples/seldon run end to end on a broker, with
the stub models of stubs.py bound to their step names by bindings.yaml."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.runtime import kafka_io
from algorail.runtime.testing import produce, read_topic, start_runners
from algorail.spec import load_bindings

SELDON = Path(__file__).resolve().parent.parent / "examples" / "seldon"


@pytest.fixture
def seldon(module_broker):
    started = []

    def _run(name, folder=SELDON, bindings=None, **settings):
        pipeline = load_pipeline(folder / f"{name}.yaml", bindings={
            **load_bindings(SELDON / "bindings.yaml"), **(bindings or {})})
        plan = compile_plan(pipeline, deployment=f"{name}-{uuid.uuid4().hex[:6]}")
        plan = plan.model_copy(update=settings)
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


def test_a_cyclic_pipeline_goes_round_until_it_stops(seldon, module_broker):
    """counter: round the loop (counter, identity-loop) until the count reaches 10; each
    pass that does not stop skips identity-output, the last one passes the count."""
    bs = module_broker.bootstrap_servers
    plan = seldon("counter")
    started = time.monotonic()
    produce(bs, plan.routes[0].topic, [("from7", {"INPUT": [7]}), ("from0", {"INPUT": [0]})])
    out = read_topic(bs, outputs(plan, "identity-output"), 3 + 10, settle=0.5)
    elapsed = time.monotonic() - started
    data = {r["run_id"]: r["value"] for r in out if not r["skip"]}
    assert data == {"from7": {"output": [10], "stop": []}, "from0": {"output": [10], "stop": []}}
    assert sorted(r["run_id"] for r in out if r["skip"]) == ["from0"] * 9 + ["from7"] * 2
    assert not read_topic(bs, plan.error_topic, settle=0.3, timeout=0.5)
    assert elapsed < 15, f"10 passes of the loop took {elapsed:.1f}s"


# counter's loop goes two ways, joined before counter again: identity-loop carries the
# count (one step), model2 then model3 the `continue` trigger (two steps)
COUNTER_BRANCHES = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: counter-branches}
spec:
  allowCycles: true
  maxStepRevisits: 100
  steps:
  - name: counter
    inputsJoinType: any
    inputs: [counter-branches.inputs, model1.outputs]
  - name: identity-output
    joinWindowMs: 1
    inputs: [counter.outputs]
    triggers: [counter.outputs.stop]
  - name: identity-loop
    joinWindowMs: 1
    inputs: [counter.outputs.output]
    triggers: [counter.outputs.continue]
  - name: model2
    inputs: [counter.outputs.continue]
  - name: model3
    inputs: [model2.outputs]
  - name: model1
    inputs: [identity-loop.outputs.output]
    triggers: [model3.outputs.continue]
  output: {steps: [identity-output.outputs]}
"""


def test_a_join_in_a_loop_joins_each_pass_across_branches_of_other_lengths(
        seldon, module_broker, tmp_path):
    """model1 joins a one-step and a two-step branch of counter's loop: their messages have
    passed different steps as often, yet belong to the same pass and join, every pass."""
    bs = module_broker.bootstrap_servers
    (tmp_path / "counter-branches.yaml").write_text(COUNTER_BRANCHES)
    shutil.copy(SELDON / "stubs.py", tmp_path)
    plan = seldon("counter-branches", folder=tmp_path, bindings={
        "model3": {"runtime": "python", "entrypoint": "stubs:identity"}})
    produce(bs, plan.routes[0].topic, [("from6", {"INPUT": [6]})])
    out = read_topic(bs, outputs(plan, "identity-output"), 4, settle=0.5)
    assert [r["value"] for r in out if not r["skip"]] == [{"output": [10], "stop": []}]
    assert [r["run_id"] for r in out if r["skip"]] == ["from6"] * 3
    assert not read_topic(bs, plan.error_topic, settle=0.3, timeout=0.5)


def test_a_run_revisiting_a_step_too_often_fails_naming_it(seldon, module_broker):
    """maxStepRevisits 3: counter runs 4 times for a run from 0, the 5th visit fails it."""
    bs = module_broker.bootstrap_servers
    plan = seldon("counter", max_step_revisits=3)
    produce(bs, plan.routes[0].topic, [("looping", {"INPUT": [0]})])
    [error] = read_topic(bs, plan.error_topic, 1, settle=0.5)
    assert error["run_id"] == "looping" and error["value"]["component"] == "counter"
    assert error["value"]["error"] == (
        "step 'counter' would be revisited a 4th time in run looping, more than "
        "maxStepRevisits (3) allows")
    out = read_topic(bs, outputs(plan, "identity-output"), 4, settle=0.5)
    assert [r["skip"] for r in out] == [True] * 4


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
