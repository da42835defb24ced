"""The runner: one algo of a plan on Kafka.

The runner is a processor on the delivery loop (`algorail.runtime.delivery`), which
polls, checkpoints and handles rebalances. Processing turns records into join arrivals,
join decisions into algo calls, and results into output messages, skip markers or error
reports. A call that fails with a retried kind of failure goes to the algo's next retry
topic (`RunnerPlan.retry_topics`, one per backoff wait), which the runner also reads: a
retry's partition is held until the record is due, so waiting blocks nothing else. After
``retry.attempts`` retries, or at once for a failure not retried, the run goes to the
pipeline's error topic (JSON ``{runId, component, error, source, topic, partition,
offset}``) and its inputs to the algo's dead-letter topic; the runner goes on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from algorail.errors import AlgorailError
from algorail.extensions import failure_kind
from algorail.plan import Plan, RunnerPlan
from algorail.runtime import codec, convention, tracing
from algorail.runtime.dedup import ORIGIN, Deduplicator, origin_of
from algorail.runtime.delivery import DeliveryLoop, Processor
from algorail.runtime.join import Arrival, Batcher, BatchItem, Decision, JoinEngine
from algorail.runtime.metrics import MetricsServer, RunnerMetrics
from algorail.runtime.revisits import Revisits

log = logging.getLogger("algorail.runner")

ATTEMPT = "algorail-attempt"  # on a retry topic: the retry this record is
RETRY = "retry"  # the slot of a retried run's single arrival
LAG_SECONDS = 2.0
STALL_SECONDS = 60.0  # /healthz fails when the loop has not turned for this long
RECOVERY_MARGIN_MS = 30_000  # clock skew allowed between an input's and our timestamps


class RunnerError(AlgorailError):
    pass


class AlgoError(Exception):
    """An algo call failed; `retryable` when its kind of failure is retried."""

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(slots=True)
class Position:
    """Where an arrival came from, with its record (for the dead-letter topic) and
    envelope (for the run's outputs); a retried run's also names the inputs it first came
    from (`origin`) and how many calls failed (`attempt`)."""

    tp: Any
    offset: int
    record: Any
    env: codec.Envelope
    origin: str | None = None
    attempt: int = 0


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


class Runner(Processor):
    """One algo as a processor on a `DeliveryLoop` reading its inputs and retry topics."""

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
        self.retry_delays = {t.name: t.delay_ms / 1000 for t in self.spec.retry_topics}
        self.engine = JoinEngine(self.input_names, [t.name for t in self.spec.triggers],
                                 self.spec.join, self.spec.triggers_join)
        self.batcher = Batcher(self.spec.batch) if self.spec.batch else None
        self.dedup = Deduplicator(per_run=not self.engine.passthrough)
        self.revisits = Revisits.of(plan, component)
        self.cyclic = plan.allow_cycles  # visits are counted only in a pipeline with cycles
        self.traced = tracing.enabled()  # decided once per process
        self.ready = threading.Event()
        self.loop: DeliveryLoop | None = None
        self._stop_requested = False
        self.next_lag = 0.0
        # what each message needs, looked up once: per input topic its subscriptions
        # (with their counter, and whether fields are selected), per output port its own
        messages_in, messages_out = self.metrics.messages_in, self.metrics.messages_out
        self._reads = {topic: [(s, messages_in.labels(component, s.name),
                                s.fields is not None or bool(s.map)) for s in subs]
                       for topic, subs in self.slots.items()}
        self._writes = [(port, topic, self.spec.output_content_types[port],
                         self.spec.output_sources[port],
                         messages_out.labels(component, port, "data"),
                         messages_out.labels(component, port, "skip"))
                        for port, topic in self.spec.outputs.items()]
        self._algo_seconds = self.metrics.algo_seconds.labels(component)
        self._counts: dict[Any, int] = {}
        self._tps: dict[tuple[str, int], Any] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Runner:
        if self.algo is None:
            self.algo = open_algo(self.spec)
        self.loop = DeliveryLoop(
            self, self.bootstrap_servers, self.spec.consumer_group,
            [*self.slots, *self.retry_delays], client_id=self.spec.id,
            transactional_id=transactional_id(self.spec) if self.transactional else None)
        if self._stop_requested:
            self.loop.stop()
        if self.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, self.healthy, self.metrics_host,
                                                self.metrics_port).start()
            log.info("%s: metrics on http://%s:%d/metrics", self.spec.component,
                     self.metrics_host, self.metrics_server.port)
        self._call_startup()
        return self

    def run(self, max_seconds: float | None = None) -> None:
        """Turn the delivery loop until `stop()` (or `max_seconds`)."""
        if self.loop is None:
            self.start()
        try:
            self.loop.run(max_seconds)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop_requested = True
        if self.loop is not None:
            self.loop.stop()

    def close(self) -> None:
        self._flush_counts()
        for closer in (getattr(self.algo, "close", None),
                       self.metrics_server and self.metrics_server.stop):
            if closer:
                closer()
        self.metrics_server = None
        log.info("%s: stopped", self.spec.component)

    def healthy(self) -> bool:
        return self.loop is None or self.loop.healthy(STALL_SECONDS)

    # -- processing ------------------------------------------------------------------------

    def process(self, record: Any) -> None:
        topic = record.topic
        if topic in self.retry_delays:
            self._process_retry(record)
            return
        tp = self._partition(topic, record.partition)
        env = codec.Envelope.from_headers(record.headers, new_run_id=False)
        if not env.run_id:  # stable across re-reads
            env.run_id = f"{topic}:{record.partition}:{record.offset}"
        position = Position(tp, record.offset, record, env)
        if self.cyclic:
            if self.revisits.ends_here(env):
                self.loop.resolve(tp, record.offset)
                return
            revisit_error = self.revisits.exceeded(env)
            if revisit_error:
                slot = self.slots[topic][0].name
                self._report(Decision(env.run_id, "run", [Arrival(slot, None, False,
                                                                   position)]),
                             revisit_error)
                return
        arrivals = []
        counts = self._counts
        for sub, counter, selects in self._reads.get(topic, ()):
            counts[counter] = counts.get(counter, 0) + 1  # see `_flush_counts`
            if env.skip:
                arrivals.append(Arrival(sub.name, None, True, position))
                continue
            try:
                value = self._decode(record.value, env.content_type or sub.content_type)
            except (ValueError, AlgorailError) as exc:
                self._report(Decision(env.run_id, "run", [Arrival(sub.name, None, False,
                                                                   position)]),
                             f"cannot read the message on {topic}: {exc}")
                return
            skipped = False
            if selects:
                value, skipped = convention.select_fields(value, sub.fields, sub.map)
            arrivals.append(Arrival(sub.name, value, skipped, position))
        run_key = self.revisits.key(env) if self.cyclic else env.run_id
        for decision in self.engine.offer(run_key, arrivals):
            self.handle(decision)

    def _process_retry(self, record: Any) -> None:
        """A run waiting on a retry topic: held until due, then called again with the
        payload it was called with (joined, fields selected)."""
        wait = record.timestamp / 1000 + self.retry_delays[record.topic] - time.time()
        if wait > 0:
            self.loop.hold(record, wait)
            return
        env = codec.Envelope.from_headers(record.headers)
        position = Position(self._partition(record.topic, record.partition), record.offset,
                            record, env, env.extra.get(ORIGIN), int(env.extra.get(ATTEMPT, 1)))
        run_key = self.revisits.key(env) if self.cyclic else env.run_id
        decision = Decision(run_key, "run", [Arrival(RETRY, None, False, position)])
        try:
            payload = codec.decode(record.value, env.content_type)
        except codec.CodecError as exc:
            self._report(decision, f"cannot read the retry of run {env.run_id}: {exc}")
            return
        self._call_decision(decision, payload, self._origin(decision))

    def _partition(self, topic: str, partition: int) -> Any:
        """The loop's topic partition of a record, made once per partition."""
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[topic, partition] = self.loop.partition(topic, partition)
        return tp

    def _flush_counts(self) -> None:
        """Message counts reach their Prometheus counters here, on each tick: processing
        adds to `_counts` (a counter takes a lock per increment)."""
        counts, self._counts = self._counts, {}
        for counter, n in counts.items():
            counter.inc(n)

    def tick(self) -> None:
        """Close join windows and due batches; refresh the metrics now and then."""
        self._flush_counts()
        for decision in self.engine.expire():
            self.handle(decision)
        if self.batcher is not None:
            for batch in self.batcher.due():
                self._run_batch(batch)
        self.metrics.join_pending.labels(self.spec.component).set(len(self.engine.pending))
        now = time.monotonic()
        if now >= self.next_lag:
            self._update_lag()
            self.next_lag = now + LAG_SECONDS

    def handle(self, decision: Decision) -> None:
        if decision.kind == "late":
            self._resolve(decision)
            return
        origin = self._origin(decision)
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
        self._call_decision(decision, payload, origin)

    def _call_decision(self, decision: Decision, payload: Any, origin: str) -> None:
        if self.batcher is not None:
            for batch in self.batcher.add(decision, payload):
                self._run_batch(batch)
            return
        if not self.traced:
            self._call_and_emit(decision, payload, origin)
            return
        env = decision.arrivals[0].position.env
        with tracing.span("algo call", env.traceparent, run_id=decision.run_id,
                          pipeline=self.plan.pipeline, component=self.spec.component,
                          port=",".join(a.slot for a in decision.arrivals)):
            self._call_and_emit(decision, payload, origin)

    def _call_and_emit(self, decision: Decision, payload: Any, origin: str) -> None:
        try:
            outputs = convention.split_outputs(self.ports, self._call(payload))
        except AlgoError as exc:
            self._failed(decision, payload, exc, origin)
            return
        except convention.ConventionError as exc:
            self._report(decision, str(exc), origin)
            return
        self._emit(decision, outputs, origin)

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
        except AlgoError as exc:
            for item in items:
                self._failed(item.decision, item.payload, exc, self._origin(item.decision))
            return
        except convention.ConventionError as exc:
            for item in items:
                self._report(item.decision, str(exc))
            return
        for item, out in zip(items, outputs, strict=True):
            self._emit(item.decision, out)

    def _call(self, payload: Any) -> Any:
        """One call of the algo; a failure is an `AlgoError` that says if it is retried."""
        started = time.perf_counter()
        try:
            result = self.algo(payload)
        except Exception as exc:  # the algo's failure is the run's, not the runner's
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AlgoError(f"algo {self.spec.component!r} failed: {error}",
                            failure_kind(exc) in self.spec.retry.retry_on) from exc
        self._algo_seconds.observe(time.perf_counter() - started)
        return result

    def _failed(self, decision: Decision, payload: Any, exc: AlgoError, origin: str) -> None:
        """A failed call: to the next retry topic while attempts are left and the failure is
        worth retrying, else reported (error topic and dead letters) at once."""
        attempt = decision.arrivals[0].position.attempt
        if not exc.retryable or attempt >= self.spec.retry.attempts or not self.retry_delays:
            self._report(decision, str(exc), origin)
            return
        content_type = codec.JSON
        if isinstance(payload, (bytes, bytearray)):
            content_type = "application/octet-stream"
        try:
            value = codec.encode(payload, content_type)
        except (ValueError, TypeError, AlgorailError) as encode_error:
            self._report(decision, f"{exc} (not retried: {encode_error})", origin)
            return
        steps = self.spec.retry_topics
        step = steps[min(attempt + 1, len(steps)) - 1]
        first = decision.arrivals[0].position
        env = first.env
        extra = {k: v for k, v in env.extra.items() if k not in (ORIGIN, ATTEMPT)}
        headers = codec.Envelope(env.run_id, env.deployment, env.source, content_type,
                                 env.traceparent,
                                 extra={**extra, ORIGIN: origin, ATTEMPT: str(attempt + 1)}
                                 ).to_headers()
        self.loop.send(step.name, value, self._key(first), headers)
        self.metrics.retries.labels(self.spec.component).inc()
        log.warning("%s: run %s attempt %d failed (%s); retrying in %.2fs", self.spec.component,
                    env.run_id, attempt + 1, exc, step.delay_ms / 1000)
        self._resolve(decision)

    # -- output ----------------------------------------------------------------------------

    def _emit(self, decision: Decision, outputs: dict[str, Any], origin: str | None = None
              ) -> None:
        """Write each port's payload, or a skip marker for a port that produced nothing."""
        first = decision.arrivals[0].position
        env = first.env
        origin = origin or self._origin(decision)
        key = self._key(first)
        extra = {ORIGIN: origin}
        if self.cyclic:
            extra.update(self.revisits.headers(a.position.env for a in decision.arrivals))
        counts = self._counts
        for port, topic, content_type, source, data, skips in self._writes:
            produced = port in outputs
            headers = codec.Envelope(
                env.run_id, env.deployment, source, content_type,
                tracing.child_traceparent(env.traceparent), not produced, extra).to_headers()
            value = codec.encode(outputs[port], content_type) if produced else b""
            self.loop.send(topic, value, key, headers)
            counter = data if produced else skips
            counts[counter] = counts.get(counter, 0) + 1  # see `_flush_counts`
        self.dedup.add(self.dedup.key(decision.run_id, origin))
        self._resolve(decision)

    @staticmethod
    def _key(position: Position) -> bytes:
        """An output keeps its input's key, so one key's records keep their order on every
        hop; an input without one (the gateway's) is keyed by its run id, so the arrivals
        of a run meet on the same partition of every topic."""
        key = position.record.key
        return key if key is not None else position.env.run_id.encode()

    def _report(self, decision: Decision, error: str, origin: str | None = None) -> None:
        """The run failed: an error message for the run, its inputs to the dead letters."""
        component = self.spec.component
        self.metrics.errors.labels(component).inc()
        first = decision.arrivals[0].position
        env = first.env
        origin = origin or self._origin(decision)
        topic, partition, offset = first.tp.topic, first.tp.partition, first.offset
        if first.origin:  # a retry: name the input the run came from
            topic, partition, offset = first.origin.split(",")[0].rsplit(":", 2)
            partition, offset = int(partition), int(offset)
        body = {
            "runId": env.run_id, "component": component, "error": error,
            "source": env.source, "topic": topic, "partition": partition, "offset": offset,
        }
        tracing.record_error(error)
        log.warning("%s: run %s failed at %s[%d] %d: %s", component, env.run_id,
                    topic, partition, offset, error)
        headers = codec.Envelope(
            env.run_id, env.deployment, self.spec.error_source, codec.JSON,
            tracing.child_traceparent(env.traceparent), extra={ORIGIN: origin}).to_headers()
        self.loop.send(self.spec.error_topic, json.dumps(body).encode(), self._key(first),
                       headers)
        for position in {id(p): p for p in self._positions_full(decision)}.values():
            record = position.record
            dl_headers = [*(h for h in record.headers or [] if h[0] not in (ORIGIN, ATTEMPT)),
                          (codec.ERROR, error.encode()[:4000]), (ORIGIN, origin.encode())]
            self.loop.send(self.spec.dead_letter_topic, record.value, record.key, dl_headers)
            self.metrics.dead_letters.labels(component).inc()
        self.dedup.add(self.dedup.key(decision.run_id, origin))
        self._resolve(decision)

    def _resolve(self, decision: Decision) -> None:
        for a in decision.arrivals:
            self.loop.resolve(a.position.tp, a.position.offset)

    def _origin(self, decision: Decision) -> str:
        """The inputs a run came from; a retried run keeps its first inputs'."""
        arrivals = decision.arrivals
        first = arrivals[0].position
        if first.origin:
            return first.origin
        if len(arrivals) == 1:  # the usual case, without a list per message
            return origin_of(((first.tp, first.offset),))
        return origin_of([(a.position.tp, a.position.offset) for a in arrivals])

    @staticmethod
    def _positions_full(decision: Decision) -> list[Position]:
        return [a.position for a in decision.arrivals]

    def _decode(self, value: bytes | None, content_type: str) -> Any:
        if content_type == codec.FILE_REFERENCE:
            ref = codec.decode(value, content_type)
            if self.spec.file_input == "reference":
                return ref
            return self._object_store().get(ref)
        return codec.decode(value, content_type)

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

    def assigned(self, tps: list[Any]) -> None:
        started = time.monotonic()
        scanned = self._recover(tps)
        retries = sum(1 for tp in tps if tp.topic in self.retry_delays)
        log.info("%s: ready, %d input partition(s) assigned (and %d of retry topics), %d "
                 "earlier outputs remembered (%.1fs)", self.spec.component, len(tps) - retries,
                 retries, scanned, time.monotonic() - started)
        self.ready.set()

    def revoked(self, tps: list[Any]) -> None:
        """Forget open joins and batches: their inputs are read again (partitions are
        revoked whole, the eager protocol, so every open run goes)."""
        self.engine.clear()
        if self.batcher is not None:
            self.batcher.clear()

    def _recover(self, assigned: list[Any]) -> int:
        """Remember what this algo wrote for the inputs after the committed offsets (the
        loop has sought each assigned partition there)."""
        from algorail.runtime import kafka_io

        if not assigned:
            return 0
        committed = {tp: self.loop.consumer.position(tp) for tp in assigned}
        stamps = kafka_io.first_timestamps(self.bootstrap_servers, committed)
        if not stamps:
            return 0
        since = min(stamps.values()) - RECOVERY_MARGIN_MS
        topics = [*self.spec.outputs.values(), self.spec.error_topic]
        ours = {*self.spec.output_sources.values(), self.spec.error_source}
        count = 0
        for record in kafka_io.records_since(self.bootstrap_servers, topics, since):
            headers = codec.header_dict(record.headers)
            origin = headers.get(ORIGIN)
            if origin is None or headers.get(codec.SOURCE) not in ours:
                continue
            run_key = self.revisits.key_of_output(headers.get(codec.RUN_ID, ""), headers)
            self.dedup.add(self.dedup.key(run_key, origin))
            count += 1
        return count

    def _update_lag(self) -> None:
        consumer = self.loop.consumer
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            if hw is not None:
                lag = max(hw - consumer.position(tp), 0)
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
