"""The hook dispatcher: consumes the topics piped into hooks, delivers, and records.

One consumer (in its own thread and consumer group) per hook, so a webhook retrying does
not hold up the others, plus one for the plan's error topic, which marks runs failed, and
one per data sink's report topic, which records the sink's outcome for each run as a hook's
(a rejected write is the run's error; a sync call waits for the write).

For each message of a hook's input:
1. skip it when the hook already has an outcome for the run (a replay);
2. a skip marker counts as a skipped input; otherwise decode the value and apply the
   input's `fields`/`map`;
3. join: `any` delivers the first input that arrives and reports "skipped" once every
   input was skipped; `inner` keeps parts in the results store until all inputs arrived
   (delivered as ``{input: payload}``) or one was skipped;
4. deliver through the hook type, retrying `DeliveryFailed` with exponential backoff and
   jitter (hook config `retries`, `backoffMs`, `maxBackoffMs`), then send the message to
   the hook's dead-letter topic; a `response` hook republishes its result;
5. record the outcome, and only then commit the offset (at-least-once; recording is
   idempotent).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

from algorail import naming
from algorail.extensions import DeliveryContext, DeliveryFailed, StartupContext
from algorail.plan import HookPlan, InputPlan, Plan
from algorail.runtime import kafka_io, messages, tracing
from algorail.runtime.connect import REJECTED, WRITTEN
from algorail.runtime.connect import SKIPPED as SINK_SKIPPED
from algorail.runtime.convention import call_payload, decode, is_json, select_fields
from algorail.runtime.objectstore import FILE_REFERENCE
from algorail.runtime.results import (
    DELIVERED,
    DELIVERY_FAILED,
    SKIP_PART,
    SKIPPED,
    ResultsStore,
)

log = logging.getLogger("algorail.hooks")

SKIP = object()  # an input with no value for this run
SINK_STATES = {WRITTEN: DELIVERED, REJECTED: DELIVERY_FAILED, SINK_SKIPPED: SKIPPED}
# A sync caller waits on this hop. Some brokers (Tansu) hold a fetch for its whole wait
# even when records arrive meanwhile, so a short wait keeps the round trip short.
FETCH_MAX_WAIT_MS = 10


class Stopping(Exception):
    """The dispatcher is stopping mid-delivery: leave the offset uncommitted."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff_ms: int = 200
    max_backoff_ms: int = 5_000

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RetryPolicy:
        return cls(
            attempts=1 + int(config.get("retries", cls.attempts - 1)),
            backoff_ms=int(config.get("backoffMs", cls.backoff_ms)),
            max_backoff_ms=int(config.get("maxBackoffMs", cls.max_backoff_ms)),
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed `attempt` (1-based): doubling, capped, with jitter
        between half and all of it so retries of many runs spread out."""
        ceiling = min(self.max_backoff_ms, self.backoff_ms * 2 ** (attempt - 1)) / 1000
        return random.uniform(ceiling / 2, ceiling)


def decode_value(value: bytes | None, content_type: str) -> Any:
    """A message value as the JSON-able payload hooks receive (bytes become base64)."""
    if is_json(content_type) or content_type.startswith(FILE_REFERENCE):
        return decode(value, "application/json") if value else None
    data = value or b""
    if content_type.startswith("text/"):
        return data.decode("utf-8", "replace")
    return {"contentType": content_type, "base64": base64.b64encode(data).decode()}


def apply_input(inp: InputPlan, payload: Any) -> Any:
    """An input's `fields` and `map`, as runners apply them; `SKIP` when no field is left."""
    payload, skipped = select_fields(payload, inp.fields, inp.map)
    return SKIP if skipped else payload


class HookMetrics:
    """Deliveries by hook and outcome, attempts, dead letters; served by `MetricsServer`."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = r = CollectorRegistry()
        self.outcomes = Counter("algorail_hook_outcomes", "Runs per hook by outcome: "
                                "delivered, skipped or failed", ["hook", "state"], registry=r)
        self.retries = Counter("algorail_hook_retries", "Delivery attempts retried",
                               ["hook"], registry=r)
        self.dead_letters = Counter("algorail_hook_dead_letters",
                                    "Payloads sent to the dead-letter topic", ["hook"], registry=r)
        self.delivery_seconds = Histogram("algorail_hook_delivery_seconds",
                                          "Duration of one delivery attempt", ["hook"], registry=r)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class HookDispatcher:
    """Runs the plan's hooks in background threads: `start()`, `wait_ready()`, `stop()`."""

    def __init__(self, plan: Plan, bootstrap_servers: str, results: ResultsStore, *,
                 allow_private_urls: bool = False, registry: Any = None):
        self.plan, self.bootstrap_servers, self.results = plan, bootstrap_servers, results
        self.allow_private_urls = allow_private_urls
        self.registry = registry
        self.metrics = HookMetrics()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ready: list[threading.Event] = []
        self.producer = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> HookDispatcher:
        from algorail import plugin_manager

        if self.registry is None:
            self.registry = plugin_manager.get_registry()
        plugin_manager.call_startup(StartupContext(service="hooks", plan=self.plan))
        self.producer = kafka_io.make_producer(self.bootstrap_servers, linger_ms=0)
        for hook in self.plan.hooks:
            topics = sorted({i.topic for i in hook.inputs})
            if topics:
                self._spawn(hook.name, topics, hook.consumer_group,
                            lambda rec, h=hook: self.handle(h, rec))
        # "_errors" cannot be a component's name, so this group is the error recorder's own
        errors_group = naming.consumer_group(self.plan.owner, self.plan.deployment, "_errors")
        self._spawn("errors", [self.plan.error_topic], errors_group, self.handle_error)
        for sink in self.plan.connectors:
            if sink.report_topic:
                group = naming.consumer_group(self.plan.owner, self.plan.deployment,
                                              f"_{sink.name}-reports")
                self._spawn(f"sink-{sink.name}", [sink.report_topic], group,
                            lambda rec, name=sink.name: self.handle_sink_report(name, rec))
        log.info("hook dispatcher for %s/%s started (%d hooks)", self.plan.owner,
                 self.plan.deployment, len(self.plan.hooks))
        return self

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once every consumer has its partitions assigned."""
        return all(event.wait(timeout) for event in self._ready)

    def healthy(self) -> bool:
        """Every consumer thread is still running."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self.producer is not None:
            self.producer.close(timeout=5)
            self.producer = None
        log.info("hook dispatcher for %s/%s stopped", self.plan.owner, self.plan.deployment)

    def _spawn(self, name: str, topics: list[str], group: str, handle) -> None:
        ready = threading.Event()
        thread = threading.Thread(target=self._consume, args=(topics, group, handle, ready),
                                  name=f"algorail-hook-{name}", daemon=True)
        self._ready.append(ready)
        self._threads.append(thread)
        thread.start()

    def _consume(self, topics: list[str], group: str, handle, ready: threading.Event) -> None:
        """Poll, handle each record, commit what was handled; on a failure, rewind to the
        failed record and try it again after a pause."""
        consumer = kafka_io.make_consumer(self.bootstrap_servers, group,
                                          fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
        try:
            consumer.subscribe(topics)
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                if consumer.assignment():
                    ready.set()
                failed = self._handle_batch(batch, handle, consumer)
                if batch:
                    self._commit(consumer)
                if failed:
                    self._stop.wait(1.0)
        except Exception:
            log.exception("hook consumer of %s stopped", ", ".join(topics))
        finally:
            kafka_io.close_consumer(consumer)

    def _handle_batch(self, batch: dict, handle, consumer) -> bool:
        failed = False
        for tp, records in batch.items():
            for record in records:
                if failed:
                    consumer.seek(tp, record.offset)
                    break
                try:
                    handle(record)
                except Exception as exc:
                    if not isinstance(exc, Stopping):
                        log.error("%s[%d] offset %d: %s; will try again", record.topic,
                                  record.partition, record.offset, exc)
                    consumer.seek(tp, record.offset)
                    failed = True
                    break
        return failed

    @staticmethod
    def _commit(consumer) -> None:
        """Commit the positions; a commit lost to a rebalance only means those records are
        handled again, which recording idempotently makes harmless."""
        try:
            consumer.commit()
        except Exception as exc:
            log.warning("offset commit failed (%s); records since the last commit will be "
                        "handled again", exc)

    # -- one message ----------------------------------------------------------------------

    def handle(self, hook: HookPlan, record: Any) -> None:
        envelope = messages.Envelope.from_headers(record.headers)
        run_id = envelope.run_id
        if self.results.hook_state(run_id, hook.name) is not None:
            return
        inp = next(i for i in hook.inputs if i.topic == record.topic)
        payload = SKIP
        if not envelope.skip:
            payload = apply_input(inp, decode_value(record.value, envelope.content_type))
        if hook.join == "inner" and len(hook.inputs) > 1:
            parts = self.results.add_part(run_id, hook.name, inp.name,
                                          SKIP_PART if payload is SKIP else payload)
            if SKIP_PART in parts.values():
                self._record_skipped(run_id, hook)
            elif all(i.name in parts for i in hook.inputs):
                names = [i.name for i in hook.inputs]
                self.deliver(hook, call_payload(names, parts, "keyed"), envelope)
        elif payload is not SKIP:
            self.deliver(hook, payload, envelope)
        elif len(hook.inputs) == 1:
            self._record_skipped(run_id, hook)
        else:
            parts = self.results.add_part(run_id, hook.name, inp.name, SKIP_PART)
            if all(i.name in parts for i in hook.inputs):
                self._record_skipped(run_id, hook)

    def _record_skipped(self, run_id: str, hook: HookPlan) -> None:
        self.results.record_hook(run_id, hook.name, {"state": SKIPPED, "attempts": 0})
        self.metrics.outcomes.labels(hook.name, SKIPPED).inc()

    def deliver(self, hook: HookPlan, payload: Any, envelope: messages.Envelope) -> None:
        with tracing.span("hook delivery", envelope.traceparent, run_id=envelope.run_id,
                          pipeline=self.plan.pipeline, component=hook.name,
                          port=envelope.source):
            self._deliver(hook, payload, envelope)

    def _deliver(self, hook: HookPlan, payload: Any, envelope: messages.Envelope) -> None:
        hook_type = self.registry.hook_types.get(hook.type)
        policy = RetryPolicy.from_config(hook.config)
        error, attempt = f"no hook type {hook.type!r} is installed", 0
        while hook_type is not None and attempt < policy.attempts:
            attempt += 1
            context = DeliveryContext(
                run_id=envelope.run_id, deployment=self.plan.deployment, owner=self.plan.owner,
                source=envelope.source, attempt=attempt,
                headers={"traceparent": tracing.child_traceparent(envelope.traceparent)},
                allow_private_urls=self.allow_private_urls,
            )
            try:
                with self.metrics.delivery_seconds.labels(hook.name).time():
                    result = hook_type.deliver(hook, payload, context)
            except DeliveryFailed as exc:
                error = str(exc)
                if attempt < policy.attempts:
                    self.metrics.retries.labels(hook.name).inc()
                    if self._stop.wait(policy.delay(attempt)):
                        raise Stopping() from exc
                continue
            except Exception as exc:  # not worth retrying: a refused URL, a 4xx, a bug
                error = f"{type(exc).__name__}: {exc}"
                break
            if hook.publish_topic:
                self._publish(hook, result, envelope)
            self.results.record_hook(envelope.run_id, hook.name,
                                     {"state": DELIVERED, "attempts": attempt}, result)
            self.metrics.outcomes.labels(hook.name, DELIVERED).inc()
            return
        self._dead_letter(hook, payload, envelope, error, attempt)

    def _publish(self, hook: HookPlan, result: Any, envelope: messages.Envelope) -> None:
        out = messages.Envelope(run_id=envelope.run_id, deployment=self.plan.deployment,
                                source=f"{hook.name}.outputs", traceparent=envelope.traceparent)
        self.producer.send(hook.publish_topic, value=json.dumps(result).encode(),
                           headers=out.to_headers()).get(timeout=10)

    def _dead_letter(self, hook: HookPlan, payload: Any, envelope: messages.Envelope,
                     error: str, attempts: int) -> None:
        tracing.record_error(error)
        log.warning("hook %s gave up on run %s after %d attempts: %s", hook.name,
                    envelope.run_id, attempts, error)
        body = {"runId": envelope.run_id, "hook": hook.name, "source": envelope.source,
                "payload": payload, "error": error, "attempts": attempts}
        out = messages.Envelope(run_id=envelope.run_id, deployment=self.plan.deployment,
                                source=envelope.source, traceparent=envelope.traceparent,
                                extra={messages.ERROR: error[:1000]})
        self.producer.send(hook.dead_letter_topic, value=json.dumps(body).encode(),
                           headers=out.to_headers()).get(timeout=10)
        self.results.record_error(envelope.run_id, f"hook:{hook.name}", {
            "runId": envelope.run_id, "component": hook.name, "error": error,
            "source": envelope.source, "deadLetterTopic": hook.dead_letter_topic})
        self.results.record_hook(envelope.run_id, hook.name, {
            "state": DELIVERY_FAILED, "attempts": attempts, "error": error})
        self.metrics.dead_letters.labels(hook.name).inc()
        self.metrics.outcomes.labels(hook.name, DELIVERY_FAILED).inc()

    def handle_error(self, record: Any) -> None:
        """A runner's error report: the run failed."""
        envelope = messages.Envelope.from_headers(record.headers)
        try:
            error = json.loads(record.value or b"{}")
        except ValueError:
            error = {"error": (record.value or b"").decode("utf-8", "replace")}
        if not isinstance(error, dict):
            error = {"error": error}
        run_id = error.get("runId") or envelope.run_id
        key = f"{record.topic}:{record.partition}:{record.offset}"
        self.results.record_error(run_id, key, error)

    def handle_sink_report(self, sink: str, record: Any) -> None:
        """A data sink's outcome for a run. A write or a rejection is final; a skip counts
        only while nothing else was reported (a sink fed by several inputs)."""
        report = json.loads(record.value or b"{}")
        state = SINK_STATES.get(report.get("state"))
        run_id = report.get("runId") or messages.Envelope.from_headers(record.headers).run_id
        if state is None:
            log.warning("sink %s: unknown report %r on %s", sink, report, record.topic)
            return
        if self.results.hook_state(run_id, sink) not in (None, SKIPPED):
            return
        delivery = {"state": state, "attempts": 1}
        if state == DELIVERY_FAILED:
            delivery["error"] = report.get("error", "rejected")
            self.results.record_error(run_id, f"sink:{sink}", {
                "runId": run_id, "component": sink, "error": delivery["error"],
                "source": report.get("source"), "deadLetterTopic": report.get("deadLetterTopic")})
        self.results.record_hook(run_id, sink, delivery)

