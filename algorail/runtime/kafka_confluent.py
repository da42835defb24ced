"""The confluent-kafka backend of `kafka_io` (the default, ``ALGORAIL_KAFKA_CLIENT=confluent``).

confluent-kafka wraps librdkafka, a C client: fetching, batching and delivery reports
run on librdkafka's threads, so a Python process moves many times the records per CPU
second that kafka-python's pure-Python protocol code does. This module gives it the
surface `kafka_io` describes:

- settings come with kafka-python's names and are translated by `SETTINGS`;
- topic partitions are `TopicPartition` tuples (equal to kafka-python's);
- a consumer's rebalance listener is called from librdkafka's assign and revoke
  callbacks, which run inside ``poll`` on the polling thread;
- ``position`` is the offset of the next record ``poll`` returns: librdkafka's own
  position only moves when a record is consumed, so a seek is remembered until then;
- ``highwater`` is librdkafka's cached high watermark from fetch responses (Tansu's
  ListOffsets answers are unreliable);
- a producer's ``send`` returns a `SendFuture`, settled by librdkafka's delivery report;
  a thread of the producer's serves those reports as they arrive. A producer made with
  ``on_error`` reports failed sends only, to that one callback, and its ``send`` returns
  None: no future and no Python call per record sent.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import confluent_kafka as ck
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic

from algorail.runtime.broker import CONFLUENT_CONSUMER_SETTINGS
from algorail.runtime.kafka_io import (
    CommitError,
    KafkaUnavailable,
    PartitionsMoved,
    unavailable,
)

log = logging.getLogger("algorail.kafka")

# kafka-python setting -> librdkafka setting. The settings handled by this module itself
# (`ADAPTER_SETTINGS`) are not passed on.
SETTINGS: dict[str, str] = {
    "client_id": "client.id",
    "group_id": "group.id",
    "enable_auto_commit": "enable.auto.commit",
    "auto_offset_reset": "auto.offset.reset",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_min_bytes": "fetch.min.bytes",
    "isolation_level": "isolation.level",
    "acks": "acks",
    "linger_ms": "linger.ms",
    "batch_size": "batch.size",
    "enable_idempotence": "enable.idempotence",
    "transactional_id": "transactional.id",
    "request_timeout_ms": "request.timeout.ms",
    "delivery_timeout_ms": "delivery.timeout.ms",
}
ADAPTER_SETTINGS = {
    "max_poll_records",  # poll's default max_records
    "max_block_ms",  # how long send waits for room in a full local queue
    "bootstrap_timeout_ms",  # how long the first metadata request may take
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # A consumer whose group join found none of its subscribed topics looks again only at
    # the next metadata refresh: at librdkafka's 5-minute default, a hook dispatcher or
    # runner that starts before its topics exist (they follow a plan the moment the operator
    # writes it; Strimzi creates the topics a few seconds later) read nothing for minutes.
    "topic.metadata.refresh.interval.ms": 5000,
    **CONFLUENT_CONSUMER_SETTINGS,
}
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    # a record waits at most 1 ms for others to share its request (kafka-python's
    # setting here; librdkafka's default is 5 ms, which a sync request would feel on
    # every hop); under load, what queues while requests are in flight is batched anyway
    "linger.ms": 1,
    # murmur2 of the key like kafka-python and the Java client, so either client puts a
    # key on the same partition
    "partitioner": "murmur2_random",
}
BOOTSTRAP_TIMEOUT_S = 10.0
METADATA_TIMEOUT_S = 10.0
MAX_POLL_RECORDS = 500

# errors of a commit that mean the group moved on: the new owner re-reads
_MOVED = {ck.KafkaError.REBALANCE_IN_PROGRESS, ck.KafkaError.ILLEGAL_GENERATION,
          ck.KafkaError.UNKNOWN_MEMBER_ID, ck.KafkaError._ASSIGNMENT_LOST,
          ck.KafkaError._STATE}


_GROUP_GONE = {ck.ConsumerGroupState.EMPTY, ck.ConsumerGroupState.DEAD}


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RebalanceListener:
    """Base of rebalance listeners: ``on_partitions_revoked(tps)`` and
    ``on_partitions_assigned(tps)``, each given a list of `TopicPartition`."""

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass


class Record:
    """A consumed record, with kafka-python's attribute names."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "headers", "timestamp")

    def __init__(self, message: Any, topic: str, partition: int):
        self.topic = topic
        self.partition = partition
        self.offset = message.offset()
        self.key = message.key()
        self.value = message.value()
        self.headers = message.headers() or []
        self.timestamp = message.timestamp()[1]


class Hit(NamedTuple):
    """An `offsets_for_times` answer: the first offset at or after the time asked."""

    offset: int


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


def translate(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """kafka-python-named `options` -> (librdkafka settings, this module's own)."""
    config, own = {}, {}
    for name, value in options.items():
        if name in ADAPTER_SETTINGS:
            own[name] = value
        elif name in SETTINGS:
            config[SETTINGS[name]] = value
        elif "." in name:  # already a librdkafka name
            config[name] = value
        else:
            raise ValueError(f"{name!r} is not a Kafka client setting algorail translates "
                             f"for confluent-kafka (known: {', '.join(sorted(SETTINGS))})")
    return config, own


def _ck(tp: Any, offset: int = ck.OFFSET_INVALID) -> ck.TopicPartition:
    return ck.TopicPartition(tp.topic, tp.partition, offset)


def _tp(p: Any) -> TopicPartition:
    return TopicPartition(p.topic, p.partition)


def _code(exc: BaseException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, ck.KafkaError) else None


def _check_reachable(client: Any, bootstrap_servers: str, timeout_s: float) -> None:
    try:
        client.list_topics(timeout=timeout_s)
    except ck.KafkaException as exc:
        raise unavailable(bootstrap_servers, exc) from None


def _base_config(bootstrap_servers: str) -> dict[str, Any]:
    # librdkafka's log goes to algorail's logger; a broker closing an idle connection
    # (Tansu does after a few seconds) is not worth a line
    return {"bootstrap.servers": bootstrap_servers, "logger": log,
            "log.connection.close": False}


# -- consumer --------------------------------------------------------------------------


def make_consumer(bootstrap_servers: str, group_id: str | None, **overrides: Any) -> Consumer:
    config, own = translate(overrides)
    config = {**_base_config(bootstrap_servers), **CONSUMER_DEFAULTS, **config}
    # librdkafka needs a group id even for a consumer that only assigns: a private one
    # that nothing commits to
    config["group.id"] = group_id or f"algorail-reader-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(config, own.get("max_poll_records", MAX_POLL_RECORDS))
    try:
        _check_reachable(consumer.client, bootstrap_servers,
                         own.get("bootstrap_timeout_ms", BOOTSTRAP_TIMEOUT_S * 1000) / 1000)
    except KafkaUnavailable:
        consumer.close()
        raise
    return consumer


class Consumer:
    """A confluent-kafka consumer with the surface `kafka_io` describes."""

    def __init__(self, config: dict[str, Any], max_poll_records: int):
        self.client = ck.Consumer(config)
        self.max_poll_records = max_poll_records
        self._manual = False  # assign() rather than subscribe()
        # a manual assignment is handed to librdkafka when first read from, with the
        # offsets sought meanwhile: librdkafka refuses a seek before a partition fetches
        self._unstarted: dict[TopicPartition, int] | None = None
        self._paused: set[TopicPartition] = set()
        # where the next poll starts, for partitions sought since their last record
        self._sought: dict[TopicPartition, int] = {}
        self._errors_seen: set[str] = set()

    # group membership and assignment

    def subscribe(self, topics: Iterable[str] = (), listener: RebalanceListener | None = None
                  ) -> None:
        listener = listener or RebalanceListener()

        def on_assign(_consumer: Any, partitions: list[Any]) -> None:
            self._paused.clear()
            self._sought.clear()
            listener.on_partitions_assigned([_tp(p) for p in partitions])

        def on_revoke(_consumer: Any, partitions: list[Any]) -> None:
            self._paused.clear()
            self._sought.clear()
            listener.on_partitions_revoked([_tp(p) for p in partitions])

        self._manual, self._unstarted = False, None
        self.client.subscribe(list(topics), on_assign=on_assign, on_revoke=on_revoke,
                              on_lost=on_revoke)

    def assign(self, tps: Iterable[Any]) -> None:
        self._manual = True
        self._paused.clear()
        self._sought.clear()
        self.client.unassign()
        self._unstarted = {TopicPartition(tp.topic, tp.partition): ck.OFFSET_INVALID
                           for tp in tps}

    def _start(self) -> None:
        if self._unstarted is not None:
            starts, self._unstarted = self._unstarted, None
            self.client.assign([_ck(tp, offset) for tp, offset in starts.items()])

    def assignment(self) -> set[TopicPartition]:
        if self._unstarted is not None:
            return set(self._unstarted)
        return {_tp(p) for p in self.client.assignment()}

    # reading

    def poll(self, timeout_ms: int = 0, max_records: int | None = None
             ) -> dict[TopicPartition, list[Record]]:
        self._start()
        first = self.client.poll(timeout_ms / 1000)
        if first is None:
            return {}
        wanted = (max_records or self.max_poll_records) - 1
        messages = [first, *self.client.consume(wanted, timeout=0)] if wanted > 0 else [first]
        batch: dict[TopicPartition, list[Record]] = {}
        topic = partition = records = None  # a run of one partition's messages is usual
        for message in messages:
            if message.error() is not None:
                self._note_error(message.error())
                continue
            if message.partition() != partition or message.topic() != topic:
                topic, partition = message.topic(), message.partition()
                records = batch.get((topic, partition))  # a TopicPartition equals its tuple
                if records is None:
                    tp = TopicPartition(topic, partition)
                    records = batch[tp] = []
                    self._sought.pop(tp, None)
            records.append(Record(message, topic, partition))
        return batch

    def _note_error(self, error: Any) -> None:
        """Errors in the record stream (a subscribed topic that does not exist yet, a
        partition end) are the client's to retry: logged once each."""
        if error.code() == ck.KafkaError._PARTITION_EOF:
            return
        text = str(error)
        if text not in self._errors_seen:
            self._errors_seen.add(text)
            log.warning("Kafka consumer: %s", text)

    def pause(self, *tps: Any) -> None:
        self._start()
        if tps:
            self.client.pause([_ck(tp) for tp in tps])
            self._paused.update(TopicPartition(tp.topic, tp.partition) for tp in tps)

    def resume(self, *tps: Any) -> None:
        self._start()
        if tps:
            self.client.resume([_ck(tp) for tp in tps])
            self._paused.difference_update(TopicPartition(tp.topic, tp.partition)
                                           for tp in tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    # positions

    def seek(self, tp: Any, offset: int) -> None:
        tp = TopicPartition(tp.topic, tp.partition)
        self._sought[tp] = offset
        if self._unstarted is not None and tp in self._unstarted:
            self._unstarted[tp] = offset
            return
        try:
            self.client.seek(_ck(tp, offset))
        except ck.KafkaException as exc:
            # librdkafka refuses a seek on a partition whose fetcher is not started yet
            # or is being restarted ("Erroneous state", "Outdated"): the partition is
            # assigned again at the offset instead
            if _code(exc) not in (ck.KafkaError._STATE, ck.KafkaError._OUTDATED):
                raise
            self._reassign(tp, offset)

    def _reassign(self, tp: TopicPartition, offset: int) -> None:
        if self._manual:
            self.client.incremental_unassign([_ck(tp)])
            self.client.incremental_assign([_ck(tp, offset)])
            return
        # a group member's assignment is replaced whole (the eager protocol): the other
        # partitions keep their positions
        starts = []
        for p in self.client.assignment():
            other = _tp(p)
            at = offset if other == tp else self._sought.get(other, ck.OFFSET_INVALID)
            if at == ck.OFFSET_INVALID:
                [current] = self.client.position([_ck(other)])
                at = current.offset
            starts.append(_ck(other, at))
        self.client.assign(starts)

    def seek_to_beginning(self, *tps: Any) -> None:
        for tp in tps or self.assignment():
            self.seek(tp, self._watermarks(tp)[0])

    def seek_to_end(self, *tps: Any) -> None:
        for tp in tps or self.assignment():
            self.seek(tp, self._watermarks(tp)[1])

    def position(self, tp: Any) -> int:
        """The offset of the next record `poll` returns for `tp`."""
        tp = TopicPartition(tp.topic, tp.partition)
        if tp in self._sought:
            return self._sought[tp]
        [found] = self.client.position([_ck(tp)])
        if found.offset >= 0:
            return found.offset
        start = self.committed(tp)
        if start is None:
            start = self._watermarks(tp)[0]
        self._sought[tp] = start  # until a record arrives: nothing was read since
        return start

    def highwater(self, tp: Any) -> int | None:
        """The high watermark of the last fetch response, None before one arrived."""
        try:
            _, high = self.client.get_watermark_offsets(_ck(tp), cached=True)
        except ck.KafkaException:  # not fetched from yet
            return None
        return high if high >= 0 else None

    def committed(self, tp: Any) -> int | None:
        [found] = self.client.committed([_ck(tp)], timeout=METADATA_TIMEOUT_S)
        return found.offset if found.offset >= 0 else None

    def end_offsets(self, tps: Iterable[Any]) -> dict[TopicPartition, int]:
        return {TopicPartition(tp.topic, tp.partition): self._watermarks(tp)[1] for tp in tps}

    def _watermarks(self, tp: Any) -> tuple[int, int]:
        return self.client.get_watermark_offsets(_ck(tp), timeout=METADATA_TIMEOUT_S)

    def offsets_for_times(self, times: dict[Any, int]) -> dict[TopicPartition, Hit | None]:
        if not times:
            return {}
        found = self.client.offsets_for_times([_ck(tp, ms) for tp, ms in times.items()],
                                              timeout=METADATA_TIMEOUT_S)
        return {_tp(p): Hit(p.offset) if p.offset >= 0 else None for p in found}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return _partitions(self.client, topic)

    def close(self) -> None:
        self.client.close()


def _partitions(client: Any, topic: str) -> set[int] | None:
    metadata = client.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return set(found.partitions)


def close_consumer(consumer: Consumer, autocommit: bool = False) -> None:
    if autocommit:
        commit(consumer, {tp: consumer.position(tp) for tp in consumer.assignment()})
    consumer.close()


def commit(consumer: Consumer, offsets: dict[Any, int]) -> None:
    try:
        answers = consumer.client.commit(offsets=[_ck(tp, o) for tp, o in offsets.items()],
                                         asynchronous=False)
    except ck.KafkaException as exc:
        if _code(exc) in _MOVED:
            raise PartitionsMoved(str(exc)) from exc
        raise CommitError(f"committing offsets failed: {exc}") from exc
    failed = [p for p in answers or () if p.error is not None]
    if failed:
        if any(p.error.code() in _MOVED for p in failed):
            raise PartitionsMoved(f"committing offsets failed: {failed[0].error}")
        raise CommitError(f"committing offsets failed: {failed[0].error}")


def commit_transaction(producer: Producer, consumer: Consumer, offsets: dict[Any, int]
                       ) -> None:
    try:
        if offsets:
            producer.client.send_offsets_to_transaction(
                [_ck(tp, o) for tp, o in offsets.items()],
                consumer.client.consumer_group_metadata())
        producer.client.commit_transaction()
        producer.client.begin_transaction()
    except ck.KafkaException as exc:
        raise CommitError(f"committing the transaction failed: {exc}") from exc


# -- producer --------------------------------------------------------------------------


class SendFuture:
    """The outcome of one `Producer.send`: kafka-python's future surface."""

    # Made per record sent: what a send that nobody waits on never needs (the callback
    # lists, the metadata) is made only when asked for.
    __slots__ = ("_done", "_message", "_error", "_callbacks", "_errbacks", "_waiter")

    def __init__(self) -> None:
        self._done = False
        self._message: Any = None  # the acknowledged message, read by `_value`
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Any], Any]] | None = None
        self._errbacks: list[Callable[[BaseException], Any]] | None = None
        self._waiter: threading.Event | None = None

    @property
    def _value(self) -> RecordMetadata:
        message = self._message
        return RecordMetadata(message.topic(), message.partition(), message.offset(),
                              message.timestamp()[1])

    def add_callback(self, fn: Callable[[Any], Any]) -> SendFuture:
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(fn)
        if self._done and self._error is None and self._callbacks:
            self._run(self._callbacks, self._value)
        return self

    def add_errback(self, fn: Callable[[BaseException], Any]) -> SendFuture:
        if self._errbacks is None:
            self._errbacks = []
        self._errbacks.append(fn)
        if self._done and self._error is not None and self._errbacks:
            self._run(self._errbacks, self._error)
        return self

    def get(self, timeout: float | None = None) -> RecordMetadata:
        if not self._done:
            # the event is made before `_done` is read again, and `_deliver` sets `_done`
            # before it reads the event: one of the two sees the other
            self._waiter = waiter = threading.Event()
            if not self._done and not waiter.wait(timeout):
                raise KafkaUnavailable(f"no acknowledgement from Kafka within {timeout}s")
        if self._error is not None:
            raise self._error
        return self._value

    def _deliver(self, error: Any, message: Any) -> None:
        """librdkafka's delivery report."""
        if error is None:
            self._message = message
        else:
            self._error = ck.KafkaException(error)
        self._done = True
        waiter = self._waiter
        if waiter is not None:
            waiter.set()
        if self._error is None:
            if self._callbacks:
                self._run(self._callbacks, self._value)
        elif self._errbacks:
            self._run(self._errbacks, self._error)

    @staticmethod
    def _run(fns: list[Callable[[Any], Any]], arg: Any) -> None:
        # popped, not iterated: a callback added from another thread meanwhile runs once
        while fns:
            try:
                fn = fns.pop(0)
            except IndexError:  # the other thread took the last one
                return
            try:
                fn(arg)
            except Exception:
                log.exception("a Kafka send callback failed")


def make_producer(bootstrap_servers: str, on_error: Callable[[BaseException], Any] | None = None,
                  **overrides: Any) -> Producer:
    config, own = translate(overrides)
    config = {**_base_config(bootstrap_servers), **PRODUCER_DEFAULTS, **config}
    producer = Producer(config, own.get("max_block_ms", 60_000) / 1000, on_error)
    try:
        _check_reachable(producer.client, bootstrap_servers,
                         own.get("bootstrap_timeout_ms", BOOTSTRAP_TIMEOUT_S * 1000) / 1000)
    except KafkaUnavailable:
        producer.close(timeout=0)
        raise
    return producer


class Producer:
    """A confluent-kafka producer with the surface `kafka_io` describes; a thread of its own
    serves delivery reports as they arrive.

    With `on_error`, librdkafka's successful delivery reports stop in its C trampoline
    (``delivery.report.only.error``) and a failed one calls `on_error` with a
    `ck.KafkaException`: a future and a Python callback per record were a fifth of a
    runner's CPU. Such a producer has no thread: its reports are served by ``flush`` (and
    by ``send`` while the local queue is full) on the caller's thread, which holds the
    interpreter lock already (a report thread took it once per record sent, against the
    thread producing); a failed send is therefore known by the next flush, which is when a
    delivery loop asks (its checkpoint flushes first)."""

    def __init__(self, config: dict[str, Any], max_block_s: float,
                 on_error: Callable[[BaseException], Any] | None = None):
        self.unwatched = on_error is not None
        self._on_error = on_error
        if on_error is not None:
            config = {**config, "delivery.report.only.error": True,
                      "on_delivery": lambda error, _message: on_error(ck.KafkaException(error))}
        self.client = ck.Producer(config)
        self.max_block_s = max_block_s
        self._closed = threading.Event()
        self._reports = None
        if not self.unwatched:
            self._reports = threading.Thread(target=self._serve_reports, daemon=True,
                                             name="algorail-kafka-reports")
            self._reports.start()

    def _serve_reports(self) -> None:
        while not self._closed.is_set():
            self.client.poll(0.1)

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None, partition: int | None = None,
             timestamp_ms: int | None = None) -> SendFuture | None:
        future = None if self.unwatched else SendFuture()
        options: dict[str, Any] = {}  # stays empty for a delivery loop's outputs
        if future is not None:
            options["on_delivery"] = future._deliver
        if partition is not None:
            options["partition"] = partition
        if timestamp_ms is not None:
            options["timestamp"] = timestamp_ms
        deadline = None
        while True:
            try:
                self.client.produce(topic, value, key, headers=headers or None, **options)
                return future
            except ck.KafkaException as exc:
                # refused before it was queued (a topic the producer's metadata says is
                # unknown, a record over the size limit): reported as a failed delivery
                # is, so a send's failure reaches its caller one way
                if future is None:
                    self._on_error(exc)
                else:
                    future._deliver(exc.args[0], None)
                return future
            except BufferError:  # the local queue is full: wait for room
                deadline = deadline or time.monotonic() + self.max_block_s
                if time.monotonic() > deadline:
                    raise KafkaUnavailable(
                        f"the producer's queue stayed full for {self.max_block_s:.0f}s") from None
                self.client.poll(0.05)

    def partitions_for(self, topic: str) -> set[int]:
        found = _partitions(self.client, topic)
        if not found:
            raise KafkaUnavailable(f"topic {topic} is not known to the broker")
        return found

    def flush(self, timeout: float | None = None) -> None:
        left = self.client.flush(-1 if timeout is None else timeout)
        if left:
            raise KafkaUnavailable(f"{left} records were not acknowledged within {timeout}s")

    def init_transactions(self) -> None:
        self.client.init_transactions()

    def begin_transaction(self) -> None:
        self.client.begin_transaction()

    def commit_transaction(self) -> None:
        self.client.commit_transaction()

    def abort_transaction(self) -> None:
        self.client.abort_transaction()

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (for up to `timeout` s; 0 drops it) and stop."""
        if self._closed.is_set():
            return
        try:
            if timeout == 0:
                self.client.purge()
            self.client.flush(-1 if timeout is None else timeout)
        finally:
            self._closed.set()
            if self._reports is not None and threading.current_thread() is not self._reports:
                self._reports.join()


# -- admin -----------------------------------------------------------------------------


class Admin:
    """Topic creation and consumer-group reads (`kafka_io.make_admin`)."""

    def __init__(self, bootstrap_servers: str):
        self.client = AdminClient(_base_config(bootstrap_servers))
        _check_reachable(self.client, bootstrap_servers, BOOTSTRAP_TIMEOUT_S)

    def create_topics(self, names: Iterable[str], partitions: int) -> list[str]:
        existing = set(self.client.list_topics(timeout=METADATA_TIMEOUT_S).topics)
        wanted = [name for name in dict.fromkeys(names) if name not in existing]
        if not wanted:
            return []
        futures = self.client.create_topics([NewTopic(name, partitions, 1) for name in wanted],
                                            operation_timeout=METADATA_TIMEOUT_S)
        created = []
        for name in wanted:
            try:
                futures[name].result()
                created.append(name)
            except ck.KafkaException as exc:
                if _code(exc) != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        return created

    def group_offsets(self, group: str) -> dict[TopicPartition, int]:
        futures = self.client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=METADATA_TIMEOUT_S)
        answer = futures[group].result()
        return {_tp(p): p.offset for p in answer.topic_partitions or ()
                if p.error is None and p.offset >= 0}

    def group_members(self, groups: list[str]) -> dict[str, int]:
        """Members per group, for the groups the broker describes believably: Tansu's
        answer for a stable group lists no members (and the member id where the assignor
        belongs), so a group neither empty nor dead that shows no member is left out."""
        futures = self.client.describe_consumer_groups(groups,
                                                       request_timeout=METADATA_TIMEOUT_S)
        counts = {}
        for group, future in futures.items():
            try:
                described = future.result()
            except ck.KafkaException as exc:
                log.debug("describing consumer group %s: %s", group, exc)
                continue
            if described.members or described.state in _GROUP_GONE:
                counts[group] = len(described.members)
        return counts

    def close(self) -> None:
        """An admin client holds no group or buffer: dropping it closes its connections."""
        self.client = None
