"""OpenTelemetry: `algorail dev` with OTEL_EXPORTER_OTLP_ENDPOINT set sends its spans over
OTLP/HTTP to a real receiver on loopback, which decodes them with opentelemetry-proto: one
trace per run, continuing the caller's traceparent, with the gateway request, the algo
call, the hook delivery and the connector write as spans."""

from __future__ import annotations

import time
import timeit

import httpx
import pytest
from conftest import AsgiServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from algorail.runtime import tracing
from algorail.testing import DevPipeline

trace_service_pb2 = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    reason="opentelemetry-proto is in the test extra")

PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {{owner: tr, name: traced, version: 1.0.0}}
spec:
  endpoints:
    - name: api
      paths: [{{name: in, contentType: application/json}}]
  algos:
    - {{name: upper, runtime: python, entrypoint: "traced_algos:upper",
       inputs: [{{name: text}}], outputs: [{{name: result}}]}}
  hooks:
    - {{name: reply, type: response}}
  dataSinks:
    - {{name: archive, connector: http, config: {{url: "{sink_url}"}}}}
  pipes:
    - {{from: api.in, to: upper.text}}
    - {{from: upper.result, to: reply}}
    - {{from: upper.result, to: archive}}
"""


def receiver_app(spans: list, sink_posts: list) -> Starlette:
    """An OTLP/HTTP trace receiver (POST /v1/traces, protobuf) that also takes the HTTP
    sink's posts (POST /sink)."""

    async def traces(request: Request) -> Response:
        export = trace_service_pb2.ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return Response(reply, media_type="application/x-protobuf")

    async def sink(request: Request) -> Response:
        sink_posts.append(await request.json())
        return JSONResponse({})

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]),
                             Route("/sink", sink, methods=["POST"])])


def attributes(span) -> dict[str, str]:
    return {a.key: a.value.string_value for a in span.attributes}


@pytest.mark.slow
def test_spans_of_each_run_arrive_at_the_otlp_receiver_as_one_trace(tmp_path, monkeypatch):
    spans, sink_posts = [], []
    receiver = AsgiServer(receiver_app(spans, sink_posts)).start()
    (tmp_path / "traced_algos.py").write_text(
        "def upper(p):\n    return {'text': p['text'].upper()}\n", encoding="utf-8")
    pipeline = tmp_path / "traced.yaml"
    pipeline.write_text(PIPELINE.format(sink_url=receiver.url + "/sink"), encoding="utf-8")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)  # for dev mode's processes
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    dev = DevPipeline(pipeline)
    try:
        dev.start()
        url = f"{dev.url}/tr/traced/in?sync=true&timeout=20"
        first = httpx.post(url, json={"text": "one"}, timeout=30, headers={
            "traceparent": f"00-{caller_trace}-{caller_span}-01"}).json()
        second = dev.post("in", {"text": "two"}, timeout=20).json()
        assert first["results"]["reply"] == {"text": "ONE"}, first
        runs = {first["runId"], second["runId"]}
        expected = {"gateway request", "algo call", "hook delivery", "connector write"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = {(attributes(s).get("algorail.run_id"), s.name) for s in spans}
            if all((run, name) in names for run in runs for name in expected):
                break
            time.sleep(0.2)
    finally:
        dev.close()
        receiver.stop()

    by_trace: dict[bytes, list] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    assert len(by_trace) == 2, {k.hex(): [s.name for s in v] for k, v in by_trace.items()}
    for spans in by_trace.values():
        assert sorted(s.name for s in spans) == sorted(expected)
        assert len({attributes(s)["algorail.run_id"] for s in spans}) == 1
        assert {attributes(s)["algorail.pipeline"] for s in spans} == {"traced"}
        named = {s.name: s for s in spans}
        assert attributes(named["gateway request"])["algorail.component"] == "api"
        assert attributes(named["gateway request"])["algorail.port"] == "in"
        assert attributes(named["algo call"])["algorail.component"] == "upper"
        assert attributes(named["hook delivery"])["algorail.component"] == "reply"
        assert attributes(named["connector write"])["algorail.component"] == "archive"
        # each span is the child of the one whose message caused it
        assert named["algo call"].parent_span_id == named["gateway request"].span_id
        assert named["hook delivery"].parent_span_id == named["algo call"].span_id
        assert named["connector write"].parent_span_id == named["algo call"].span_id
    caller = by_trace[bytes.fromhex(caller_trace)]
    gateway = next(s for s in caller if s.name == "gateway request")
    assert gateway.parent_span_id == bytes.fromhex(caller_span)
    assert {attributes(s)["algorail.run_id"] for s in caller} == {first["runId"]}
    assert len(sink_posts) == 2


def test_spans_cost_next_to_nothing_when_tracing_is_off():
    assert not tracing.enabled()  # the test environment sets no OTLP endpoint
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    def traced():
        with tracing.span("algo call", parent, run_id="r", pipeline="p", component="c",
                          port="in"):
            pass

    seconds = min(timeit.repeat(traced, number=10_000, repeat=3)) / 10_000
    assert seconds < 5e-6, f"{seconds * 1e9:.0f} ns per untraced span"
    # no span is recorded here: the parent is passed on as it came, so the spans
    # downstream stay children of the last span exported
    assert tracing.child_traceparent(parent) == parent
    for malformed in ("", "garbage", "00-4bf9-00f067aa0ba902b7-01"):
        version, trace, span, flags = tracing.child_traceparent(malformed).split("-")
        assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
    kept = tracing.child_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f0-01")
    assert kept.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
