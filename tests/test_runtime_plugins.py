"""The built-in algo runtimes: python, exec, http (plain JSON and the V2 inference
protocol against a small server on 127.0.0.1), alone and inside a runner on a broker."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from algorail.plugins.runtimes import (
    AlgoFailed,
    AlgoNotFound,
    ExecRuntime,
    HttpRuntime,
    PythonRuntime,
)

from algorail import v2
from algorail.plan import RetryPlan, RunnerPlan
from algorail.runtime.testing import plan_from_yaml, produce, read_topic, start_runners


def runner_plan(**kwargs) -> RunnerPlan:
    base = dict(component="algo", id="o/algo:1[1]", index=1, ref="o/algo:1", runtime="python",
                inputs=[], outputs={"out": "t"}, output_content_types={"out": "application/json"},
                output_sources={"out": "algo.out"}, error_source="algo.errors",
                error_topic="e", dead_letter_topic="d", consumer_group="g", timeout_ms=5000,
                retry=RetryPlan(attempts=3, backoff_ms=200, max_backoff_ms=10_000,
                                retry_on=["timeout", "connection", "server", "throttled", "error"]))
    return RunnerPlan(**{**base, **kwargs})


class ModelServer:
    """HTTP/1.1 with keep-alive (`connections` counts those accepted): /v2/models/NAME/infer
    adds 1 to every tensor; /echo returns the body; /drop too, then closes the connection
    without saying so; /slow answers after a second; /fail is 500."""

    def __init__(self):
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                server.connections += 1
                super().setup()

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/slow":
                    time.sleep(1)
                if self.path == "/drop":
                    self.close_connection = True
                if self.path == "/fail":
                    return self._reply(500, {"error": "model exploded"})
                if self.path.startswith("/v2/models/"):
                    outs = [{**t, "name": t["name"].replace("INPUT", "OUTPUT"),
                             "data": [x + 1 for x in t["data"]]} for t in body["inputs"]]
                    return self._reply(200, {"model_name": "m", "outputs": outs})
                return self._reply(200, {"echo": body})

            def _reply(self, status, data):
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def model_server():
    server = ModelServer()
    yield server
    server.stop()


def test_v2_conversion_round_trip():
    request = v2.request({"INPUT0": [[1, 2], [3, 4]], "flag": [True], "x": [0.5]})
    assert request["inputs"][0] == {"name": "INPUT0", "shape": [2, 2], "datatype": "INT64",
                                    "data": [1, 2, 3, 4]}
    assert [i["datatype"] for i in request["inputs"][1:]] == ["BOOL", "FP64"]
    assert v2.decode(request, "inputs") == {
        "INPUT0": {"datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]},
        "flag": {"datatype": "BOOL", "shape": [1], "data": [True]},
        "x": {"datatype": "FP64", "shape": [1], "data": [0.5]}}
    response = {"outputs": [{"name": "OUTPUT0", "shape": [2, 2], "datatype": "INT32",
                             "data": [1, 2, 3, 4]}]}
    assert v2.decode(response, "outputs") == {
        "OUTPUT0": {"datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]}}
    with pytest.raises(v2.V2FormatError, match="dict of named tensors"):
        v2.request([1, 2])
    with pytest.raises(v2.V2FormatError, match="'outputs' list"):
        v2.decode({"outputs": "nope"}, "outputs")


def test_http_runtime_plain_v2_and_errors(model_server):
    plain = HttpRuntime().open(runner_plan(runtime="http", url=model_server.url + "/echo"))
    assert plain({"a": 1}) == {"echo": {"a": 1}}
    v2 = HttpRuntime().open(runner_plan(runtime="http", config={"protocol": "v2"},
                                        url=model_server.url + "/v2/models/m/infer"))
    assert v2({"INPUT0": [1, 2, 3]}) == {
        "OUTPUT0": {"datatype": "INT64", "shape": [3], "data": [2, 3, 4]}}
    failing = HttpRuntime().open(runner_plan(runtime="http", url=model_server.url + "/fail"))
    with pytest.raises(AlgoFailed, match="returned 500: .*model exploded"):
        failing({})
    for call in (plain, v2, failing):
        call.close()


def test_http_runtime_keeps_its_connection_and_reopens_one_the_server_closed(model_server):
    from algorail.runtime.broker import free_port

    call = HttpRuntime().open(runner_plan(runtime="http", url=model_server.url + "/echo"))
    before = model_server.connections
    assert [call({"i": i}) for i in range(3)] == [{"echo": {"i": i}} for i in range(3)]
    assert model_server.connections - before == 1
    dropping = HttpRuntime().open(runner_plan(runtime="http", url=model_server.url + "/drop"))
    assert [dropping({"i": i}) for i in range(3)] == [{"echo": {"i": i}} for i in range(3)]
    slow = HttpRuntime().open(runner_plan(runtime="http", url=model_server.url + "/slow",
                                          timeout_ms=200))
    with pytest.raises(AlgoFailed, match="timed out") as timed_out:
        slow({})
    refused = HttpRuntime().open(runner_plan(runtime="http",
                                             url=f"http://127.0.0.1:{free_port()}/x"))
    with pytest.raises(AlgoFailed, match="ConnectionRefusedError") as not_there:
        refused({})
    assert (timed_out.value.kind, not_there.value.kind) == ("timeout", "connection")
    assert call({"after": "errors"}) == {"echo": {"after": "errors"}}
    for each in (call, dropping, slow, refused):
        each.close()


def test_exec_runtime_json_in_out_and_failures():
    script = "import json,sys; d=json.load(sys.stdin); print(json.dumps({'n': d['n'] * 2}))"
    call = ExecRuntime().open(runner_plan(runtime="exec", command=[sys.executable, "-c", script]))
    assert call({"n": 21}) == {"n": 42}
    bad = "import sys; sys.stderr.write('no luck'); sys.exit(3)"
    failing = ExecRuntime().open(runner_plan(runtime="exec", command=[sys.executable, "-c", bad]))
    with pytest.raises(AlgoFailed, match="exited with status 3: no luck"):
        failing({})
    slow = ExecRuntime().open(runner_plan(runtime="exec", timeout_ms=200,
                                          command=[sys.executable, "-c", "import time; "
                                                   "time.sleep(5)"]))
    with pytest.raises(AlgoFailed, match="longer than 0.2s"):
        slow({})


def test_python_runtime_finds_modules_next_to_the_pipeline_first(tmp_path):
    (tmp_path / "json.py").write_text("def dumps(p):\n    return 'local'\n")
    call = PythonRuntime().open(runner_plan(entrypoint="json:dumps", base_dir=str(tmp_path)))
    assert call({"a": 1}) == "local"
    from_path = PythonRuntime().open(runner_plan(entrypoint="json:dumps"))
    assert from_path({"a": 1}) == '{"a": 1}'
    with pytest.raises(AlgoNotFound, match="no function 'nope'"):
        PythonRuntime().open(runner_plan(entrypoint="json:nope"))
    with pytest.raises(AlgoNotFound, match="cannot import 'missing_mod_x'"):
        PythonRuntime().open(runner_plan(entrypoint="missing_mod_x:f", base_dir=str(tmp_path)))


def test_exec_and_http_algos_in_runners(module_broker, tmp_path, model_server):
    bs = module_broker.bootstrap_servers
    script = "import json,sys; d=json.load(sys.stdin); print(json.dumps({'INPUT0': d['v']}))"
    text = f"""
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {{owner: rt, name: runtimes}}
spec:
  endpoints: [{{name: api, paths: [{{name: in}}]}}]
  algos:
    - name: prep
      runtime: exec
      command: {json.dumps([sys.executable, "-c", script])}
    - name: model
      runtime: http
      url: {model_server.url}/v2/models/m/infer
      config: {{protocol: v2}}
  pipes:
    - {{from: api.in, to: prep.in}}
    - {{from: prep.out, to: model.in}}
"""
    plan = plan_from_yaml(text, tmp_path, bs, deployment=f"rt-{uuid.uuid4().hex[:6]}")
    threads = start_runners(plan, bs)
    try:
        produce(bs, plan.routes[0].topic, [(f"r{i}", {"v": [i, i]}) for i in range(5)])
        out = read_topic(bs, plan.runner("model").outputs["out"], 5)
        assert {r["run_id"]: r["value"] for r in out} == {
            f"r{i}": {"OUTPUT0": {"datatype": "INT64", "shape": [2], "data": [i + 1, i + 1]}}
            for i in range(5)}
    finally:
        for t in threads:
            t.stop()
