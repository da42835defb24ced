"""Runs one data source or data sink of a plan in Python (dev mode), against Kafka.

A connector offers this with `Connector.open_dev(plan)` returning a `SinkWriter` or a
`SourceReader`; without one, the connector needs Kafka Connect.

A sink commits in these steps, so a crash or an outage loses nothing:
1. Poll records from the sink's input topics; apply each input's ``fields``/``map``.
   Skip markers and records whose fields are all absent need no write.
2. When ``flush_size`` records wait or ``flush_interval_ms`` passed, write them. A
   `ConnectorUnavailable` is retried with backoff while the partitions are paused, so the
   consumer stays in its group and nothing is read past the unwritten records (the sink
   is a processor on the delivery loop, `algorail.runtime.delivery`).
3. Records the target rejects for good go to the dead-letter topic, with the reason.
   Each run's outcome (`WRITTEN`, `REJECTED` with the reason, `SKIPPED`) goes to the
   sink's report topic; the hook dispatcher records it as hooks' outcomes are recorded (a
   rejection is the run's error), so a sync call waits for the write.
4. The loop commits the offsets only after steps 2 and 3 succeeded (reports acknowledged).

A source produces what its reader returns with Envelope headers, waits for the broker to
acknowledge (acks=all), and only then acks the reader (deletes SQS messages, commits the
external consumer). Where it reads from is stored as the ``algorail-source-offset``
header of each record, so a restarted source resumes after the last record it produced.

Kafka clients are imported inside functions: this module also holds the types that
connector plugins import.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from algorail.backoff import Backoff
from algorail.errors import AlgorailError
from algorail.runtime import codec, kafka_io, tracing
from algorail.runtime.codec import ERROR, Envelope, new_run_id
from algorail.runtime.convention import select_fields
from algorail.runtime.delivery import DeliveryLoop, Processor

log = logging.getLogger("algorail.connect")

OFFSET_HEADER = "algorail-source-offset"
WRITTEN, REJECTED, SKIPPED = "written", "rejected", "skipped"  # a sink's outcome for a run


class ConnectorConfigError(AlgorailError):
    """A connector config that cannot work: wrong keys, missing table, unreachable URL."""


class ConnectorUnavailable(Exception):
    """The target is unreachable or busy for now: the same write may succeed later."""


@dataclass
class SinkRecord:
    topic: str
    partition: int
    offset: int
    input: str
    value: Any
    envelope: Envelope
    key: bytes | None = None


@dataclass
class SourceRecord:
    value: Any  # bytes, str, or anything JSON-serialisable
    key: bytes | str | None = None
    offset: str | None = None  # where to resume after this record
    port: str | None = None  # output port; the source's first by default
    run_id: str | None = None
    headers: dict[str, str] | None = None
    token: Any = None  # what `SourceReader.ack` needs, e.g. an SQS receipt handle


class SinkWriter:
    """Writes records durably. Raise `ConnectorUnavailable` for a failure worth retrying;
    any other exception rejects the records (each is then tried alone)."""

    flush_size: int = 500
    flush_interval_ms: int = 200

    def check(self) -> None:
        """Connect and check the target (table, bucket, key) before anything is consumed."""

    def write(self, records: list[SinkRecord]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class SourceReader:
    """Reads new records from an external system."""

    poll_interval_ms: int = 1000

    def check(self) -> None:
        """Connect and check the source before anything is produced."""

    def resume_from(self, offset: str | None) -> None:
        """Called once before polling with the offset of the last record produced."""

    def poll(self) -> list[SourceRecord]:
        """New records, or [] when there are none yet."""
        raise NotImplementedError

    def ack(self, records: list[SourceRecord]) -> None:
        """The records are stored in Kafka: forget them at the source."""

    def close(self) -> None:
        """Release connections."""


def config_problems(connector: Any, config: dict[str, Any]) -> list[str]:
    check = getattr(connector, "config_problems", None)
    if check is not None:
        return check(config)
    from algorail.extensions import schema_problems

    return schema_problems(connector.config_schema, config, "config")


def find_connector(plan: Any, component: str) -> Any:
    for cp in plan.connectors:
        if cp.name == component:
            return cp
    known = ", ".join(c.name for c in plan.connectors) or "none"
    raise AlgorailError(
        f"no data source or sink named {component!r} in this plan (connectors: {known})"
    )


def open_connector(plan: Any, component: str, registry: Any = None) -> tuple[Any, Any, Any]:
    """(connector plan, connector plugin, dev implementation or None), config checked."""
    if registry is None:
        from algorail.plugin_manager import get_registry

        registry = get_registry()
    cp = find_connector(plan, component)
    connector = registry.connectors.get(cp.connector)
    if connector is None:
        names = ", ".join(sorted(registry.connectors)) or "none"
        raise ConnectorConfigError(
            f"{cp.kind} {cp.name!r}: no connector named {cp.connector!r} is installed "
            f"(installed: {names}); see `algorail plugins`"
        )
    problems = config_problems(connector, cp.config)
    if problems:
        raise ConnectorConfigError(f"{cp.kind} {cp.name!r}: " + "; ".join(problems))
    return cp, connector, connector.open_dev(cp)


def run_connector(plan: Any, component: str, bootstrap_servers: str,
                  stop: threading.Event | None = None, registry: Any = None) -> bool:
    """Check the config and the target, then move data until `stop` is set.

    Returns False, after logging one line, when the connector needs Kafka Connect."""
    cp, connector, impl = open_connector(plan, component, registry)
    if impl is None:
        log.warning(
            "%s %r uses connector %r (%s), which needs Kafka Connect; apply it with "
            "`algorail connectors apply`", cp.kind, cp.name, cp.connector,
            connector.connector_class,
        )
        return False
    stop = stop or threading.Event()
    try:
        impl.check()
        loop_class = Sink if cp.kind == "sink" else SourceLoop
        loop_class(plan, cp, impl, bootstrap_servers).run(stop)
    finally:
        impl.close()
    return True


class Sink(Processor):
    """A sink's inputs on a delivery loop, written through a `SinkWriter` (steps 1-4
    above). While the target is unavailable the loop pauses reading (the in-flight work
    is full) and the write is tried again from a tick, so the consumer stays in its group."""

    def __init__(self, plan: Any, cp: Any, writer: SinkWriter, bootstrap_servers: str,
                 backoff: Backoff | None = None):
        self.plan = plan
        self.cp = cp
        self.writer = writer
        self.bootstrap_servers = bootstrap_servers
        self.backoff = backoff or Backoff()
        self.inputs: dict[str, list[Any]] = {}
        for inp in cp.inputs:
            self.inputs.setdefault(inp.topic, []).append(inp)
        self.max_in_flight = max(1, writer.flush_size)
        self.pending: list[SinkRecord] = []
        self.open: list[Any] = []  # the records whose rows are pending
        self.started = 0.0
        self.retry_at: float | None = None  # the target is unavailable: next try then
        self._waits = self.backoff.delays()
        self.written = 0
        self.dead_lettered = 0

    def run(self, stop: threading.Event) -> None:
        DeliveryLoop(self, self.bootstrap_servers, self.cp.consumer_group, sorted(self.inputs),
                     stopping=stop, client_id=self.cp.id).run()

    def assigned(self, tps: list[Any]) -> None:
        log.info("sink %r ready: consuming %s", self.cp.name, ", ".join(self.inputs))

    def revoked(self, tps: list[Any]) -> None:
        self.pending, self.open = [], []

    def in_flight(self) -> int:
        return self.max_in_flight if self.retry_at is not None else len(self.open)

    def process(self, message: Any) -> None:
        records = self._records(message)
        if not records:
            self.loop.done(message)
            return
        if not self.open:
            self.started = time.monotonic()
        self.pending.extend(records)
        self.open.append(message)
        if len(self.pending) >= self.writer.flush_size:
            self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if not self.open or (self.retry_at is not None and now < self.retry_at):
            return
        due = (now - self.started) * 1000 >= self.writer.flush_interval_ms
        if not (due or len(self.pending) >= self.writer.flush_size or self.retry_at):
            return
        try:
            self._write(self.pending)
        except ConnectorUnavailable as exc:
            if self.retry_at is None:
                log.warning("sink %r: target unavailable (%s); retrying with backoff",
                            self.cp.name, exc)
            self.retry_at = now + next(self._waits)
            return
        if self.retry_at is not None:
            log.warning("sink %r: target is back; %d records written", self.cp.name,
                        len(self.pending))
            self.retry_at, self._waits = None, self.backoff.delays()
        for message in self.open:
            self.loop.done(message)
        self.pending, self.open = [], []

    def _records(self, message: Any) -> list[SinkRecord]:
        envelope = Envelope.from_headers(message.headers)
        if envelope.skip:
            self._report(envelope, SKIPPED)
            return []
        records = []
        for inp in self.inputs[message.topic]:
            try:
                value = codec.decode(message.value, inp.content_type)
            except codec.CodecError as exc:
                self._reject(message.value, envelope, str(exc))
                return []
            value, skipped = select_fields(value, inp.fields, inp.map)
            if not skipped:
                records.append(SinkRecord(message.topic, message.partition, message.offset,
                                          inp.name, value, envelope, message.key))
        if not records:
            self._report(envelope, SKIPPED)
        return records

    def _write(self, records: list[SinkRecord]) -> None:
        if not records:
            return
        try:
            with tracing.spans("connector write", records, pipeline=self.plan.pipeline,
                               component=self.cp.name):
                self.writer.write(records)
            self.written += len(records)
            for record in records:
                self._report(record.envelope, WRITTEN)
        except ConnectorUnavailable:
            raise
        except Exception as exc:
            if len(records) > 1:
                for record in records:
                    self._write([record])
                return
            record = records[0]
            log.warning("sink %r: %s[%d] offset %d rejected: %s", self.cp.name, record.topic,
                        record.partition, record.offset, exc)
            self._reject(codec.encode(record.value, record.envelope.content_type), record.envelope,
                         str(exc))

    def _reject(self, value: bytes | None, envelope: Envelope, reason: str) -> None:
        """Step 3: the record to the dead-letter topic, and its run failed (reported)."""
        self._report(envelope, REJECTED, reason)
        envelope.extra[ERROR] = reason[:1000]
        self.loop.send(self.cp.dead_letter_topic, value or b"", None, envelope.to_headers())
        self.dead_lettered += 1

    def _report(self, envelope: Envelope, state: str, error: str | None = None) -> None:
        """The run's outcome at this sink, on its report topic (plans made before sinks
        reported have none)."""
        if self.cp.report_topic is None:
            return
        report = {"runId": envelope.run_id, "component": self.cp.name, "state": state}
        if error is not None:
            report.update(error=error, source=envelope.source,
                          deadLetterTopic=self.cp.dead_letter_topic)
        headers = Envelope(envelope.run_id, envelope.deployment, self.cp.report_source,
                           "application/json", envelope.traceparent).to_headers()
        self.loop.send(self.cp.report_topic, json.dumps(report).encode(),
                       envelope.run_id.encode(), headers)


class SourceLoop:
    """Produces what a `SourceReader` returns to the source's output topics."""

    def __init__(self, plan: Any, cp: Any, reader: SourceReader, bootstrap_servers: str,
                 backoff: Backoff | None = None):
        self.plan = plan
        self.cp = cp
        self.reader = reader
        self.bootstrap_servers = bootstrap_servers
        self.backoff = backoff or Backoff()
        self.default_port = next(iter(cp.outputs))
        types = {t.name: t.content_type for t in plan.topics}
        self.content_types = {port: types.get(t, "application/json")
                              for port, t in cp.outputs.items()}
        self.produced = 0

    def run(self, stop: threading.Event) -> None:
        self.reader.resume_from(last_source_offset(self.bootstrap_servers,
                                                   list(self.cp.outputs.values())))
        producer = kafka_io.make_producer(self.bootstrap_servers)
        log.info("source %r ready: producing to %s", self.cp.name,
                 ", ".join(self.cp.outputs.values()))
        try:
            self._loop(producer, stop)
        finally:
            producer.close(timeout=5)

    def _loop(self, producer: Any, stop: threading.Event) -> None:
        delays = None
        while not stop.is_set():
            try:
                records = self.reader.poll()
            except ConnectorUnavailable as exc:
                if delays is None:
                    log.warning("source %r: unavailable (%s); retrying", self.cp.name, exc)
                    delays = self.backoff.delays()
                stop.wait(next(delays))
                continue
            if delays is not None:
                log.warning("source %r: available again", self.cp.name)
                delays = None
            if not records:
                stop.wait(self.reader.poll_interval_ms / 1000)
                continue
            for record in records:
                self._send(producer, record)
            producer.flush()
            self.reader.ack(records)
            self.produced += len(records)

    def _send(self, producer: Any, record: SourceRecord) -> None:
        port = record.port or self.default_port
        extra = dict(record.headers or {})
        if record.offset is not None:
            extra[OFFSET_HEADER] = record.offset
        envelope = Envelope(
            run_id=record.run_id or new_run_id(),
            deployment=self.plan.deployment,
            source=self.cp.output_sources[port],
            content_type=self.content_types[port],
            extra=extra,
        )
        key = record.key.encode("utf-8") if isinstance(record.key, str) else record.key
        value = codec.encode(record.value, envelope.content_type)
        producer.send(self.cp.outputs[port], value=value, key=key, headers=envelope.to_headers())


def last_source_offset(bootstrap_servers: str, topics: list[str],
                       timeout_s: float = 5.0) -> str | None:
    """The ``algorail-source-offset`` header of the newest record on `topics`, if any."""
    consumer = kafka_io.make_consumer(bootstrap_servers)
    try:
        partitions = kafka_io.partitions_of(consumer, topics)
        if not partitions:
            return None
        ends = {tp: end for tp, end in consumer.end_offsets(partitions).items() if end > 0}
        if not ends:
            return None
        consumer.assign(list(ends))
        for tp, end in ends.items():
            consumer.seek(tp, end - 1)
        newest: tuple[int, str | None] = (-1, None)
        seen: set[Any] = set()
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(ends) and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=200).items():
                seen.add(tp)
                for m in messages:
                    offset = dict(m.headers or []).get(OFFSET_HEADER)
                    if offset is not None and m.timestamp >= newest[0]:
                        newest = (m.timestamp, offset.decode("utf-8"))
        return newest[1]
    finally:
        kafka_io.close_consumer(consumer)
