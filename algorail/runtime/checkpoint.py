"""Checkpointing: commit an input's offset only after everything it caused is stored.

A checkpoint runs after every poll batch, on shutdown and before partitions are lost:

1. Flush the producer, so every output, skip marker and error sent so far is
   acknowledged by the broker (or has failed).
2. If any send failed, stop with `ProduceFailed` and commit nothing: the inputs are
   re-read after a restart and the deduplicator drops what was already written.
3. Commit, per partition, the offset of the first input that is not resolved yet (an
   input held by a join window or a batch is unresolved), so a crash re-reads exactly
   the inputs whose runs were not completed. In transactional mode the offsets are
   committed inside the producer's transaction, which is then committed and a new one
   begun, for brokers that hide aborted records from read_committed consumers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from algorail.errors import AlgorailError


class CheckpointError(AlgorailError):
    """The runner cannot guarantee delivery; it stops and is restarted."""


class ProduceFailed(CheckpointError):
    pass


class CommitFailed(CheckpointError):
    pass


class OffsetTracker:
    """Inputs read but not yet resolved, per partition, in offset order."""

    def __init__(self) -> None:
        self.pending: dict[Any, OrderedDict[int, bool]] = {}
        self.next: dict[Any, int] = {}

    def track(self, tp: Any, offset: int) -> None:
        self.pending.setdefault(tp, OrderedDict())[offset] = False
        self.next[tp] = offset + 1

    def resolve(self, tp: Any, offset: int) -> None:
        offsets = self.pending.get(tp)
        if offsets is not None and offset in offsets:
            offsets[offset] = True

    def committable(self) -> dict[Any, int]:
        """The offset to commit per partition: the first unresolved, else the next."""
        result = {}
        for tp, offsets in self.pending.items():
            while offsets and next(iter(offsets.values())):
                offsets.popitem(last=False)
            result[tp] = next(iter(offsets)) if offsets else self.next[tp]
        return result

    def unresolved(self) -> int:
        return sum(1 for offsets in self.pending.values() for done in offsets.values() if not done)

    def clear(self) -> None:
        self.pending.clear()
        self.next.clear()


class Checkpoint:
    """Flushes the producer and commits the consumer's resolved offsets."""

    def __init__(self, consumer: Any, producer: Any, tracker: OffsetTracker,
                 transactional: bool = False):
        self.consumer = consumer
        self.producer = producer
        self.tracker = tracker
        self.transactional = transactional
        self.committed: dict[Any, int] = {}
        self.failure: BaseException | None = None
        self.unsent_commit = False  # sends since the last commit (transactional mode)
        if transactional:
            producer.init_transactions()
            producer.begin_transaction()

    def sent(self, future: Any) -> Any:
        """Register a send so a failure is noticed before its input is committed."""
        self.unsent_commit = True
        return future.add_errback(self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.failure = self.failure or exc

    def commit(self) -> dict[Any, int]:
        from kafka.errors import (
            CommitFailedError,
            IllegalGenerationError,
            KafkaError,
            RebalanceInProgressError,
        )
        from kafka.structs import OffsetAndMetadata

        # Step 1: every output sent so far is acknowledged or failed.
        self.producer.flush()
        # Step 2: a failed send means its input must be read again: commit nothing.
        if self.failure is not None:
            raise ProduceFailed(f"the broker did not store an output: {self.failure}")
        # Step 3: commit the first unresolved offset of each partition that moved.
        offsets = {tp: o for tp, o in self.tracker.committable().items()
                   if self.committed.get(tp) != o}
        if self.transactional:
            if offsets or self.unsent_commit:
                self._commit_transaction(offsets)
            return offsets
        if offsets:
            try:
                self.consumer.commit({tp: OffsetAndMetadata(o, "", -1)
                                      for tp, o in offsets.items()})
            except (CommitFailedError, RebalanceInProgressError, IllegalGenerationError):
                # Partitions moved: the new owner re-reads them and drops what we wrote.
                self.forget()
                return {}
            except KafkaError as exc:
                raise CommitFailed(f"committing offsets failed: {exc}") from exc
            self.committed.update(offsets)
        return offsets

    def _commit_transaction(self, offsets: dict[Any, int]) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        try:
            if offsets:
                self.producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
                    self.consumer.group_metadata())
            self.producer.commit_transaction()
            self.producer.begin_transaction()
        except KafkaError as exc:
            raise CommitFailed(f"committing the transaction failed: {exc}") from exc
        self.committed.update(offsets)
        self.unsent_commit = False

    def forget(self) -> None:
        """Partitions were lost: their state is re-read by whoever gets them."""
        self.tracker.clear()
        self.committed.clear()
