"""The Open Inference Protocol end to end with real peers: Seldon example manifests whose
steps are MLServer models (examples/seldon/mlserver), runners on a real broker, the
gateway, and Triton's `tritonclient` (or plain HTTP) as the client."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from conftest import EXAMPLES
from mlserver_peer import (  # noqa: F401 - mlserver is a fixture
    NEEDS_MLSERVER,
    Deployment,
    mlserver,
    tfsimple_batch,
)

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.spec import load_bindings

httpclient = pytest.importorskip("tritonclient.http")
pytestmark = NEEDS_MLSERVER

SELDON = EXAMPLES / "seldon"
MANIFESTS = ["tfsimple", "chain", "tfsimples-join", "conditional", "error", "trigger-joins",
             "tfsimple-batch", "joincheck", "tfsimples-input", "tfsimple-extended"]


def branches_joined(name: str, step: str, into: tuple[str, str], join: str = "") -> str:
    """A manifest joining conditional's two branches (mul10, add10) in `step`, on its
    inputs `into`: an inner join by default (for a run, one branch never produces), or
    `join` (outer, any) with a long window."""
    join_type = f"\n    inputsJoinType: {join}\n    joinWindowMs: 10000" if join else ""
    return f"""
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  steps:
  - name: conditional
  - name: mul10
    inputs: [conditional.outputs.OUTPUT0]
    tensorMap: {{conditional.outputs.OUTPUT0: INPUT}}
  - name: add10
    inputs: [conditional.outputs.OUTPUT1]
    tensorMap: {{conditional.outputs.OUTPUT1: INPUT}}
  - name: {step}
    inputs: [mul10.outputs.OUTPUT, add10.outputs.OUTPUT]
    tensorMap: {{mul10.outputs.OUTPUT: {into[0]}, add10.outputs.OUTPUT: {into[1]}}}{join_type}
  output: {{steps: [{step}]}}
"""


@pytest.fixture(scope="module")
def deployed(module_broker, mlserver, tmp_path_factory):  # noqa: F811
    """Each manifest deployed behind its own gateway; steps call MLServer over REST."""
    folder = tmp_path_factory.mktemp("manifests")
    texts = {"join-missing": branches_joined("join-missing", "tfsimple1", ("INPUT0", "INPUT1")),
             "join-outer": branches_joined("join-outer", "model1", ("MUL", "ADD"), "outer"),
             "join-any": branches_joined("join-any", "model1", ("MUL", "ADD"), "any")}
    for name, text in texts.items():
        (folder / f"{name}.yaml").write_text(text)
    paths = {name: SELDON / f"{name}.yaml" for name in MANIFESTS} | {
        name: folder / f"{name}.yaml" for name in texts}
    bindings = {"*": {"url": mlserver.model_url()}}
    plans = {name: compile_plan(load_pipeline(path, bindings=bindings))
             for name, path in paths.items()}
    # the cyclic example, on the stub models; once more with at most 3 revisits of a step
    counter = load_pipeline(SELDON / "counter.yaml",
                            bindings=load_bindings(SELDON / "bindings.yaml"))
    plans["counter"] = compile_plan(counter)
    plans["counter-limited"] = compile_plan(counter, deployment="counter-limited").model_copy(
        update={"max_step_revisits": 3})
    deployment = Deployment(plans, module_broker.bootstrap_servers).start()
    yield {"urls": deployment.urls, "runners": deployment.runners, "plans": deployment.plans,
           "bootstrap": module_broker.bootstrap_servers}
    deployment.stop()


def client(deployed, name):
    return httpclient.InferenceServerClient(deployed["urls"][name].removeprefix("http://"),
                                            network_timeout=30)


def tensor(name, array, binary=True):
    datatype = {"int32": "INT32", "float32": "FP32", "object": "BYTES"}[str(array.dtype)]
    t = httpclient.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array, binary_data=binary)
    return t


def metric(runner, name):
    return runner.metrics.registry.get_sample_value(name, {"component": runner.spec.component})


def test_health_and_metadata_for_a_v2_client(deployed):
    triton = client(deployed, "tfsimple")
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("tfsimple") and triton.is_model_ready("tfsimple.pipeline")
    assert not triton.is_model_ready("other")
    assert triton.get_server_metadata()["name"] == "algorail"
    assert triton.get_model_metadata("tfsimple.pipeline")["name"] == "tfsimple"
    unknown = httpx.get(f"{deployed['urls']['tfsimple']}/v2/models/other")
    assert unknown.status_code == 404 and "tfsimple.pipeline" in unknown.json()["error"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_int32_1xN_keeps_datatype_and_shape_through_mlserver(deployed, binary):
    """tfsimple1 on MLServer refuses anything but INT32, and answers [1, 16] INT32."""
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    result = client(deployed, "tfsimple").infer(
        "tfsimple.pipeline", [tensor("INPUT0", a, binary), tensor("INPUT1", b, binary)],
        request_id="req-1")
    assert result.get_response()["id"] == "req-1"
    out0, out1 = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    assert out0.dtype == np.int32 and out0.shape == (1, 16)
    assert (out0 == a + b).all() and (out1 == a - b).all()


def test_fp32_and_bytes_through_two_steps(deployed):
    values = np.array([[0.5, 1.25, -3.0]], dtype=np.float32)
    words = np.array([["alpha", "beta"]], dtype=object)
    result = client(deployed, "chain").infer(
        "chain.pipeline", [tensor("X", values), tensor("WORDS", words)])
    assert result.as_numpy("X").dtype == np.float32
    assert (result.as_numpy("X") == values).all()
    assert [w.decode() if isinstance(w, bytes) else w
            for w in result.as_numpy("WORDS").flatten()] == ["alpha", "beta"]


def test_seldon_model_header_no_content_type_id_parameters_and_outputs(deployed):
    """Seldon's form: any URL model name with the Seldon-Model header; the body is sent
    without Content-Type; `id` and `parameters` echo, `outputs` asked for are kept."""
    body = ('{"id": "r-7", "parameters": {"trace": "yes"}, "outputs": [{"name": "OUTPUT1"}],'
            ' "inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "INT32", '
            '"data": [5, 6]}, {"name": "INPUT1", "shape": [1, 2], "datatype": "INT32", '
            '"data": [1, 1]}]}')
    answer = httpx.post(f"{deployed['urls']['tfsimple']}/v2/models/ignored/infer",
                        content=body, headers={"Seldon-Model": "tfsimple.pipeline"},
                        timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "model_name": "tfsimple", "id": "r-7", "parameters": {"trace": "yes"},
        "outputs": [{"name": "OUTPUT1", "datatype": "INT32", "shape": [1, 2],
                     "parameters": {"content_type": "np"}, "data": [4, 5]}]}
    wrong = httpx.post(f"{deployed['urls']['tfsimple']}/v2/models/tfsimple/infer",
                       content=body, headers={"Seldon-Model": "another.pipeline"})
    assert wrong.status_code == 404


@pytest.mark.parametrize("body, message", [
    ('{"inputs": [{"name": "A", "shape": [2], "datatype": "INT32", "data": [1]}]}',
     "shape [2] needs 2 values"),
    ('{"inputs": [{"name": "A", "shape": [1], "datatype": "INT8", "data": [300]}]}',
     "not INT8"),
    ('{"inputs": [{"name": "A", "shape": [1], "datatype": "FLOAT", "data": [1]}]}',
     "datatype must be one of"),
    ("not json", "not a JSON V2 inference request"),
])
def test_bad_requests_answer_400_before_entering_the_pipeline(deployed, body, message):
    answer = httpx.post(f"{deployed['urls']['tfsimple']}/v2/models/tfsimple/infer",
                        content=body)
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_a_model_client_error_fails_the_run_at_once(deployed):
    """MLServer answers 400 (outlier, or a wrong datatype): no retry, one call's time."""
    triton = client(deployed, "error")
    fine = triton.infer("error", [tensor("INPUT", np.array([[1, 2]], dtype=np.int32))])
    assert (fine.as_numpy("OUTPUT") == [[1, 2]]).all()
    started = time.monotonic()
    with pytest.raises(Exception, match="outlier detected"):
        triton.infer("error", [tensor("INPUT", np.array([[500]], dtype=np.int32))])
    assert time.monotonic() - started < 2.0
    wrong_type = httpx.post(f"{deployed['urls']['tfsimple']}/v2/models/tfsimple/infer",
                            json={"inputs": [{"name": n, "shape": [1], "datatype": "FP32",
                                              "data": [1.0]} for n in ("INPUT0", "INPUT1")]},
                            timeout=30)
    assert wrong_type.status_code == 400 and "must be int32" in wrong_type.json()["error"]
    for key in (("error", "outlier-error"), ("tfsimple", "tfsimple1")):
        assert not metric(deployed["runners"][key], "algorail_runner_retries_total")


def test_inner_join_with_tensor_maps(deployed):
    a, b = np.array([[1, 2]], dtype=np.int32), np.array([[3, 4]], dtype=np.int32)
    result = client(deployed, "tfsimples-join").infer(
        "join", [tensor("INPUT0", a), tensor("INPUT1", b)])
    # tfsimple1 = tfsimple2 = (a+b, a-b); tfsimple3(OUTPUT0 of 1, OUTPUT1 of 2)
    assert (result.as_numpy("OUTPUT0") == (a + b) + (a - b)).all()
    assert (result.as_numpy("OUTPUT1") == (a + b) - (a - b)).all()


@pytest.mark.parametrize("choice, expected", [(0, [[10, 20]]), (1, [[11, 12]])])
def test_conditional_runs_one_branch(deployed, choice, expected):
    started = time.monotonic()
    result = client(deployed, "conditional").infer("tfsimple-conditional", [
        tensor("CHOICE", np.array([[choice]], dtype=np.int32)),
        tensor("INPUT0", np.array([[1, 2]], dtype=np.int32))])
    assert (result.as_numpy("OUTPUT") == expected).all()
    assert result.as_numpy("OUTPUT").dtype == np.int32
    assert time.monotonic() - started < 5


def test_trigger_joins(deployed):
    triton = client(deployed, "trigger-joins")
    data = tensor("INPUT", np.array([[1, 2]], dtype=np.int32))
    one = triton.infer("trigger-joins", [data, tensor("ok1", np.array([[1]], dtype=np.int32))])
    assert (one.as_numpy("OUTPUT") == [[10, 20]]).all()
    three = triton.infer("trigger-joins",
                         [data, tensor("ok3", np.array([[1]], dtype=np.int32))])
    assert (three.as_numpy("OUTPUT") == [[11, 12]]).all()


def test_a_trigger_that_does_not_fire_skips_its_step(deployed):
    """joincheck: tfsimple3 runs only when `check` passes OUTPUT0 of tfsimple1 on."""
    triton = client(deployed, "joincheck")
    a, b = np.array([[2, 3]], dtype=np.int32), np.array([[1, 1]], dtype=np.int32)
    passed = triton.infer("joincheck", [tensor("INPUT0", a), tensor("INPUT1", b)])
    assert (passed.as_numpy("OUTPUT0") == (a + b) + (a - b)).all()


def test_a_batched_step_calls_the_model_once_per_batch(deployed):
    runner = deployed["runners"][("tfsimple-batch", "tfsimple1")]
    calls_before = metric(runner, "algorail_runner_algo_seconds_count") or 0

    outputs = tfsimple_batch(lambda: client(deployed, "tfsimple-batch"), tensor, 4)
    for i, out in enumerate(outputs):
        assert out.dtype == np.int32 and out.shape == (1, 2) and (out == 2 * i).all()
    calls = metric(runner, "algorail_runner_algo_seconds_count") - calls_before
    assert 1 <= calls < 4


def test_a_steps_inputs_feed_another_step(deployed):
    """tfsimples-input: tfsimple2 gets INPUT0 as tfsimple1 received it, and OUTPUT1."""
    a, b = np.array([[5, 6]], dtype=np.int32), np.array([[1, 2]], dtype=np.int32)
    result = client(deployed, "tfsimples-input").infer(
        "tfsimples-input", [tensor("INPUT0", a), tensor("INPUT1", b)])
    assert (result.as_numpy("OUTPUT0") == a + (a - b)).all()


def test_an_inner_join_whose_input_never_comes_fails_naming_it(deployed):
    started = time.monotonic()
    answer = httpx.post(f"{deployed['urls']['join-missing']}/v2/models/join-missing/infer",
                        json={"inputs": [
                            {"name": "CHOICE", "shape": [1], "datatype": "INT32", "data": [0]},
                            {"name": "INPUT0", "shape": [1, 2], "datatype": "INT32",
                             "data": [1, 2]}]}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert "add10 produced no output" in answer.json()["error"]
    assert time.monotonic() - started < 5


def test_a_trigger_that_does_not_fire_answers_at_once_without_running_the_step(deployed):
    """joincheck: OUTPUT0 of tfsimple1 sums to a negative, so `check` answers no OUTPUT and
    tfsimple3 never runs: the call answers with no outputs (Seldon's would wait for its
    timeout), in about the time of the calls that did run."""
    runner = deployed["runners"][("joincheck", "tfsimple3")]
    calls_before = metric(runner, "algorail_runner_algo_seconds_count") or 0
    a, b = np.array([[-5, -6]], dtype=np.int32), np.array([[1, 1]], dtype=np.int32)
    started = time.monotonic()
    result = client(deployed, "joincheck").infer("joincheck", [tensor("INPUT0", a),
                                                               tensor("INPUT1", b)])
    elapsed = time.monotonic() - started
    assert result.get_response()["outputs"] == []
    assert (metric(runner, "algorail_runner_algo_seconds_count") or 0) == calls_before
    assert elapsed < 5, f"{elapsed:.2f}s"


@pytest.mark.parametrize("join", ["outer", "any"])
@pytest.mark.parametrize("choice, expected", [(0, {"MUL": [[10, 20]]}),
                                              (1, {"ADD": [[11, 12]]})])
def test_outer_and_any_joins_of_branches_fire_without_waiting_for_the_window(
        deployed, join, choice, expected):
    """model1 joins mul10 and add10, of which one runs: the other's skip is known at once,
    so neither join waits for its 10 s window; model1 gets only the branch that ran."""
    started = time.monotonic()
    result = client(deployed, f"join-{join}").infer(f"join-{join}", [
        tensor("CHOICE", np.array([[choice]], dtype=np.int32)),
        tensor("INPUT0", np.array([[1, 2]], dtype=np.int32))])
    elapsed = time.monotonic() - started
    outputs = {o["name"]: result.as_numpy(o["name"]).tolist()
               for o in result.get_response()["outputs"]}
    assert outputs == expected
    assert elapsed < 5, f"{elapsed:.2f}s"


def test_a_pipeline_takes_its_input_from_another_pipelines_output(deployed):
    """tfsimple-extended reads tfsimple's output topic: one call to tfsimple runs both, the
    second under the same run id; tfsimple2 gets OUTPUT0/OUTPUT1 as INPUT0/INPUT1."""
    from algorail.runtime.testing import TopicReader, as_dict

    started = time.monotonic()
    answer = httpx.post(f"{deployed['urls']['tfsimple']}/v2/models/tfsimple/infer", json={
        "inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "INT32", "data": [5, 7]},
                   {"name": "INPUT1", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]},
        timeout=30)
    assert answer.status_code == 200, answer.text
    run_id = answer.headers["x-run-id"]
    reader = TopicReader(deployed["bootstrap"], deployed["plans"]["tfsimple-extended"]
                         .output_topic)
    found, deadline = [], time.monotonic() + 30
    try:
        while not found and time.monotonic() < deadline:
            records = reader.read(len(reader.records) + 1, timeout=1)
            found = [r for r in map(as_dict, records) if r["run_id"] == run_id]
    finally:
        reader.close()
    elapsed = time.monotonic() - started
    [record] = found
    # tfsimple: (6, 9) and (4, 5); tfsimple2 of those: their sum and difference
    assert record["value"] == {
        "OUTPUT0": {"datatype": "INT32", "shape": [1, 2], "data": [10, 14],
                    "parameters": {"content_type": "np"}},
        "OUTPUT1": {"datatype": "INT32", "shape": [1, 2], "data": [2, 4],
                    "parameters": {"content_type": "np"}}}
    assert elapsed < 10, f"{elapsed:.2f}s"


def test_a_cyclic_pipeline_answers_its_last_pass_or_fails_past_max_step_revisits(deployed):
    """counter-pipeline goes round its loop from 3 to 10 and answers the count; with
    maxStepRevisits 3 the run fails at counter's 4th revisit, with Seldon's kind of error."""
    int32 = np.array([[3]], dtype=np.int32)
    started = time.monotonic()
    result = client(deployed, "counter").infer("counter-pipeline", [tensor("INPUT", int32)])
    elapsed = time.monotonic() - started
    assert result.as_numpy("output").tolist() == [[10]]
    assert result.as_numpy("output").dtype == np.int32
    assert elapsed < 15, f"7 passes took {elapsed:.2f}s"
    with pytest.raises(Exception, match="step 'counter' would be revisited a 4th time in run "
                                        ".*, more than maxStepRevisits \\(3\\) allows"):
        client(deployed, "counter-limited").infer("counter-pipeline",
                                                  [tensor("INPUT", int32)])
