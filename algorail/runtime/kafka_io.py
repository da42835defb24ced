"""Kafka clients with algorail's settings, topic creation, and the recovery scan.

Only this module and its two backends name a Kafka client library, so broker quirks are
handled once. ``ALGORAIL_KAFKA_CLIENT`` selects the backend: ``confluent`` (the default:
confluent-kafka, on librdkafka; `kafka_confluent`) or ``kafka-python`` (`kafka_python`).
The rest of the code base uses the client surface below (kafka-python's, restricted),
which both backends provide:

- consumer: ``subscribe(topics=[...], listener=RebalanceListener)``, ``assign``,
  ``assignment``, ``poll(timeout_ms=, max_records=) -> {TopicPartition: [record]}``
  (a record has ``topic partition offset key value headers timestamp``; headers are
  ``[(str, bytes)]``), ``pause``, ``resume``, ``paused``, ``seek``, ``seek_to_end``,
  ``seek_to_beginning``, ``position``, ``highwater``, ``committed``, ``end_offsets``,
  ``offsets_for_times`` (``{tp: hit with .offset, or None}``), ``partitions_for_topic``;
  committed with `commit` and closed with `close_consumer` below;
- producer: ``send(topic, value=, key=, headers=, timestamp_ms=) -> future``
  (``add_callback``, ``add_errback``, ``get(timeout)``; None from a producer made with
  ``on_error``, which reports failed sends only, to that callback), ``partitions_for``, ``flush``,
  ``close``, and for transactions ``init_transactions``, ``begin_transaction``,
  ``commit_transaction``, ``abort_transaction``, committed with `commit_transaction`
  below;
- admin (`make_admin`): ``create_topics``, ``group_offsets``, ``group_members``,
  ``close``.

Settings are passed with kafka-python's names (``client_id``, ``linger_ms``,
``transactional_id``, ``fetch_max_wait_ms``, ...); the confluent backend translates
them. Topic partitions are `TopicPartition` values; a rebalance listener subclasses
`rebalance_listener_base()`. Its ``on_partitions_revoked`` is called inside ``poll()``
(or the consumer's close) before the partitions move on, while the polling thread waits
there, so it may flush a producer and commit the revoked partitions (on kafka-python 3 it
runs on a thread of its own for that, `kafka_python.RevokedOffTheIOThread`);
``on_partitions_assigned`` may run on a client thread and must only take note.

Tansu, the embedded broker, reports end offsets unreliably (ListOffsets), so "read to
the end" here uses the high watermark from fetch responses instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from algorail.errors import AlgorailError
from algorail.runtime.broker import EMBEDDED_PRODUCER_SETTINGS, is_embedded

log = logging.getLogger("algorail.kafka")

CLIENT_ENV = "ALGORAIL_KAFKA_CLIENT"
CLIENTS = ("confluent", "kafka-python")


class KafkaUnavailable(AlgorailError):
    """The broker cannot be reached."""


class PartitionsMoved(AlgorailError):
    """A commit was refused because the group rebalanced: the partitions' new owner
    re-reads what was not committed."""


class CommitError(AlgorailError):
    """The broker did not take a commit for another reason."""


def unavailable(bootstrap_servers: str, exc: Exception) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__}); start a broker "
        "or pass the right --bootstrap-servers (env ALGORAIL_BOOTSTRAP_SERVERS)"
    )


def client_name() -> str:
    """The selected backend: ``ALGORAIL_KAFKA_CLIENT``, ``confluent`` by default."""
    name = os.environ.get(CLIENT_ENV, "").strip().lower() or CLIENTS[0]
    if name not in CLIENTS:
        raise AlgorailError(f"{CLIENT_ENV}={name!r} is not a Kafka client algorail has: "
                            f"use one of {', '.join(CLIENTS)}")
    return name


def backend() -> ModuleType:
    if client_name() == "confluent":
        from algorail.runtime import kafka_confluent

        return kafka_confluent
    from algorail.runtime import kafka_python

    return kafka_python


def backend_of(client: Any) -> ModuleType:
    """The backend that made `client`: a client keeps its library for its whole life, even
    if ``ALGORAIL_KAFKA_CLIENT`` changes meanwhile (tests switch it between deployments)."""
    if type(client).__module__ == "algorail.runtime.kafka_confluent":
        from algorail.runtime import kafka_confluent

        return kafka_confluent
    from algorail.runtime import kafka_python

    return kafka_python


def make_consumer(bootstrap_servers: str, group_id: str | None = None, **overrides: Any):
    return backend().make_consumer(bootstrap_servers, group_id, **overrides)


def make_producer(bootstrap_servers: str, on_error: Callable[[BaseException], Any] | None = None,
                  **overrides: Any):
    """A producer on the selected client; against the embedded broker, with the batching it
    needs (`broker.EMBEDDED_PRODUCER_SETTINGS`) unless `overrides` say otherwise.

    With `on_error`, for sends nobody waits on: ``send`` returns None and a failed send
    calls ``on_error(exc)`` (on a client thread); a producer's flush returns once every
    report is served, so a failure is known by then."""
    if is_embedded(bootstrap_servers):
        overrides = {**EMBEDDED_PRODUCER_SETTINGS, **overrides}
    return backend().make_producer(bootstrap_servers, on_error, **overrides)


def make_admin(bootstrap_servers: str):
    return backend().Admin(bootstrap_servers)


def close_consumer(consumer: Any, autocommit: bool = False) -> None:
    """Close `consumer` from the thread that polls it (leaving its group)."""
    backend_of(consumer).close_consumer(consumer, autocommit=autocommit)


def TopicPartition(topic: str, partition: int) -> Any:  # noqa: N802 - a type's constructor
    """The topic-partition value every client backend takes and returns."""
    return backend().TopicPartition(topic, partition)


def rebalance_listener_base() -> type:
    """The base class of rebalance listeners (`subscribe(..., listener=...)`)."""
    return backend().RebalanceListener


def commit(consumer: Any, offsets: dict[Any, int] | None = None) -> None:
    """Commit the next offset to read of each partition (by default the consumer's
    positions in its assignment); raises `PartitionsMoved` or `CommitError`."""
    if offsets is None:
        offsets = {tp: consumer.position(tp) for tp in consumer.assignment()}
    if offsets:
        backend_of(consumer).commit(consumer, offsets)


def commit_transaction(producer: Any, consumer: Any, offsets: dict[Any, int]) -> None:
    """Commit the producer's open transaction with the consumer's next `offsets` in it,
    and begin the next one; raises `CommitError`."""
    backend_of(consumer).commit_transaction(producer, consumer, offsets)


def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = make_admin(bootstrap_servers)
    try:
        return admin.create_topics(names, partitions)
    finally:
        admin.close()


def partitions_of(consumer: Any, topics: Iterable[str]) -> list[Any]:
    tps = []
    for topic in topics:
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            tps.append(backend_of(consumer).TopicPartition(topic, p))
    return tps


def read_to_end(consumer: Any, tps: list[Any], timeout: float) -> Iterator[Any]:
    """Yield the records of assigned `tps` from their positions up to the high watermark."""
    deadline = time.monotonic() + timeout
    remaining = set(tps)
    while remaining and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=2000).values():
            yield from records
        for tp in list(remaining):
            hw = consumer.highwater(tp)
            if hw is not None and consumer.position(tp) >= hw:
                remaining.discard(tp)
    if remaining:
        log.warning("recovery scan stopped after %.0fs with %d partitions unread",
                    timeout, len(remaining))


def first_timestamps(bootstrap_servers: str, offsets: dict[Any, int],
                     timeout: float = 10.0) -> dict[Any, int]:
    """Timestamp (ms) of the record at each given offset, for those that exist."""
    if not offsets:
        return {}
    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False)
    try:
        consumer.assign(list(offsets))
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        found: dict[Any, int] = {}
        pending = set(offsets)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=500).values():
                tp = _tp(records[0])
                if tp in pending:
                    found[tp] = records[0].timestamp
                    pending.discard(tp)
                    consumer.pause(tp)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None and consumer.position(tp) >= hw:
                    pending.discard(tp)
        return found
    finally:
        close_consumer(consumer)


def records_since(bootstrap_servers: str, topics: Iterable[str], since_ms: int,
                  timeout: float = 30.0) -> Iterator[Any]:
    """Every record of `topics` written at or after `since_ms` (producer timestamps)."""
    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False)
    try:
        tps = partitions_of(consumer, topics)
        if not tps:
            return
        consumer.assign(tps)
        found = consumer.offsets_for_times({tp: since_ms for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            if hit is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, hit.offset)
        yield from read_to_end(consumer, tps, timeout)
    finally:
        close_consumer(consumer)


def _tp(record: Any) -> Any:
    return backend_of(record).TopicPartition(record.topic, record.partition)
