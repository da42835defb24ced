"""The kafka-python backend of `kafka_io` (``ALGORAIL_KAFKA_CLIENT=kafka-python``).

kafka-python's own client already has the surface `kafka_io` describes: its producer is
returned as it is (or, made with ``on_error``, as an `ErrorReportingProducer`) and its
consumer with one change (`Consumer`), with algorail's defaults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    KafkaTimeoutError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
)
from kafka.future import Future
from kafka.partitioner import DefaultPartitioner
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as TopicPartition

from algorail.runtime.kafka_io import (
    CommitError,
    PartitionsMoved,
    unavailable,
)

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_records": 500,
    # Tansu (the embedded broker) reads a waiting fetch's partition again only after half
    # the wait left, so a long wait is added latency on every hop (p50 ~130 ms at Kafka's
    # 500 ms default); on Kafka a short wait only costs idle fetch requests. It must stay
    # longer than Tansu takes to list a partition (`broker.CONFLUENT_CONSUMER_SETTINGS`).
    "fetch_max_wait_ms": 10,
}
PRODUCER_DEFAULTS: dict[str, Any] = {"acks": "all", "linger_ms": 1}

try:
    from kafka import AsyncConsumerRebalanceListener
except ImportError:  # kafka-python 2 has no IO thread: listeners run on the polling thread
    AsyncConsumerRebalanceListener = ConsumerRebalanceListener

RebalanceListener = ConsumerRebalanceListener


class Consumer(KafkaConsumer):
    """kafka-python's consumer, whose rebalance listener may commit when it is told of a
    revocation (`RevokedOffTheIOThread`), as on the other backend."""

    def subscribe(self, topics=(), pattern=None, listener=None):
        net = getattr(self, "_net", None)  # kafka-python 3's IO loop
        if listener is not None and net is not None:
            listener = RevokedOffTheIOThread(listener, net)
        super().subscribe(topics=topics, pattern=pattern, listener=listener)


class RevokedOffTheIOThread(AsyncConsumerRebalanceListener):
    """kafka-python 3 calls a rebalance listener on the consumer's IO thread, inside the
    rejoin that ``poll()`` started: a blocking call there (a commit, a producer flush)
    would wait for the network that thread drives. So a revocation is handed to
    `listener` on a thread of its own while this coroutine waits for it: the IO thread
    goes on heart-beating, the listener's commit is sent while the group still counts
    this member as the partitions' owner, and the polling thread stays inside ``poll()``
    until it is over. Called on any other thread (the consumer is closing and its IO
    thread is stopped, `close_consumer`), the listener runs in place."""

    def __init__(self, listener: Any, net: Any):
        self.listener, self.net = listener, net

    async def on_partitions_revoked(self, revoked):
        tps = list(revoked)
        if threading.current_thread() is not self.net._io_thread:
            self.listener.on_partitions_revoked(tps)
            return
        finished, failure = Future(), []

        def revoke() -> None:
            try:
                self.listener.on_partitions_revoked(tps)
            except BaseException as exc:  # raised below, on the IO thread
                failure.append(exc)

            async def settle() -> None:
                finished.success(None)

            self.net.call_soon_threadsafe(settle)

        threading.Thread(target=revoke, name="kafka-revoke", daemon=True).start()
        await finished
        if failure:
            raise failure[0]

    async def on_partitions_assigned(self, assigned):
        self.listener.on_partitions_assigned(list(assigned))


def make_consumer(bootstrap_servers: str, group_id: str | None, **overrides: Any) -> Any:
    try:
        return Consumer(bootstrap_servers=bootstrap_servers, group_id=group_id,
                        **{**CONSUMER_DEFAULTS, **overrides})
    except KafkaTimeoutError as exc:
        raise unavailable(bootstrap_servers, exc) from None


class ErrorReportingProducer(KafkaProducer):
    """A producer whose sends nobody waits on: a failed send calls `on_error`, and
    ``send`` returns None, as the other backend's producer made with ``on_error``."""

    def __init__(self, on_error: Callable[[BaseException], Any], **options: Any):
        super().__init__(**options)
        self.on_error = on_error

    def send(self, *args: Any, **kwargs: Any) -> None:
        super().send(*args, **kwargs).add_errback(self.on_error)


def make_producer(bootstrap_servers: str, on_error: Callable[[BaseException], Any] | None = None,
                  **overrides: Any) -> Any:
    options = {"partitioner": _single_partition_shortcut(), **PRODUCER_DEFAULTS, **overrides}
    try:
        if on_error is not None:
            return ErrorReportingProducer(on_error, bootstrap_servers=bootstrap_servers,
                                          **options)
        return KafkaProducer(bootstrap_servers=bootstrap_servers, **options)
    except KafkaTimeoutError as exc:
        raise unavailable(bootstrap_servers, exc) from None


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


def commit(consumer: Any, offsets: dict[Any, int]) -> None:
    try:
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError) as exc:
        raise PartitionsMoved(str(exc)) from exc
    except KafkaError as exc:
        raise CommitError(f"committing offsets failed: {exc}") from exc


def commit_transaction(producer: Any, consumer: Any, offsets: dict[Any, int]) -> None:
    try:
        if offsets:
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                consumer.group_metadata())
        producer.commit_transaction()
        producer.begin_transaction()
    except KafkaError as exc:
        raise CommitError(f"committing the transaction failed: {exc}") from exc


def _single_partition_shortcut() -> Any:
    """kafka-python's default partitioner (murmur2 of the key, so a run's messages share a
    partition number across topics), minus the pure-Python hash when there is only one."""

    class Partitioner(DefaultPartitioner):
        def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
            partitions = cluster.partitions_for_topic(topic)
            if partitions is not None and len(partitions) == 1:
                return next(iter(partitions))
            return super().partition(topic, key, serialized_key, value, serialized_value,
                                     cluster)

    return Partitioner()


class Admin:
    """Topic creation and consumer-group reads (`kafka_io.make_admin`)."""

    def __init__(self, bootstrap_servers: str):
        try:
            self.client = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
        except KafkaTimeoutError as exc:
            raise unavailable(bootstrap_servers, exc) from None

    def create_topics(self, names: Iterable[str], partitions: int) -> list[str]:
        existing = set(self.client.list_topics())
        created = []
        for name in dict.fromkeys(names):
            if name in existing:
                continue
            try:
                self.client.create_topics([NewTopic(name, partitions, 1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created

    def group_offsets(self, group: str) -> dict[Any, int]:
        offsets = self.client.list_group_offsets(group).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def group_members(self, groups: list[str]) -> dict[str, int]:
        described = self.client.describe_groups(groups)
        return {group: len(info.get("members") or []) for group, info in described.items()
                if not info.get("error")}

    def close(self) -> None:
        self.client.close()
