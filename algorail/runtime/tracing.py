"""OpenTelemetry spans for the gateway request, each algo call, hook delivery and connector
write; every span of one run belongs to the trace its request started.

The trace context travels in the messages' W3C ``traceparent`` header: each span's parent
is the traceparent of the message that caused it, and the messages it writes carry the
span's own context (`child_traceparent`).

Spans are exported with OTLP over HTTP/protobuf only when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; every other standard ``OTEL_*``
variable (headers, timeouts, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*``) applies as the SDK
reads it. Otherwise nothing of OpenTelemetry is imported: `span` returns one shared no-op
context manager and `child_traceparent` passes the message's traceparent on as it came.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from algorail.runtime.codec import new_traceparent

log = logging.getLogger("algorail.tracing")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "algorail"

_UNTRACED = contextlib.nullcontext()
_tracer: Any = None  # None: not decided yet; False: off; else the OpenTelemetry tracer
_lock = threading.Lock()


def enabled() -> bool:
    """True when spans are exported (decided once per process, from the environment)."""
    tracer = _tracer if _tracer is not None else _setup()
    return tracer is not False


def _setup() -> Any:
    global _tracer
    with _lock:
        if _tracer is not None:
            return _tracer
        wanted = any(os.environ.get(v) for v in ENDPOINT_VARIABLES) and (
            os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true")
        _tracer = _make_tracer() if wanted else False
        return _tracer


def _make_tracer() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
                    "pip install 'algorail[otel]'; tracing stays off")
        return False

    name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    atexit.register(provider.shutdown)  # flush what is queued when the service stops
    return provider.get_tracer("algorail")


def span(name: str, traceparent: str = "", *, run_id: str = "", pipeline: str = "",
         component: str = "", port: str = "") -> contextlib.AbstractContextManager:
    """A span named `name`, child of the message's `traceparent` (a new trace without one),
    current inside the ``with`` block. Free when tracing is off."""
    tracer = _tracer if _tracer is not None else _setup()
    if tracer is False:
        return _UNTRACED
    attributes = {"algorail.run_id": run_id, "algorail.pipeline": pipeline,
                  "algorail.component": component, "algorail.port": port}
    return _span(tracer, name, traceparent, {k: v for k, v in attributes.items() if v})


@contextlib.contextmanager
def _span(tracer: Any, name: str, traceparent: str, attributes: dict[str, str]) -> Iterator:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent}) \
        if traceparent else None
    with tracer.start_as_current_span(name, context=parent, attributes=attributes) as current:
        yield current


def record_error(message: str) -> None:
    """Mark the current span failed (a run's error), when tracing is on."""
    if not enabled():
        return
    from opentelemetry import trace

    trace.get_current_span().set_status(trace.Status(trace.StatusCode.ERROR, message[:500]))


def child_traceparent(traceparent: str) -> str:
    """The traceparent for a message written now: the current span's context when a span
    is recording, else the caller's own, unchanged (W3C Trace Context's pass-through: a new
    parent id would name a span no one exported, leaving the spans downstream without
    their parent); one missing or malformed starts a new trace."""
    if enabled():
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
    if (len(traceparent) == 55 and traceparent[2] == traceparent[35] == traceparent[52] == "-"
            and traceparent.count("-") == 3):
        return traceparent
    return new_traceparent(trace_id(traceparent))


def trace_id(traceparent: str) -> str | None:
    """The trace id of a W3C traceparent header, or None when it is not one."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def spans(name: str, records: list[Any], *, pipeline: str = "", component: str = ""
          ) -> contextlib.AbstractContextManager:
    """One span per run among `records` (objects with an `envelope` and an `input`), all
    around one operation on the batch, such as a connector's write."""
    if not enabled():
        return _UNTRACED
    stack = contextlib.ExitStack()
    seen: set[str] = set()
    for record in records:
        env = record.envelope
        if env.run_id not in seen:
            seen.add(env.run_id)
            stack.enter_context(span(name, env.traceparent, run_id=env.run_id,
                                     pipeline=pipeline, component=component,
                                     port=record.input))
    return stack
