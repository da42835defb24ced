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

from algorail.plan import compile_plan
from algorail.spec import load_pipeline

httpclient = pytest.importorskip("tritonclient.http")
pytestmark = NEEDS_MLSERVER

SELDON = EXAMPLES / "seldon"
MANIFESTS = ["tfsimple", "chain", "tfsimples-join", "conditional", "error", "trigger-joins",
             "tfsimple-batch", "joincheck", "tfsimples-input"]
# conditional's two branches joined (inner): one branch never produces for a run
JOIN_MISSING = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: join-missing}
spec:
  steps:
  - name: conditional
  - name: mul10
    inputs: [conditional.outputs.OUTPUT0]
    tensorMap: {conditional.outputs.OUTPUT0: INPUT}
  - name: add10
    inputs: [conditional.outputs.OUTPUT1]
    tensorMap: {conditional.outputs.OUTPUT1: INPUT}
  - name: tfsimple1
    inputs: [mul10.outputs.OUTPUT, add10.outputs.OUTPUT]
    tensorMap: {mul10.outputs.OUTPUT: INPUT0, add10.outputs.OUTPUT: INPUT1}
  output: {steps: [tfsimple1]}
"""



@pytest.fixture(scope="module")
def deployed(module_broker, mlserver, tmp_path_factory):  # noqa: F811
    """Each manifest deployed behind its own gateway; steps call MLServer over REST."""
    extra = tmp_path_factory.mktemp("manifests") / "join-missing.yaml"
    extra.write_text(JOIN_MISSING)
    paths = {name: SELDON / f"{name}.yaml" for name in MANIFESTS} | {"join-missing": extra}
    bindings = {"*": {"url": mlserver.model_url()}}
    deployment = Deployment({name: compile_plan(load_pipeline(path, bindings=bindings))
                             for name, path in paths.items()},
                            module_broker.bootstrap_servers).start()
    yield {"urls": deployment.urls, "runners": deployment.runners}
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
