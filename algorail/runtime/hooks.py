"""The hook dispatcher: consumes the topics piped into hooks, delivers, and records.

One consumer (in its own thread and consumer group) per hook, so a webhook retrying does
not hold up the others, plus one for the plan's error topic, which marks runs failed, and
one per data sink's report topic, which records the sink's outcome for each run as a hook's
(a rejected write is the run's error; a sync call waits for the write).

For each message of a hook's input:
1. skip it when the hook already has an outcome for the run (a replay);
2. a skip marker counts as a skipped input (in a pipeline with cycles it is ignored: a
   later pass of a loop may still bring data); otherwise decode the value and apply the
   input's `fields`/`map`;
3. join, with the runners' `JoinEngine`: `any` delivers the first input that arrives and
   reports "skipped" once every input was skipped; `inner` holds the parts until all
   inputs arrived (delivered as ``{input: payload}``), or reports "skipped" when one was
   skipped or its window (`JOIN_WINDOW_MS`) closed;
4. deliver through the hook type, retrying `DeliveryFailed` with exponential backoff and
   jitter (hook config `retries`, `backoffMs`, `maxBackoffMs`) without blocking the other
   runs, then send the message to the hook's dead-letter topic; a `response` hook
   republishes its result;
5. record the outcome; the delivery loop (`algorail.runtime.delivery`) commits the offset
   only after that and after what was sent is acknowledged (at-least-once; recording is
   idempotent).
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from algorail.backoff import Backoff
from algorail.extensions import DeliveryContext, DeliveryFailed, StartupContext
from algorail.plan import HookPlan, InputPlan, JoinPlan, Plan
from algorail.runtime import codec, tracing
from algorail.runtime.connect import REJECTED, WRITTEN
from algorail.runtime.connect import SKIPPED as SINK_SKIPPED
from algorail.runtime.convention import call_payload, select_fields
from algorail.runtime.delivery import DeliveryLoop, Processor
from algorail.runtime.join import Arrival, Decision, JoinEngine
from algorail.runtime.results import (
    DELIVERED,
    DELIVERY_FAILED,
    SKIPPED,
    ResultsStore,
)

log = logging.getLogger("algorail.hooks")

SKIP = object()  # an input with no value for this run
SINK_STATES = {WRITTEN: DELIVERED, REJECTED: DELIVERY_FAILED, SINK_SKIPPED: SKIPPED}
JOIN_WINDOW_MS = 300_000  # an inner join's parts wait this long for the others
JOIN_MAX_PENDING = 10_000
RECORD_RETRY_SECONDS = 1.0  # a record that could not be recorded is read again after this


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
        """Seconds to wait after failed `attempt` (1-based), with jitter so retries of many
        runs spread out."""
        return Backoff.from_ms(self.backoff_ms, self.max_backoff_ms, jitter=True).delay(
            attempt - 1)


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
                 allow_private_urls: bool = False, registry: Any = None,
                 metrics: HookMetrics | None = None, record_errors: bool = True):
        self.plan, self.bootstrap_servers, self.results = plan, bootstrap_servers, results
        self.record_errors = record_errors  # off beside another dispatcher of the pipeline
        self.allow_private_urls = allow_private_urls
        self.registry = registry
        self.metrics = metrics or HookMetrics()  # shared by the dispatchers of a HookFleet
        self._loops: list[DeliveryLoop] = []
        self._threads: list[threading.Thread] = []
        self._ready: list[threading.Event] = []
        self._per_hook: dict[str, _PerHook] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> HookDispatcher:
        from algorail import plugin_manager

        if self.registry is None:
            self.registry = plugin_manager.get_registry()
        plugin_manager.call_startup(StartupContext(service="hooks", plan=self.plan))
        for hook in self.plan.hooks:
            topics = sorted({i.topic for i in hook.inputs})
            if topics:
                self._spawn(hook.name, topics, hook.consumer_group, HookConsumer(self, hook))
        if self.record_errors:
            self._spawn("errors", [self.plan.error_topic], self.plan.errors_consumer_group,
                        Recorder(self, self.handle_error))
        for sink in self.plan.connectors:
            if sink.report_topic:
                self._spawn(f"sink-{sink.name}", [sink.report_topic], sink.report_consumer_group,
                            Recorder(self, lambda rec, name=sink.name:
                                     self.handle_sink_report(name, rec)))
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
        for loop in self._loops:
            loop.stop()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._loops.clear()
        log.info("hook dispatcher for %s/%s stopped", self.plan.owner, self.plan.deployment)

    def accepts(self, record: Any) -> bool:
        """Whether this dispatcher acts on `record` (a retired plan version's takes only its
        own runs); a record it does not take is done at once."""
        return True

    def _spawn(self, name: str, topics: list[str], group: str, processor: Processor) -> None:
        # each loop owns its producer, which reports failed sends only: one shared by the
        # loops made a future per send and served its reports on a thread of its own, which
        # took the interpreter lock once per response published, and each checkpoint's
        # flush waited 10 ms for reports that thread had already served
        loop = DeliveryLoop(processor, self.bootstrap_servers, group, topics)
        thread = threading.Thread(target=self._turn, args=(loop, topics),
                                  name=f"algorail-hook-{name}", daemon=True)
        self._ready.append(loop.ready)
        self._loops.append(loop)
        self._threads.append(thread)
        thread.start()

    @staticmethod
    def _turn(loop: DeliveryLoop, topics: list[str]) -> None:
        try:
            loop.run()
        except Exception:
            log.exception("hook consumer of %s stopped", ", ".join(topics))

    # -- one message ----------------------------------------------------------------------

    def handle(self, hook: HookPlan, record: Any, consumer: HookConsumer) -> None:
        envelope = codec.Envelope.from_headers(record.headers)
        if self.results.hook_state(envelope.run_id, hook.name) is not None:
            consumer.loop.done(record)
            return
        if envelope.skip and self.plan.allow_cycles:
            consumer.loop.done(record)  # a pass of a loop that did not come here: a later may
            return
        inp = next(i for i in hook.inputs if i.topic == record.topic)
        payload = SKIP
        if not envelope.skip:
            payload = apply_input(inp, codec.portable(record.value, envelope.content_type))
        consumer.arrive(Arrival(inp.name, None if payload is SKIP else payload,
                                payload is SKIP, (record, envelope)), envelope.run_id)

    def record_skipped(self, run_id: str, hook: HookPlan) -> None:
        self.results.record_hook(run_id, hook.name, {"state": SKIPPED, "attempts": 0})
        self.metrics.outcomes.labels(hook.name, SKIPPED).inc()

    def deliver(self, hook: HookPlan, payload: Any, envelope: codec.Envelope, attempt: int,
                loop: DeliveryLoop) -> float | None:
        """One delivery attempt (1-based); the seconds until the next one, or None once the
        outcome is recorded (delivered, or given up and dead-lettered)."""
        with tracing.span("hook delivery", envelope.traceparent, run_id=envelope.run_id,
                          pipeline=self.plan.pipeline, component=hook.name,
                          port=envelope.source):
            return self._deliver(hook, payload, envelope, attempt, loop)

    def _deliver(self, hook: HookPlan, payload: Any, envelope: codec.Envelope, attempt: int,
                 loop: DeliveryLoop) -> float | None:
        hook_type = self.registry.hook_types.get(hook.type)
        if hook_type is None:
            self._dead_letter(hook, payload, envelope, f"no hook type {hook.type!r} is installed",
                              0, loop)
            return None
        policy, timer, delivered = self._made_once(hook)
        context = DeliveryContext(
            run_id=envelope.run_id, deployment=self.plan.deployment, owner=self.plan.owner,
            source=envelope.source, attempt=attempt,
            headers={"traceparent": tracing.child_traceparent(envelope.traceparent)},
            allow_private_urls=self.allow_private_urls,
        )
        try:
            with timer.time():
                result = hook_type.deliver(hook, payload, context)
        except DeliveryFailed as exc:
            if attempt < policy.attempts:
                self.metrics.retries.labels(hook.name).inc()
                return policy.delay(attempt)
            self._dead_letter(hook, payload, envelope, str(exc), attempt, loop)
            return None
        except Exception as exc:  # not worth retrying: a refused URL, a 4xx, a bug
            self._dead_letter(hook, payload, envelope, f"{type(exc).__name__}: {exc}", attempt,
                              loop)
            return None
        if hook.publish_topic:
            self._publish(hook, result, envelope, loop)
        self.results.record_hook(envelope.run_id, hook.name,
                                 {"state": DELIVERED, "attempts": attempt}, result)
        delivered.inc()
        return None

    def _made_once(self, hook: HookPlan) -> _PerHook:
        """What every delivery of `hook` uses: its retry policy and labelled metrics."""
        made = self._per_hook.get(hook.name)
        if made is None:
            made = self._per_hook[hook.name] = _PerHook(
                RetryPolicy.from_config(hook.config),
                self.metrics.delivery_seconds.labels(hook.name),
                self.metrics.outcomes.labels(hook.name, DELIVERED))
        return made

    def _publish(self, hook: HookPlan, result: Any, envelope: codec.Envelope,
                 loop: DeliveryLoop) -> None:
        out = codec.Envelope(run_id=envelope.run_id, deployment=self.plan.deployment,
                             source=hook.publish_source, traceparent=envelope.traceparent)
        loop.send(hook.publish_topic, json.dumps(result).encode(), envelope.run_id.encode(),
                  out.to_headers())

    def _dead_letter(self, hook: HookPlan, payload: Any, envelope: codec.Envelope,
                     error: str, attempts: int, loop: DeliveryLoop) -> None:
        tracing.record_error(error)
        log.warning("hook %s gave up on run %s after %d attempts: %s", hook.name,
                    envelope.run_id, attempts, error)
        body = {"runId": envelope.run_id, "hook": hook.name, "source": envelope.source,
                "payload": payload, "error": error, "attempts": attempts}
        out = codec.Envelope(run_id=envelope.run_id, deployment=self.plan.deployment,
                             source=envelope.source, traceparent=envelope.traceparent,
                             extra={codec.ERROR: error[:1000]})
        loop.send(hook.dead_letter_topic, json.dumps(body).encode(), envelope.run_id.encode(),
                  out.to_headers())
        self.results.record_error(envelope.run_id, f"hook:{hook.name}", {
            "runId": envelope.run_id, "component": hook.name, "error": error,
            "source": envelope.source, "deadLetterTopic": hook.dead_letter_topic})
        self.results.record_hook(envelope.run_id, hook.name, {
            "state": DELIVERY_FAILED, "attempts": attempts, "error": error})
        self.metrics.dead_letters.labels(hook.name).inc()
        self.metrics.outcomes.labels(hook.name, DELIVERY_FAILED).inc()

    def handle_error(self, record: Any) -> None:
        """A runner's error report: the run failed."""
        envelope = codec.Envelope.from_headers(record.headers)
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
        run_id = report.get("runId") or codec.Envelope.from_headers(record.headers).run_id
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



class Recorder(Processor):
    """Records what a topic reports (runners' errors, sinks' outcomes): each record once
    recorded is done; a failure to record (the results store is down) reads it again."""

    def __init__(self, dispatcher: HookDispatcher, record: Any):
        self.dispatcher, self.record = dispatcher, record

    def process(self, record: Any) -> None:
        if self.dispatcher.accepts(record):
            self.record(record)
        self.loop.done(record)

    def on_error(self, record: Any, exc: Exception) -> float:
        return RECORD_RETRY_SECONDS


class _PerHook(NamedTuple):
    policy: RetryPolicy
    delivery_seconds: Any
    delivered: Any


class _Waiting(NamedTuple):
    due: float
    seq: int
    payload: Any
    envelope: codec.Envelope
    records: list[Any]
    attempt: int


class HookConsumer(Processor):
    """One hook's inputs on a delivery loop: joined with the runner's `JoinEngine`, then
    delivered; a delivery to try again waits here for its turn (a tick), so other runs go
    on meanwhile, and its records stay uncommitted until the outcome is recorded."""

    def __init__(self, dispatcher: HookDispatcher, hook: HookPlan):
        self.dispatcher, self.hook = dispatcher, hook
        self.names = [i.name for i in hook.inputs]
        join = JoinPlan(type=hook.join, window_ms=JOIN_WINDOW_MS, max_pending=JOIN_MAX_PENDING)
        self.engine = JoinEngine(self.names, [], join if len(self.names) > 1 else None)
        self.waiting: list[_Waiting] = []
        self._seq = 0

    def process(self, record: Any) -> None:
        if not self.dispatcher.accepts(record):
            self.loop.done(record)
            return
        self.dispatcher.handle(self.hook, record, self)

    def on_error(self, record: Any, exc: Exception) -> float:
        return RECORD_RETRY_SECONDS

    def arrive(self, arrival: Arrival, run_id: str) -> None:
        for decision in self.engine.offer(run_id, [arrival]):
            self.decide(decision)

    def decide(self, decision: Decision) -> None:
        records = [a.position[0] for a in decision.arrivals]
        if decision.kind == "run":
            envelope = decision.arrivals[0].position[1]
            if self.hook.join == "inner" and len(self.names) > 1:
                payload = call_payload(self.names, decision.values, "keyed")
            else:
                payload = next(iter(decision.values.values()))
            self.attempt(payload, envelope, records, 1)
            return
        if decision.kind in ("skip", "expired"):  # an inner join's part never came
            self.dispatcher.record_skipped(decision.run_id, self.hook)
        self._done(records)

    def attempt(self, payload: Any, envelope: codec.Envelope, records: list[Any],
                attempt: int) -> None:
        wait = self.dispatcher.deliver(self.hook, payload, envelope, attempt, self.loop)
        if wait is None:
            self._done(records)
            return
        self._seq += 1
        heapq.heappush(self.waiting, _Waiting(time.monotonic() + wait, self._seq, payload,
                                              envelope, records, attempt + 1))

    def tick(self) -> None:
        for decision in self.engine.expire():
            self.decide(decision)
        now = time.monotonic()
        while self.waiting and self.waiting[0].due <= now:
            due = heapq.heappop(self.waiting)
            self.attempt(due.payload, due.envelope, due.records, due.attempt)

    def revoked(self, tps: list[Any]) -> None:
        self.engine.clear()
        self.waiting.clear()

    def _done(self, records: list[Any]) -> None:
        for record in records:
            self.loop.done(record)
