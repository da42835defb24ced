"""Kafka clients with algorail's settings, topic creation, and the recovery scan.

Only this module talks to kafka-python directly (besides the run loop's poll/send),
so broker quirks are handled once. Tansu, the embedded broker, reports end offsets
unreliably (ListOffsets), so "read to the end" here uses the high watermark from fetch
responses instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from algorail.errors import AlgorailError

log = logging.getLogger("algorail.kafka")

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_records": 500,
    # Tansu (the embedded broker) does not answer a waiting fetch when data arrives, so a
    # long fetch wait is added latency on every hop (p50 ~130 ms at Kafka's 500 ms
    # default); on Kafka a short wait only costs idle fetch requests.
    "fetch_max_wait_ms": 10,
}
PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger_ms": 1}


class KafkaUnavailable(AlgorailError):
    """The broker cannot be reached."""


def _unavailable(bootstrap_servers: str, exc: Exception) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot reach Kafka at {bootstrap_servers} ({type(exc).__name__}); start a broker "
        "or pass the right --bootstrap-servers (env ALGORAIL_BOOTSTRAP_SERVERS)"
    )


def make_consumer(bootstrap_servers: str, group_id: str | None = None, **overrides: Any):
    from kafka import KafkaConsumer
    from kafka.errors import KafkaTimeoutError

    try:
        return KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id,
                             **{**CONSUMER_DEFAULTS, **overrides})
    except KafkaTimeoutError as exc:
        raise _unavailable(bootstrap_servers, exc) from None


def close_consumer(consumer: Any, autocommit: bool = False) -> None:
    """Close `consumer` from the thread that polls it, with its network thread stopped first.

    kafka-python 3 drives each consumer's sockets from its own IO thread, and its
    ``close()`` closes the connections from the calling thread *before* it stops that IO
    thread (``KafkaNetClient.close``: ``manager.close()`` then ``net.close()``, as of
    3.0.12). A close that lands while the IO thread reads a socket logs a traceback
    (``'NoneType' object has no attribute 'recv'``, or "Error closing coroutine for
    cancelled task ... generator already executing"). With the IO thread stopped, the
    leave-group and the closing run on this thread's loop alone. A client without that
    thread (kafka-python 2) is closed as it is.
    """
    net = getattr(consumer, "_net", None)
    if net is not None and hasattr(net, "stop"):
        net.stop()
    consumer.close(autocommit=autocommit)


def make_producer(bootstrap_servers: str, **overrides: Any):
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    options = {"partitioner": _single_partition_shortcut(), **PRODUCER_DEFAULTS, **overrides}
    try:
        return KafkaProducer(bootstrap_servers=bootstrap_servers, **options)
    except KafkaTimeoutError as exc:
        raise _unavailable(bootstrap_servers, exc) from None


def _single_partition_shortcut() -> Any:
    """kafka-python's default partitioner (murmur2 of the key, so a run's messages share a
    partition number across topics), minus the pure-Python hash when there is only one."""
    from kafka.partitioner import DefaultPartitioner

    class Partitioner(DefaultPartitioner):
        def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
            partitions = cluster.partitions_for_topic(topic)
            if partitions is not None and len(partitions) == 1:
                return next(iter(partitions))
            return super().partition(topic, key, serialized_key, value, serialized_value,
                                     cluster)

    return Partitioner()


def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    except KafkaTimeoutError as exc:
        raise _unavailable(bootstrap_servers, exc) from None
    created = []
    try:
        existing = set(admin.list_topics())
        for name in dict.fromkeys(names):
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


def partitions_of(consumer: Any, topics: Iterable[str]) -> list[Any]:
    from kafka import TopicPartition

    tps = []
    for topic in topics:
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            tps.append(TopicPartition(topic, p))
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
    from kafka import TopicPartition

    return TopicPartition(record.topic, record.partition)


def header_dict(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or []}
