"""The V2 gRPC inference service of the gateway and the `grpc` algo runtime, with real
peers: Seldon example manifests whose steps call MLServer over gRPC, and tritonclient's
gRPC client talking to the gateway."""

from __future__ import annotations

import time

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
from algorail.loader import load_pipeline, validate_document

grpcclient = pytest.importorskip("tritonclient.grpc")
pytestmark = NEEDS_MLSERVER

SELDON = EXAMPLES / "seldon"
MANIFESTS = ["tfsimple", "chain", "error", "tfsimple-batch"]
# an algorail pipeline with a grpc endpoint path: served as the model "tensors"
GRPC_PATH = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "g", "name": "grpc-path", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "tensors", "type": "grpc"}]}],
        "algos": [{"name": "echo", "runtime": "python", "entrypoint": "copy:copy"}],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [{"from": "api.tensors", "to": "echo.in"}, {"from": "echo.out", "to": "result"}],
    },
}


@pytest.fixture(scope="module")
def deployed(module_broker, mlserver):  # noqa: F811
    bindings = {"*": {"runtime": "grpc", "url": mlserver.grpc, "config": {"model": "{name}"}}}
    plans = {name: compile_plan(load_pipeline(SELDON / f"{name}.yaml", bindings=bindings))
             for name in MANIFESTS}
    plans["grpc-path"] = compile_plan(validate_document(GRPC_PATH))
    deployment = Deployment(plans, module_broker.bootstrap_servers, grpc=True).start()
    yield deployment
    deployment.stop()


def client(deployed, name):
    return grpcclient.InferenceServerClient(deployed.grpc[name])


def tensor(name, array):
    datatype = {"int32": "INT32", "float32": "FP32", "object": "BYTES"}[str(array.dtype)]
    t = grpcclient.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array)
    return t


def test_health_and_metadata_over_grpc(deployed):
    triton = client(deployed, "tfsimple")
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("tfsimple.pipeline") and not triton.is_model_ready("other")
    assert triton.get_model_metadata("tfsimple").name == "tfsimple"
    assert triton.get_server_metadata().name == "algorail"
    with pytest.raises(grpcclient.InferenceServerException, match="no model 'other'"):
        triton.get_model_metadata("other")


def test_int32_1xN_over_grpc_both_ways(deployed):
    """tritonclient sends raw contents to the gateway; the grpc runtime sends raw contents
    to MLServer's tfsimple1, which refuses anything but INT32."""
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 2, dtype=np.int32)
    result = client(deployed, "tfsimple").infer(
        "tfsimple.pipeline", [tensor("INPUT0", a), tensor("INPUT1", b)], request_id="g-1")
    assert result.get_response().id == "g-1"
    out0 = result.as_numpy("OUTPUT0")
    assert out0.dtype == np.int32 and out0.shape == (1, 16) and (out0 == a + b).all()
    assert (result.as_numpy("OUTPUT1") == a - b).all()


def test_fp32_and_bytes_over_grpc(deployed):
    values = np.array([[0.5, -1.5]], dtype=np.float32)
    words = np.array([["x", "yz"]], dtype=object)
    result = client(deployed, "chain").infer("chain", [tensor("X", values),
                                                       tensor("WORDS", words)])
    assert result.as_numpy("X").dtype == np.float32 and (result.as_numpy("X") == values).all()
    assert [w.decode() for w in result.as_numpy("WORDS").flatten()] == ["x", "yz"]


def test_a_model_error_over_grpc_fails_at_once_with_invalid_argument(deployed):
    started = time.monotonic()
    with pytest.raises(grpcclient.InferenceServerException) as info:
        client(deployed, "error").infer(
            "error", [tensor("INPUT", np.array([[500]], dtype=np.int32))])
    assert "outlier detected" in info.value.message()
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert time.monotonic() - started < 2.0
    runner = deployed.runners[("error", "outlier-error")]
    assert not runner.metrics.registry.get_sample_value(
        "algorail_runner_retries_total", {"component": "outlier-error"})


def test_a_batched_grpc_step(deployed):
    runner = deployed.runners[("tfsimple-batch", "tfsimple1")]
    outputs = tfsimple_batch(lambda: client(deployed, "tfsimple-batch"), tensor, 3)
    for i, out in enumerate(outputs):
        assert out.dtype == np.int32 and (out == 2 * i).all()
    calls = runner.metrics.registry.get_sample_value("algorail_runner_algo_seconds_count",
                                                     {"component": "tfsimple1"})
    assert 1 <= calls < 3


def test_a_grpc_endpoint_path_is_a_model(deployed):
    result = client(deployed, "grpc-path").infer(
        "tensors", [tensor("A", np.array([[1, 2, 3]], dtype=np.int32))])
    assert (result.as_numpy("A") == [[1, 2, 3]]).all()
    assert result.as_numpy("A").dtype == np.int32


def test_grpc_follows_the_plans_of_a_folder(module_broker, mlserver, tmp_path):  # noqa: F811
    """A gateway following a plans folder (--plans-dir --grpc-port): a plan written there is
    a ready model over gRPC, a new version of it is served next, a removed one is gone."""
    import os
    import threading

    from conftest import AsgiServer, wait_until

    from algorail.runtime.broker import free_port
    from algorail.runtime.fleet import HookFleet
    from algorail.runtime.kafka_io import ensure_topics
    from algorail.runtime.plans import DirectorySource, PlanWatcher
    from algorail.runtime.results import MemoryResultsStore
    from algorail.runtime.router import PlanRouter
    from algorail.runtime.runner import Runner

    bootstrap, results = module_broker.bootstrap_servers, MemoryResultsStore()
    plan = compile_plan(load_pipeline(SELDON / "tfsimple.yaml",
                                      bindings={"*": {"url": mlserver.model_url()}}),
                        deployment="tfsimple-followed")
    ensure_topics(bootstrap, plan.created_topics())
    runner = Runner(plan, "tfsimple1", bootstrap).start()
    threading.Thread(target=runner.run, daemon=True).start()
    watcher = PlanWatcher(DirectorySource(tmp_path), interval=0.2)
    fleet = HookFleet(bootstrap, results, drain_seconds=5)
    watcher.subscribe(fleet.apply)
    grpc_port = free_port()
    router = PlanRouter(watcher, results=results, bootstrap_servers=bootstrap,
                        grpc_address=("127.0.0.1", grpc_port))
    server = AsgiServer(router).start()
    triton = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")

    def write(version):
        (tmp_path / ".tfsimple.tmp").write_text(
            plan.model_copy(update={"version": version}).to_json())
        os.replace(tmp_path / ".tfsimple.tmp", tmp_path / "tfsimple.json")

    try:
        assert triton.is_server_live() and not triton.is_model_ready("tfsimple")
        write("1.0.0")
        assert wait_until(lambda: triton.is_model_ready("tfsimple.pipeline"), timeout=10)
        assert triton.get_model_metadata("tfsimple").versions == ["1.0.0"]
        assert runner.ready.wait(30) and fleet.wait_ready(30)
        a, b = np.array([[1, 2]], dtype=np.int32), np.array([[3, 4]], dtype=np.int32)
        result = triton.infer("tfsimple", [tensor("INPUT0", a), tensor("INPUT1", b)])
        assert result.as_numpy("OUTPUT0").tolist() == [[4, 6]]
        write("1.1.0")
        assert wait_until(lambda: triton.get_model_metadata("tfsimple").versions == ["1.1.0"],
                          timeout=10)
        os.remove(tmp_path / "tfsimple.json")
        assert wait_until(lambda: not triton.is_model_ready("tfsimple"), timeout=10)
        with pytest.raises(grpcclient.InferenceServerException, match="no model 'tfsimple'"):
            triton.infer("tfsimple", [tensor("INPUT0", a), tensor("INPUT1", b)])
    finally:
        triton.close()
        server.stop()
        fleet.stop()
        runner.stop()
