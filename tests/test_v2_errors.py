"""Error semantics of algo calls: a client error fails the run at once, transient failures
are retried as the algo's `retry.on` says. Real runners on a real broker."""

from __future__ import annotations

import uuid

import pytest
from algorail.plugins.runtimes import http_failure_kind

from algorail.extensions import AlgoFailed, failure_kind
from algorail.runtime.testing import plan_from_yaml, produce, read_topic, start_runners

ALGOS = '''
calls = []

class Refused(Exception):
    retryable = False

def refuse(payload):
    calls.append("refuse")
    raise Refused("bad request")

def flaky(payload):
    calls.append("flaky")
    raise ValueError("try again")
'''


def pipeline(entrypoint: str, retry: str) -> str:
    return f"""
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {{owner: err, name: errors}}
spec:
  endpoints: [{{name: api, paths: [{{name: in}}]}}]
  algos:
    - name: algo
      runtime: python
      entrypoint: "errors_algos:{entrypoint}"
      retry: {retry}
  pipes: [{{from: api.in, to: algo.in}}]
"""


@pytest.mark.parametrize("entrypoint, retry, calls", [
    ("refuse", "{attempts: 3, backoffMs: 1}", 1),
    ("flaky", "{attempts: 2, backoffMs: 1}", 3),
    ("flaky", "{attempts: 2, backoffMs: 1, retryOn: [timeout, connection, server]}", 1),
])
def test_client_errors_are_not_retried_and_retry_on_is_honoured(module_broker, tmp_path,
                                                               entrypoint, retry, calls):
    bs = module_broker.bootstrap_servers
    (tmp_path / "errors_algos.py").write_text(ALGOS)
    plan = plan_from_yaml(pipeline(entrypoint, retry), tmp_path, bs,
                          deployment=f"err-{uuid.uuid4().hex[:6]}")
    [thread] = start_runners(plan, bs)
    try:
        produce(bs, plan.routes[0].topic, [("r1", {"x": 1})])
        [error] = read_topic(bs, plan.error_topic, 1)
        assert error["value"]["runId"] == "r1"
        assert len(thread.runner.algo.func.__globals__["calls"]) == calls
    finally:
        thread.stop()


def test_failure_kinds():
    assert [http_failure_kind(s) for s in (400, 404, 408, 429, 500, 503)] == [
        "client", "client", "timeout", "throttled", "server", "server"]
    assert failure_kind(AlgoFailed("x", "server")) == "server"
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(ConnectionRefusedError()) == "connection"
    assert failure_kind(ValueError()) == "error"
    marked = ValueError("bad")
    marked.retryable = False
    assert failure_kind(marked) == "client"
