"""The runner: one algo of a plan on Kafka.

The run loop only polls, hands each record to `process`, ticks the join windows and
batches, and checkpoints (`algorail.runtime.checkpoint`). Processing turns records into
join arrivals, join decisions into algo calls, and results into output messages, skip
markers or error reports. A failed run goes to the pipeline's error topic (JSON
``{runId, component, error, source, topic, partition, offset}``) and its inputs to the
algo's dead-letter topic, after ``retry.attempts`` retries; the runner goes on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, NamedTuple

from algorail.errors import AlgorailError
from algorail.extensions import failure_kind
from algorail.plan import Plan, RunnerPlan
from algorail.runtime import convention, messages, tracing
from algorail.runtime.checkpoint import Checkpoint, OffsetTracker
from algorail.runtime.dedup import ORIGIN, Deduplicator, origin_of
from algorail.runtime.join import Arrival, Batcher, BatchItem, Decision, JoinEngine
from algorail.runtime.metrics import MetricsServer, RunnerMetrics
from algorail.runtime.objectstore import FILE_REFERENCE

log = logging.getLogger("algorail.runner")

TICK_SECONDS = 0.05
LAG_SECONDS = 2.0
STALL_SECONDS = 60.0  # /healthz fails when the loop has not turned for this long
RECOVERY_MARGIN_MS = 30_000  # clock skew allowed between an input's and our timestamps


class RunnerError(AlgorailError):
    pass


class AlgoError(Exception):
    """A run failed after its retries; the message is reported on the error topic."""


class Position(NamedTuple):
    """Where an arrival came from, with its record (for the dead-letter topic) and
    envelope (for the run's outputs)."""

    tp: Any
    offset: int
    record: Any
    env: messages.Envelope


def open_algo(runner: RunnerPlan) -> Any:
    """The algo's callable; any failure to open it is one `RunnerError` line, so a runner
    that cannot start says why and exits 1 (dev mode stops with that line)."""
    from algorail.plugin_manager import get_registry

    runtime = get_registry().runtimes.get(runner.runtime)
    if runtime is None:
        raise RunnerError(
            f"algo {runner.component!r} needs the {runner.runtime!r} runtime, which no "
            "installed plugin provides; see `algorail plugins`"
        )
    try:
        return runtime.open(runner)
    except AlgorailError:
        raise
    except Exception as exc:  # the algo's own code failed while loading
        raise RunnerError(f"algo {runner.component!r} failed to start: "
                          f"{type(exc).__name__}: {exc}") from exc


class Runner:
    def __init__(self, plan: Plan, component: str, bootstrap_servers: str, *,
                 metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                 algo: Any = None, object_store: Any = None, transactional: bool = False):
        self.plan = plan
        self.transactional = transactional
        try:
            self.spec = plan.runner(component)
        except KeyError as exc:
            raise RunnerError(str(exc.args[0])) from None
        self.bootstrap_servers = bootstrap_servers
        self.metrics = RunnerMetrics(component)
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self.metrics_server: MetricsServer | None = None
        self.algo = algo
        self.object_store = object_store
        self.ports = list(self.spec.outputs)
        self.input_names = [i.name for i in self.spec.inputs]
        self.slots: dict[str, list[Any]] = {}
        for sub in [*self.spec.inputs, *self.spec.triggers]:
            self.slots.setdefault(sub.topic, []).append(sub)
        self.engine = JoinEngine(self.input_names, [t.name for t in self.spec.triggers],
                                 self.spec.join, self.spec.triggers_join)
        self.batcher = Batcher(self.spec.batch) if self.spec.batch else None
        self.dedup = Deduplicator(per_run=not self.engine.passthrough)
        self.tracker = OffsetTracker()
        self.ready = threading.Event()
        self._revoked = threading.Event()
        self._assigned: list[Any] | None = None
        self.stopping = threading.Event()
        self.last_turn = time.monotonic()
        self.consumer: Any = None
        self.producer: Any = None
        self.checkpoint: Checkpoint | None = None
        self._children = {p: self.metrics.messages_out.labels(component, p, "data")
                          for p in self.ports}
        self._skips = {p: self.metrics.messages_out.labels(component, p, "skip")
                       for p in self.ports}
        self._ins = {s.name: self.metrics.messages_in.labels(component, s.name)
                     for subs in self.slots.values() for s in subs}
        self._algo_seconds = self.metrics.algo_seconds.labels(component)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Runner:
        from kafka import ConsumerRebalanceListener

        from algorail.runtime import kafka_io

        if self.algo is None:
            self.algo = open_algo(self.spec)
        producer_options = {}
        if self.transactional:
            producer_options["transactional_id"] = transactional_id(self.spec)
        self.producer = kafka_io.make_producer(self.bootstrap_servers, **producer_options)
        self.consumer = kafka_io.make_consumer(self.bootstrap_servers, self.spec.consumer_group,
                                               client_id=self.spec.id)
        self.checkpoint = Checkpoint(self.consumer, self.producer, self.tracker,
                                     transactional=self.transactional)
        runner = self

        class Listener(ConsumerRebalanceListener):
            """Runs on kafka-python's IO thread, which must not block: it only takes note,
            and the run loop acts before it processes the next records."""

            def on_partitions_revoked(self, revoked):
                runner._revoked.set()

            def on_partitions_assigned(self, assigned):
                runner._assigned = list(assigned)

        self.consumer.subscribe(topics=sorted(self.slots), listener=Listener())
        if self.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, self.healthy, self.metrics_host,
                                                self.metrics_port).start()
            log.info("%s: metrics on http://%s:%d/metrics", self.spec.component,
                     self.metrics_host, self.metrics_server.port)
        self._call_startup()
        return self

    def run(self, max_seconds: float | None = None) -> None:
        """Poll until `stop()` (or `max_seconds`); a final checkpoint runs on the way out."""
        if self.consumer is None:
            self.start()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        next_tick = next_lag = 0.0
        try:
            while not self.stopping.is_set():
                if deadline and time.monotonic() > deadline:
                    break
                batch = self.consumer.poll(timeout_ms=100)
                if self._rebalance():
                    batch = {}  # fetched before the rewind to the committed offsets
                for records in batch.values():
                    for record in records:
                        self.process(record)
                now = time.monotonic()
                self.last_turn = now
                if now >= next_tick:
                    self.tick()
                    next_tick = now + TICK_SECONDS
                if now >= next_lag:
                    self._update_lag()
                    next_lag = now + LAG_SECONDS
                self.checkpoint.commit()
        finally:
            self.close()

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        from algorail.runtime import kafka_io

        try:
            if self.consumer is not None and self.checkpoint is not None:
                self.checkpoint.commit()
        finally:
            for closer in (getattr(self.algo, "close", None),
                           self.consumer and (lambda: kafka_io.close_consumer(self.consumer)),
                           self.producer and self.producer.close,
                           self.metrics_server and self.metrics_server.stop):
                if closer:
                    closer()
            self.consumer = self.producer = self.metrics_server = None
            log.info("%s: stopped", self.spec.component)

    def healthy(self) -> bool:
        return (self.checkpoint is None or self.checkpoint.failure is None) and (
            time.monotonic() - self.last_turn < STALL_SECONDS)

    # -- processing ------------------------------------------------------------------------

    def process(self, record: Any) -> None:
        from kafka import TopicPartition

        tp = TopicPartition(record.topic, record.partition)
        self.tracker.track(tp, record.offset)
        headers = record.headers or ()
        env = messages.Envelope.from_headers(headers)
        if not any(k == messages.RUN_ID for k, _ in headers):  # stable across re-reads
            env.run_id = f"{record.topic}:{record.partition}:{record.offset}"
        position = Position(tp, record.offset, record, env)
        arrivals = []
        for sub in self.slots.get(record.topic, ()):
            self._ins[sub.name].inc()
            if env.skip:
                arrivals.append(Arrival(sub.name, None, True, position))
                continue
            try:
                payload = self._decode(record.value, env.content_type or sub.content_type)
            except (ValueError, AlgorailError) as exc:
                self._report(Decision(env.run_id, "run", [Arrival(sub.name, None, False,
                                                                   position)]),
                             f"cannot read the message on {record.topic}: {exc}")
                return
            value, skipped = convention.select_fields(payload, sub.fields, sub.map)
            arrivals.append(Arrival(sub.name, value, skipped, position))
        for decision in self.engine.offer(env.run_id, arrivals):
            self.handle(decision)

    def tick(self) -> None:
        """Close join windows and due batches."""
        for decision in self.engine.expire():
            self.handle(decision)
        if self.batcher is not None:
            for batch in self.batcher.due():
                self._run_batch(batch)
        self.metrics.join_pending.labels(self.spec.component).set(len(self.engine.pending))

    def handle(self, decision: Decision) -> None:
        if decision.kind == "late":
            self._resolve(decision)
            return
        origin = origin_of(self._positions(decision))
        if self.dedup.key(decision.run_id, origin) in self.dedup:  # written before a restart
            self.metrics.duplicates.labels(self.spec.component).inc()
            self._resolve(decision)
            return
        if decision.kind == "expired":
            self.metrics.join_expired.labels(self.spec.component).inc()
            self._report(decision, decision.reason, origin)
            return
        if decision.kind == "skip":
            self._emit(decision, {}, origin)
            return
        payload = convention.call_payload(self.input_names, decision.values,
                                          self.spec.input_mode)
        if self.batcher is not None:
            for batch in self.batcher.add(decision, payload):
                self._run_batch(batch)
            return
        with self._span(decision):
            try:
                outputs = convention.split_outputs(self.ports, self._call(payload))
            except (AlgoError, convention.ConventionError) as exc:
                self._report(decision, str(exc), origin)
                return
            self._emit(decision, outputs, origin)

    def _span(self, decision: Decision):
        env = decision.arrivals[0].position.env
        return tracing.span("algo call", env.traceparent, run_id=decision.run_id,
                            pipeline=self.plan.pipeline, component=self.spec.component,
                            port=",".join(a.slot for a in decision.arrivals))

    def _run_batch(self, batch: list[BatchItem]) -> None:
        if self.batcher.rolling:
            items, newest = [batch[-1]], batch[-1]
        else:
            items, newest = batch, None
        try:
            result = self._call([item.payload for item in batch])
            if getattr(self.algo, "splits_batches", False):  # one result per payload
                results = convention.split_batch(result, len(batch))[-len(items):]
            else:
                results = [result] if newest else convention.split_batch(result, len(batch))
            outputs = [convention.split_outputs(self.ports, r) for r in results]
        except (AlgoError, convention.ConventionError) as exc:
            for item in items:
                self._report(item.decision, str(exc))
            return
        for item, out in zip(items, outputs, strict=True):
            self._emit(item.decision, out)

    def _call(self, payload: Any) -> Any:
        retry = self.spec.retry
        component = self.spec.component
        for attempt in range(retry.attempts + 1):
            started = time.perf_counter()
            try:
                result = self.algo(payload)
            except Exception as exc:  # the algo's failure is the run's, not the runner's
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if attempt == retry.attempts or failure_kind(exc) not in retry.retry_on:
                    raise AlgoError(f"algo {component!r} failed: {error}") from exc
                self.metrics.retries.labels(component).inc()
                delay = min(retry.backoff_ms * 2**attempt, retry.max_backoff_ms) / 1000
                log.warning("%s: attempt %d failed (%s); retrying in %.2fs", component,
                            attempt + 1, error, delay)
                time.sleep(delay)
            else:
                self._algo_seconds.observe(time.perf_counter() - started)
                return result
        raise AssertionError("unreachable")

    # -- output ----------------------------------------------------------------------------

    def _emit(self, decision: Decision, outputs: dict[str, Any], origin: str | None = None
              ) -> None:
        """Write each port's payload, or a skip marker for a port that produced nothing."""
        env = decision.arrivals[0].position.env
        origin = origin or origin_of(self._positions(decision))
        key = decision.run_id.encode()
        for port, topic in self.spec.outputs.items():
            content_type = self.spec.output_content_types[port]
            produced = port in outputs
            headers = messages.Envelope(
                decision.run_id, env.deployment, f"{self.spec.component}.{port}",
                content_type, tracing.child_traceparent(env.traceparent), skip=not produced,
                extra={ORIGIN: origin}).to_headers()
            value = convention.encode(outputs[port], content_type) if produced else b""
            self._send(topic, value, key, headers)
            (self._children if produced else self._skips)[port].inc()
        self.dedup.add(self.dedup.key(decision.run_id, origin))
        self._resolve(decision)

    def _report(self, decision: Decision, error: str, origin: str | None = None) -> None:
        """The run failed: an error message for the run, its inputs to the dead letters."""
        component = self.spec.component
        self.metrics.errors.labels(component).inc()
        first = decision.arrivals[0].position
        env = first.env
        origin = origin or origin_of(self._positions(decision))
        body = {
            "runId": decision.run_id, "component": component, "error": error,
            "source": env.source, "topic": first.tp.topic, "partition": first.tp.partition,
            "offset": first.offset,
        }
        tracing.record_error(error)
        log.warning("%s: run %s failed at %s[%d] %d: %s", component, decision.run_id,
                    first.tp.topic, first.tp.partition, first.offset, error)
        headers = messages.Envelope(
            decision.run_id, env.deployment, f"{component}.errors", "application/json",
            tracing.child_traceparent(env.traceparent), extra={ORIGIN: origin}).to_headers()
        self._send(self.spec.error_topic, json.dumps(body).encode(), decision.run_id.encode(),
                   headers)
        for position in {id(p): p for p in self._positions_full(decision)}.values():
            record = position.record
            dl_headers = [*(record.headers or []), (messages.ERROR, error.encode()[:4000]),
                          (ORIGIN, origin.encode())]
            self._send(self.spec.dead_letter_topic, record.value, record.key, dl_headers)
            self.metrics.dead_letters.labels(component).inc()
        self.dedup.add(self.dedup.key(decision.run_id, origin))
        self._resolve(decision)

    def _send(self, topic: str, value: bytes, key: bytes | None, headers: list) -> None:
        self.checkpoint.sent(self.producer.send(topic, value=value, key=key, headers=headers))

    def _resolve(self, decision: Decision) -> None:
        for tp, offset in self._positions(decision):
            self.tracker.resolve(tp, offset)

    @staticmethod
    def _positions(decision: Decision) -> list[tuple[Any, int]]:
        return [(a.position.tp, a.position.offset) for a in decision.arrivals]

    @staticmethod
    def _positions_full(decision: Decision) -> list[Position]:
        return [a.position for a in decision.arrivals]

    def _decode(self, value: bytes | None, content_type: str) -> Any:
        if content_type == FILE_REFERENCE:
            ref = json.loads(value)
            if self.spec.file_input == "reference":
                return ref
            return self._object_store().get(ref)
        return convention.decode(value, content_type)

    def _object_store(self) -> Any:
        if self.object_store is None:
            import os

            from algorail.runtime.objectstore import open_object_store

            url = os.environ.get("ALGORAIL_OBJECT_STORE_URL")
            if not url:
                raise RunnerError("a file reference arrived but no object store is set: "
                                  "set ALGORAIL_OBJECT_STORE_URL (s3://BUCKET?endpoint=...)")
            self.object_store = open_object_store(url)
        return self.object_store

    # -- rebalancing and recovery ----------------------------------------------------------

    def _rebalance(self) -> bool:
        """Act on a rebalance noted by the listener, in the loop's thread; True when partitions
        were assigned (and rewound)."""
        if self._revoked.is_set():
            self._revoked.clear()
            self._drop_open_runs()
        assigned, self._assigned = self._assigned, None
        if assigned is not None:
            started = time.monotonic()
            scanned = self._recover(assigned)
            log.info("%s: ready, %d partition(s) assigned, %d earlier outputs remembered "
                     "(%.1fs)", self.spec.component, len(assigned), scanned,
                     time.monotonic() - started)
            self.ready.set()
        return assigned is not None

    def _drop_open_runs(self) -> None:
        """Forget uncommitted offsets, open joins and batches: they are read again."""
        self.checkpoint.forget()
        self.engine.clear()
        if self.batcher is not None:
            self.batcher.clear()

    def _recover(self, assigned: list[Any]) -> int:
        """Rewind each assigned partition to its committed offset and remember what this algo
        wrote for the inputs after it. The rewind matters: kafka-python keeps the position of
        a partition a replica keeps across a rebalance, but the runs it had open were dropped
        on revocation, and another replica may have moved the partition on meanwhile."""
        from algorail.runtime import kafka_io

        if not assigned:
            return 0
        committed = {}
        for tp in assigned:
            offset = self.consumer.committed(tp)
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
            committed[tp] = offset if offset is not None else 0
        stamps = kafka_io.first_timestamps(self.bootstrap_servers, committed)
        if not stamps:
            return 0
        since = min(stamps.values()) - RECOVERY_MARGIN_MS
        topics = [*self.spec.outputs.values(), self.spec.error_topic]
        prefix = f"{self.spec.component}."
        count = 0
        for record in kafka_io.records_since(self.bootstrap_servers, topics, since):
            headers = kafka_io.header_dict(record.headers)
            origin = headers.get(ORIGIN)
            if origin is None or not headers.get(messages.SOURCE, "").startswith(prefix):
                continue
            self.dedup.add(self.dedup.key(headers.get(messages.RUN_ID, ""), origin))
            count += 1
        return count

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is not None:
                lag = max(hw - self.consumer.position(tp), 0)
                self.metrics.lag.labels(self.spec.component, tp.topic, tp.partition).set(lag)

    def _call_startup(self) -> None:
        from algorail import plugin_manager
        from algorail.extensions import StartupContext

        call_startup = getattr(plugin_manager, "call_startup", None)
        if call_startup is not None:
            call_startup(StartupContext(service="runner", plan=self.plan,
                                        metrics=self.metrics.registry))


def transactional_id(spec: RunnerPlan) -> str:
    """Stable per replica (its host name, e.g. a StatefulSet pod), so a restarted replica
    fences its previous incarnation; ALGORAIL_TRANSACTIONAL_ID overrides it."""
    import os
    import socket

    return os.environ.get("ALGORAIL_TRANSACTIONAL_ID") or (
        f"{spec.consumer_group}.{socket.gethostname()}")


def run_runner(plan: Plan, component: str, bootstrap_servers: str, *,
               metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
               transactional: bool = False) -> None:
    """Run one runner in this process until SIGTERM/SIGINT (what `algorail runner` does)."""
    from algorail.runtime.signals import stop_on_signals

    runner = Runner(plan, component, bootstrap_servers, metrics_port=metrics_port,
                    metrics_host=metrics_host, transactional=transactional)
    import gc

    gc.freeze()  # what is loaded by now lives as long as the process: stop scanning it
    gc.set_threshold(50_000, 20, 20)  # per-message garbage is acyclic; collect rarely

    stop_on_signals(runner.stop)
    runner.run()
