"""The delivery loop: the one poll -> process -> checkpoint loop of the runtime.

The runner, the hook dispatcher and the dev-mode sinks are `Processor`s on a
`DeliveryLoop`; the loop alone polls, pauses, seeks and commits, so a rebalance or
back-pressure fix reaches all of them.

Each turn the loop:
1. polls, and hands each record to ``processor.process``; the record's offset is
   tracked until the processor calls `DeliveryLoop.done` for it (a record held by a join
   window, a batch or a sink's buffer stays open);
2. applies the error policy to a record whose processing raised: ``processor.on_error``
   says to skip it, to read it again later (`RetryLater`), or raises to stop the loop;
3. releases held partitions whose head record is due (`DeliveryLoop.hold`: a retry
   topic's record not due yet, a delivery to try again): a held partition is paused and
   sought back, so waiting never blocks the poll thread nor the other partitions;
4. pauses every partition while the processor's in-flight work is full
   (``processor.in_flight() >= processor.max_in_flight``) and resumes them at half;
5. ticks the processor (join windows, batches, sink flushes);
6. flushes the loop's producer when outputs were sent since the last flush and the poll
   left no input waiting (it brought fewer records than its ``max_poll_records``,
   `POLL_RECORDS` unless the consumer options say otherwise): a lone record's outputs go
   out at once instead of lingering, while the outputs of a poll's records share a batch,
   so an output topic gets no more batches than its inputs brought polls. (A wait of
   10 ms between such flushes, meant to spare the embedded broker batches, cost sync
   requests at c=1 through dev a 10 ms linger whenever one came sooner: half of them,
   3-4 ms on the one-step p50. A 60 s soak at 500 records/s through dev, whose producer
   lingers 10 ms, kept its p50 without it: 14-29 ms per 10 s window, against 16-38 ms.)
7. checkpoints on an interval, on shutdown and when partitions are revoked.

A checkpoint:
1. flushes the producer, so every output sent so far is acknowledged (or has failed);
2. if any send failed, stops with `ProduceFailed` and commits nothing: the inputs are
   read again after a restart and the runner's deduplicator drops what was written;
3. commits, per partition, the offset of the first record not done yet, so a crash
   re-reads exactly the records whose work was not completed. In transactional mode the
   offsets are committed inside the producer's transaction.

On a rebalance, the revoked partitions' done work is committed before they move to
another member (the listener is called inside the poll, `kafka_io`) and their open state
dropped (``processor.revoked``); assigned partitions are sought to their committed
offsets (another member may have moved them on) and announced (``processor.assigned``).
The records of the poll that saw the rebalance are dropped: they are read again.

The loop's consumer, its tracker and its processor belong to the thread that runs the
loop; other threads call `stop()` alone. confluent-kafka lets one thread at a time into a
consumer, so a call such as ``assignment()`` from another thread waits for a gap between
the polling thread's turns, which took from seconds to over a minute here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from algorail.errors import AlgorailError
from algorail.runtime import kafka_io

log = logging.getLogger("algorail.delivery")

POLL_MS = 100
POLL_RECORDS = 500
TICK_SECONDS = 0.05
COMMIT_SECONDS = 1.0


class CheckpointError(AlgorailError):
    """Delivery cannot be guaranteed: the loop stops and its process is restarted."""


class ProduceFailed(CheckpointError):
    pass


class CommitFailed(CheckpointError):
    pass


class RetryLater(Exception):
    """Raised by a processor: read this record again in `delay` seconds; its partition
    waits, the others go on."""

    def __init__(self, delay: float, reason: str = ""):
        super().__init__(reason or f"retry in {delay:.2f}s")
        self.delay = delay


class Processor:
    """What a `DeliveryLoop` drives. `process` handles one record and calls
    ``loop.done(record)`` once everything it caused was sent (at once, or later from
    `tick`); the other methods have defaults for processors that need nothing."""

    max_in_flight = 10_000
    loop: DeliveryLoop

    def bind(self, loop: DeliveryLoop) -> None:
        self.loop = loop

    def process(self, record: Any) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Called every `TICK_SECONDS`: close windows, flush buffers."""

    def in_flight(self) -> int:
        """Records read but not done: the loop pauses reading at `max_in_flight`."""
        return self.loop.tracker.unresolved()

    def assigned(self, tps: list[Any]) -> None:
        """Partitions assigned, each sought to its committed offset."""

    def revoked(self, tps: list[Any]) -> None:
        """Partitions lost: drop the state of their open records (they are read again)."""

    def on_error(self, record: Any, exc: Exception) -> float | None:
        """The error policy: seconds until `record` is read again, None to skip it; raise
        to stop the loop."""
        if isinstance(exc, RetryLater):
            return exc.delay
        raise exc


class OffsetTracker:
    """Records read but not done yet, per partition, in offset order."""

    def __init__(self) -> None:
        self.pending: dict[Any, OrderedDict[int, bool]] = {}
        self.next: dict[Any, int] = {}
        self.open = 0  # offsets tracked and not done, kept so `unresolved` is not a scan

    def track(self, tp: Any, offset: int) -> None:
        offsets = self.pending.get(tp)
        if offsets is None:
            offsets = self.pending[tp] = OrderedDict()
        if offsets.get(offset) is not False:
            self.open += 1
        offsets[offset] = False
        self.next[tp] = offset + 1

    def resolve(self, tp: Any, offset: int) -> None:
        offsets = self.pending.get(tp)
        if offsets is not None and offsets.get(offset) is False:
            offsets[offset] = True
            self.open -= 1

    def rewind(self, tp: Any, offset: int) -> None:
        """`tp` is read again from `offset`: forget what was tracked from there on."""
        offsets = self.pending.get(tp)
        if offsets is None:
            return
        for later in [o for o in offsets if o >= offset]:
            self.open -= not offsets.pop(later)
        self.next[tp] = min(self.next.get(tp, offset), offset)

    def committable(self, tps: Any = None) -> dict[Any, int]:
        """The offset to commit per partition: the first one not done, else the next."""
        result = {}
        for tp, offsets in self.pending.items():
            if tps is not None and tp not in tps:
                continue
            while offsets and next(iter(offsets.values())):
                offsets.popitem(last=False)
            result[tp] = next(iter(offsets)) if offsets else self.next[tp]
        return result

    def unresolved(self) -> int:
        return self.open

    def drop(self, tps: Any = None) -> None:
        for tp in list(self.pending) if tps is None else tps:
            offsets = self.pending.pop(tp, None)
            if offsets:
                self.open -= sum(1 for done in offsets.values() if not done)
            self.next.pop(tp, None)


class DeliveryLoop:
    """Polls `topics` in `group` for one `Processor` until `stop()` (see the module doc)."""

    def __init__(self, processor: Processor, bootstrap_servers: str, group: str,
                 topics: list[str], *, transactional_id: str | None = None,
                 commit_seconds: float = COMMIT_SECONDS, poll_ms: int = POLL_MS,
                 stopping: threading.Event | None = None, **consumer_options: Any):
        self.processor = processor
        self.bootstrap_servers = bootstrap_servers
        self.group, self.topics = group, topics
        self.transactional = transactional_id is not None
        self.commit_seconds, self.poll_ms = commit_seconds, poll_ms
        self.poll_records = consumer_options.get("max_poll_records", POLL_RECORDS)
        options = {"transactional_id": transactional_id} if transactional_id else {}
        # the loop's own producer reports failed sends only (no future per record)
        self.producer = kafka_io.make_producer(bootstrap_servers, on_error=self._failed,
                                               **options)
        self.consumer = kafka_io.make_consumer(bootstrap_servers, group, **consumer_options)
        self.partition = kafka_io.backend_of(self.consumer).TopicPartition
        self.tracker = OffsetTracker()
        self.committed: dict[Any, int] = {}
        self.failure: BaseException | None = None
        self.unsent_commit = False
        self.unflushed = False  # outputs sent since the producer was last flushed
        self.held: dict[Any, tuple[int, float]] = {}  # tp -> (offset read again, when)
        self.throttled = False
        self.ready = threading.Event()
        self.stopping = stopping or threading.Event()
        self.last_turn = time.monotonic()
        self._assigned: list[Any] | None = None
        self._closed = False
        if self.transactional:
            self.producer.init_transactions()
            self.producer.begin_transaction()
        processor.bind(self)
        self.consumer.subscribe(topics=sorted(topics), listener=self._listener())

    # -- what processors call -----------------------------------------------------------

    def send(self, topic: str, value: bytes, key: bytes | None, headers: list) -> None:
        """Produce an output; a failure stops the loop before its input is committed."""
        self.unsent_commit = self.unflushed = True
        self.producer.send(topic, value=value, key=key, headers=headers)

    def done(self, record: Any) -> None:
        self.tracker.resolve(self.partition(record.topic, record.partition), record.offset)

    def resolve(self, tp: Any, offset: int) -> None:
        self.tracker.resolve(tp, offset)

    def hold(self, record: Any, delay: float) -> None:
        """Read `record` (and its partition after it) again in `delay` seconds."""
        tp = self.partition(record.topic, record.partition)
        self.tracker.rewind(tp, record.offset)
        self.held[tp] = (record.offset, time.monotonic() + max(delay, 0.0))
        self.consumer.pause(tp)

    def stop(self) -> None:
        self.stopping.set()

    # -- the loop -----------------------------------------------------------------------

    def run(self, max_seconds: float | None = None) -> None:
        """Turn until `stop()` (or `max_seconds`); a final checkpoint runs on the way out."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        next_tick = next_commit = 0.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if deadline and now > deadline:
                    break
                batch = self.consumer.poll(timeout_ms=self._poll_ms(now),
                                           max_records=self.poll_records)
                if self._rebalance():
                    batch = {}  # fetched before the rewind to the committed offsets
                polled = sum(len(records) for records in batch.values())
                held = self.held
                for tp, records in batch.items():
                    for record in records:
                        if held and tp in held:  # `process` held it: read again later
                            break
                        self._handle(tp, record)
                now = time.monotonic()
                self.last_turn = now
                self._release(now)
                self._throttle()
                if now >= next_tick:
                    self.processor.tick()
                    next_tick = now + TICK_SECONDS
                if polled < self.poll_records and self.unflushed:
                    self.flush()  # step 6
                if now >= next_commit:
                    self.checkpoint()
                    next_commit = now + self.commit_seconds
        finally:
            self.close()

    def _poll_ms(self, now: float) -> int:
        if not self.held:
            return self.poll_ms
        soonest = min(when for _, when in self.held.values())
        return max(0, min(self.poll_ms, int((soonest - now) * 1000) + 1))

    def _handle(self, tp: Any, record: Any) -> None:
        self.tracker.track(tp, record.offset)
        try:
            self.processor.process(record)
        except Exception as exc:
            delay = self.processor.on_error(record, exc)
            if delay is None:
                self.tracker.resolve(tp, record.offset)
            else:
                log.warning("%s[%d] offset %d: %s; reading it again in %.2fs", record.topic,
                            record.partition, record.offset, exc, delay)
                self.hold(record, delay)

    def _release(self, now: float) -> None:
        for tp, (offset, when) in list(self.held.items()):
            if when <= now:
                del self.held[tp]
                self.consumer.seek(tp, offset)
                if not self.throttled:
                    self.consumer.resume(tp)

    def _throttle(self) -> None:
        """Step 4: pause reading while the processor's in-flight work is full."""
        limit = self.processor.max_in_flight
        if not self.throttled and self.processor.in_flight() >= limit:
            self.throttled = True
            self.consumer.pause(*self.consumer.assignment())
            log.info("%s: %d records in flight; reading paused", self.group, limit)
        elif self.throttled and self.processor.in_flight() <= limit // 2:
            self.throttled = False
            self.consumer.resume(*(self.consumer.assignment() - set(self.held)))

    # -- checkpoints --------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.failure = self.failure or exc

    def flush(self) -> None:
        """Send what lingers in the producer and wait for its acknowledgements."""
        self.unflushed = False
        self.producer.flush()

    def checkpoint(self, tps: Any = None) -> dict[Any, int]:
        # Step 1: every output sent so far is acknowledged or failed.
        self.flush()
        # Step 2: a failed send means its input must be read again: commit nothing.
        if self.failure is not None:
            raise ProduceFailed(f"the broker did not store an output: {self.failure}")
        # Step 3: commit the first offset not done of each partition that moved.
        offsets = {tp: o for tp, o in self.tracker.committable(tps).items()
                   if self.committed.get(tp) != o}
        if self.transactional:
            if offsets or self.unsent_commit:
                try:
                    kafka_io.commit_transaction(self.producer, self.consumer, offsets)
                except kafka_io.CommitError as exc:
                    raise CommitFailed(str(exc)) from exc
                self.committed.update(offsets)
                self.unsent_commit = False
            return offsets
        if offsets:
            try:
                kafka_io.commit(self.consumer, offsets)
            except kafka_io.PartitionsMoved:
                # the new owner re-reads them and drops what we wrote
                self._drop(list(offsets))
                return {}
            except kafka_io.CommitError as exc:
                raise CommitFailed(str(exc)) from exc
            self.committed.update(offsets)
        return offsets

    def healthy(self, stall_seconds: float) -> bool:
        return self.failure is None and time.monotonic() - self.last_turn < stall_seconds

    def close(self) -> None:
        """The final checkpoint, then the consumer leaves its group."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.failure is None:
                self.checkpoint()
        finally:
            kafka_io.close_consumer(self.consumer)
            self.producer.close()

    # -- rebalancing --------------------------------------------------------------------

    def _listener(self) -> Any:
        loop = self

        class Listener(kafka_io.rebalance_listener_base()):
            """Called inside ``poll()`` before the partitions move (`kafka_io`): the
            revocation is acted on at once, while the partitions can still be committed."""

            def on_partitions_revoked(self, revoked):
                loop._on_revoked(list(revoked))

            def on_partitions_assigned(self, assigned):
                loop._assigned = list(assigned)

        return Listener()

    def _rebalance(self) -> bool:
        """Act on an assignment noted by the listener; True when partitions were assigned."""
        assigned, self._assigned = self._assigned, None
        if assigned is None:
            return False
        for tp in assigned:
            self.held.pop(tp, None)
            offset = self.consumer.committed(tp)
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
        self.tracker.drop(assigned)
        self.throttled = False
        self.processor.assigned(assigned)
        self.ready.set()
        return True

    def _on_revoked(self, revoked: list[Any]) -> None:
        """Commit what is done of `revoked`, then drop their open state."""
        try:
            self.checkpoint(set(revoked))
        except CheckpointError as exc:
            log.warning("%s: the revoked partitions' last offsets were not committed (%s); "
                        "their new owner reads those records again", self.group, exc)
            if isinstance(exc, ProduceFailed):
                raise
        self._drop(revoked)

    def _drop(self, tps: list[Any]) -> None:
        self.tracker.drop(tps)
        for tp in tps:
            self.committed.pop(tp, None)
            self.held.pop(tp, None)
        self.processor.revoked(tps)
