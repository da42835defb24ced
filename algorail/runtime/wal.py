"""The gateway's write-ahead log: a request accepted with 202 is on disk before the answer,
so a broker outage or a gateway crash loses no request.

On disk, in one directory per gateway (a lock file keeps a second gateway out):

- segments ``{id:020d}.wal``, each a run of records ``length, crc32, JSON`` where the JSON
  holds the run id, topic, key, value and headers (base64) of one Kafka message;
- ``checkpoint.json``, the position (segment, offset) of the first record the broker has
  not acknowledged; it is replaced atomically (two fsyncs), at most once per
  `CHECKPOINT_SECONDS` and on close, and segments wholly before it are deleted.

A `WalReplayer` thread produces the records after the checkpoint, in order, and moves the
checkpoint past each acknowledged batch in memory. Records this process wrote are handed
to it from memory once synced (`MEMORY_RECORDS`); the segments are read back only for
what an earlier process left and while more than that waits. Delivery is at-least-once: a crash
before the checkpoint reaches the disk sends up to a second of records again with the same
run ids and headers, and runners drop such duplicates.
"""

from __future__ import annotations

import binascii
import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from algorail.backoff import Backoff
from algorail.errors import AlgorailError

log = logging.getLogger("algorail.gateway.wal")

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024
ROTATE_BYTES = 1024 * 1024
CHECKPOINT_SECONDS = 1.0
# records written by this process are replayed from memory, not read back from the disk,
# while at most this many (and bytes) wait; past that (the broker is away) the disk is read
MEMORY_RECORDS = 10_000
MEMORY_BYTES = 32 * 1024 * 1024
FRAME = struct.Struct(">II")  # payload length, crc32 of the payload


class WalError(AlgorailError):
    pass


class WalFull(WalError):
    """The log holds `max_bytes` of records the broker has not taken yet."""


@dataclass(frozen=True)
class Position:
    segment: int
    offset: int


@dataclass
class WalRecord:
    """One Kafka message waiting to be produced, and where the next record starts."""

    run_id: str
    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]
    key: bytes | None = None
    end: Position | None = None

    def encode(self) -> bytes:
        payload = orjson.dumps({
            "runId": self.run_id, "topic": self.topic, "key": _b64(self.key),
            "value": _b64(self.value), "headers": [[k, _b64(v)] for k, v in self.headers],
        })
        return FRAME.pack(len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes, end: Position) -> WalRecord:
        data = orjson.loads(payload)
        return cls(run_id=data["runId"], topic=data["topic"], key=_unb64(data["key"]),
                   value=_unb64(data["value"]) or b"",
                   headers=[(k, _unb64(v) or b"") for k, v in data["headers"]], end=end)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else binascii.a2b_base64(text)


class WriteAheadLog:
    """Append (fsync'd, one fsync for concurrent appends), read from the checkpoint,
    acknowledge. Thread-safe."""

    def __init__(self, directory: str | Path, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 fsync: Callable[[int], None] = os.fsync,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.directory = Path(directory)
        self.checkpoint_seconds = checkpoint_seconds
        self._fsync = fsync  # of appended records; tests count the calls
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        # a drained segment is replaced by an empty one once it is this big
        self.rotate_bytes = min(segment_bytes, ROTATE_BYTES)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / "lock", "a+b")  # noqa: SIM115 (held open)
        except OSError as exc:
            raise WalError(f"cannot use {self.directory} as the write-ahead log directory: "
                           f"{exc.strerror}; give --wal-dir a writable folder") from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise WalError(f"another gateway is using the write-ahead log in {self.directory}: "
                           "give each gateway its own --wal-dir") from None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # where replay goes on from, and where a restart would: at most a second behind
        self.checkpoint = self.saved = self._read_checkpoint()
        self.saved_at, self.checkpoints_written = time.monotonic(), 0
        self.pending, self.pending_bytes = 0, 0
        # group commit: records appended, records fsync'd, whether an fsync is under way
        self._written = self._synced = 0
        self._syncing = False
        # (start, number, record) of the records written since opening and not yet
        # acknowledged, while all of them are here (`_remembering`)
        self._memory: deque[tuple[Position, int, WalRecord]] = deque()
        self._remembering = True
        self._recover()
        self._open_active()

    # -- opening ------------------------------------------------------------------------------

    def _segment_path(self, segment: int) -> Path:
        return self.directory / f"{segment:020d}.wal"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.wal") if p.stem.isdigit())

    def _read_checkpoint(self) -> Position:
        try:
            data = json.loads((self.directory / "checkpoint.json").read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except FileNotFoundError:
            return Position(0, 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise WalError(f"{self.directory / 'checkpoint.json'} is damaged ({exc}): move it "
                           "away to replay every record in the log again") from exc

    def _recover(self) -> None:
        """Delete segments before the checkpoint, cut a torn last record (a crash during an
        append, never answered 202) and count what is waiting."""
        segments = self._segments()
        for segment in segments:
            if segment < self.checkpoint.segment:
                self._segment_path(segment).unlink()
        segments = [s for s in segments if s >= self.checkpoint.segment]
        self._active_id = segments[-1] if segments else self.checkpoint.segment
        for segment in segments:
            start = self.checkpoint.offset if segment == self.checkpoint.segment else 0
            count, valid_end = 0, start
            for record in self._scan(segment, start):
                count, valid_end = count + 1, record.end.offset
            path = self._segment_path(segment)
            if path.stat().st_size > valid_end:
                log.warning("write-ahead log %s: dropping a torn record at offset %d", path,
                            valid_end)
                os.truncate(path, valid_end)
            self.pending += count
            self.pending_bytes += valid_end - start
        if self.pending:
            log.info("write-ahead log %s: %d records to replay", self.directory, self.pending)

    def _scan(self, segment: int, offset: int, limit: int | None = None):
        """Records of one segment from `offset`, stopping at the first incomplete one."""
        try:
            handle = open(self._segment_path(segment), "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with handle:
            handle.seek(offset)
            while limit is None or limit > 0:
                head = handle.read(FRAME.size)
                if len(head) < FRAME.size:
                    return
                length, crc = FRAME.unpack(head)
                payload = handle.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    return
                offset += FRAME.size + length
                yield WalRecord.decode(payload, Position(segment, offset))
                if limit is not None:
                    limit -= 1

    # -- writing --------------------------------------------------------------------------------

    def append(self, record: WalRecord) -> Position:
        """Write one record and return once it is on disk (where it ends); raises WalFull
        when the log is at its limit."""
        end, number = self.write(record)
        self.sync(number)
        return end

    @property
    def synced(self) -> int:
        """How many of the records written since opening are on disk."""
        return self._synced

    def write(self, record: WalRecord) -> tuple[Position, int]:
        """Write one record without waiting for the disk: where it ends and its number,
        for `sync`; raises WalFull when the log is at its limit."""
        data = record.encode()
        with self._lock:
            if self.pending_bytes + len(data) > self.max_bytes:
                raise WalFull(
                    f"the gateway's write-ahead log is full ({self.pending} requests, "
                    f"{self.pending_bytes} bytes waiting for the broker, limit "
                    f"{self.max_bytes}): the broker has been unreachable; try again later, "
                    "or raise --wal-max-bytes")
            while self._active_size >= self.segment_bytes:
                if self._syncing:
                    self._changed.wait()
                    continue
                self._start_segment()
            start = Position(self._active_id, self._active_size)
            self._unwritten.append(data)  # the fsync's caller writes it to the file
            self._active_size += len(data)
            end = Position(self._active_id, self._active_size)
            self._written += 1
            self.pending += 1
            self.pending_bytes += len(data)
            if self._remembering:
                if len(self._memory) < MEMORY_RECORDS and self.pending_bytes <= MEMORY_BYTES:
                    record.end = end
                    self._memory.append((start, self._written, record))
                else:  # the broker is away: replay from the disk until it drained
                    self._memory.clear()
                    self._remembering = False
            return end, self._written

    def sync(self, number: int) -> None:
        """Return once record `number` (from `write`) is on disk.

        Group commit: the first caller to find its record unsynced fsyncs the segment for
        every record written so far, and callers that wrote meanwhile wait for that fsync
        (or the next) instead of each paying for their own.
        """
        with self._lock:
            while self._synced < number:
                if self._syncing:
                    self._changed.wait()
                    continue
                self._sync_active()

    def _sync_active(self) -> None:
        """Write and fsync the active segment for every record written so far, with the
        lock released so that others can write meanwhile (`write` only appends to a list:
        the event loop makes no system call); called holding the lock."""
        chunks, self._unwritten = self._unwritten, []
        self._syncing, upto, fd = True, self._written, self._active.fileno()
        self._lock.release()
        written = False
        try:
            self._write_out(chunks)
            written = True
            self._fsync(fd)
        finally:
            self._lock.acquire()
            if not written:  # the file was cut back: they go with the next sync
                self._unwritten[:0] = chunks
            self._syncing = False
            self._changed.notify_all()
        self._synced = max(self._synced, upto)

    def _start_segment(self) -> None:
        """Called holding the lock with no fsync under way (a caller that waited for one
        checks again why it rotates: others appended meanwhile); records written to the old
        segment are synced first."""
        if self._synced < self._written:
            self._write_out(self._unwritten)
            self._unwritten = []
            self._fsync(self._active.fileno())
            self._synced = self._written
        self._active.close()
        self._active_id += 1
        self._open_active()
        self._sync_directory()

    def _open_active(self) -> None:
        self._active = open(self._segment_path(self._active_id), "ab", buffering=0)  # noqa: SIM115
        # bytes in the file, and with the records written but not yet in it (`_unwritten`)
        self._file_size = self._active_size = os.fstat(self._active.fileno()).st_size
        self._unwritten: list[bytes] = []

    def _write_out(self, chunks: list[bytes]) -> None:
        """Append `chunks` to the active segment, all of them (a write may be partial). A
        failed write (a full disk) is cut back off the file, so the positions `write`
        gave stay where the records will be."""
        data = b"".join(chunks)
        view = memoryview(data)
        try:
            while view:
                view = view[self._active.write(view):]
        except OSError:
            os.ftruncate(self._active.fileno(), self._file_size)
            raise
        self._file_size += len(data)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- replaying -----------------------------------------------------------------------------

    def wait_pending(self, max_records: int, timeout: float) -> list[WalRecord]:
        """Up to `max_records` records after the checkpoint, in order; waits up to `timeout`
        seconds for one to be synced when there are none (only synced ones are flushed to
        the segment this reads)."""
        with self._lock:
            if self.pending <= self._written - self._synced:
                self._changed.wait(timeout)
                self._save_checkpoint_if_due()
            position = self.checkpoint
            active = self._active_id
            if self._memory and self._memory[0][0] == position:
                return [record for _, number, record in islice(self._memory, max_records)
                        if number <= self._synced]
        records: list[WalRecord] = []
        while len(records) < max_records:
            batch = list(self._scan(position.segment, position.offset,
                                    max_records - len(records)))
            records += batch
            if batch:
                position = batch[-1].end
            elif position.segment < active:
                position = Position(position.segment + 1, 0)
            else:
                break
        return records

    def acknowledge(self, records: list[WalRecord]) -> None:
        """The broker has these records (the first ones after the checkpoint): move the
        checkpoint past them; when nothing is left waiting and the segment has grown past
        `rotate_bytes`, start an empty one so the drained one can be deleted. The checkpoint
        reaches the disk at most once per `checkpoint_seconds`, or when it moves to another
        segment."""
        if not records:
            return
        with self._lock:
            end = records[-1].end
            self.pending -= len(records)
            self.pending_bytes = max(0, self.pending_bytes - self._span(self.checkpoint, end))
            while self.pending == 0 and self._active_size >= self.rotate_bytes:
                if self._syncing:  # appends may come meanwhile: then the segment stays
                    self._changed.wait()
                    continue
                self._start_segment()
                end = Position(self._active_id, 0)
            self.checkpoint = end
            memory, upto = self._memory, (end.segment, end.offset)
            while memory and (memory[0][2].end.segment, memory[0][2].end.offset) <= upto:
                memory.popleft()
            if self.pending == 0 and not self._remembering:
                self._memory.clear()
                self._remembering = True
            # a new segment is saved at once, so the drained ones go (rare: one per MiB)
            self._save_checkpoint_if_due(force=end.segment != self.saved.segment)

    def _save_checkpoint_if_due(self, force: bool = False) -> None:
        """Called holding the lock."""
        if self.checkpoint == self.saved or not force and (
                time.monotonic() - self.saved_at < self.checkpoint_seconds):
            return
        self._write_checkpoint(self.checkpoint)
        for segment in self._segments():
            if segment < self.saved.segment:
                self._segment_path(segment).unlink(missing_ok=True)

    def _span(self, start: Position, end: Position) -> int:
        if start.segment == end.segment:
            return end.offset - start.offset
        first = self._segment_path(start.segment)
        size = first.stat().st_size if first.exists() else start.offset
        middle = sum(self._segment_path(s).stat().st_size for s in self._segments()
                     if start.segment < s < end.segment)
        return size - start.offset + middle + end.offset

    def _write_checkpoint(self, position: Position) -> None:
        temporary = self.directory / "checkpoint.json.tmp"
        with open(temporary, "w") as handle:
            json.dump({"segment": position.segment, "offset": position.offset}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / "checkpoint.json")
        self._sync_directory()
        self.saved, self.saved_at = position, time.monotonic()
        self.checkpoints_written += 1

    def close(self) -> None:
        with self._lock:
            self._changed.notify_all()
            self._save_checkpoint_if_due(force=True)
            self._write_out(self._unwritten)  # not synced: never answered 202
            self._unwritten = []
            self._active.close()
            self._lock_file.close()


class WalReplayer:
    """A thread that produces the log's records to Kafka in order, retrying with backoff
    while the broker is unreachable; it logs one line when the broker goes and comes back."""

    def __init__(self, wal: WriteAheadLog, bootstrap_servers: str, batch_size: int = 200,
                 max_backoff: float = 5.0):
        self.wal, self.bootstrap_servers = wal, bootstrap_servers
        self.batch_size = batch_size
        self.backoff = Backoff(0.1, max_backoff)
        self.stopping = threading.Event()
        self.drain_deadline = 0.0
        self.producer: Any = None
        self._failure: BaseException | None = None  # of a send of the batch under way
        self.thread = threading.Thread(target=self._run, daemon=True, name="algorail-wal")

    def start(self) -> WalReplayer:
        self.thread.start()
        return self

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Give waiting records `drain_seconds` to reach the broker, then stop; what is
        left is replayed when the gateway starts again."""
        self.drain_deadline = time.monotonic() + drain_seconds
        self.stopping.set()
        self.thread.join(drain_seconds + 20)
        self._close_producer()

    def _run(self) -> None:
        waits = self.backoff.delays()
        failing = False
        while True:
            if self.stopping.is_set() and (failing or not self.wal.pending
                                           or time.monotonic() > self.drain_deadline):
                return
            records = self.wal.wait_pending(self.batch_size, timeout=0.5)
            if not records:
                continue
            try:
                self._produce(records)
            except Exception as exc:  # the broker is down or lost the topic: retry later
                self._close_producer()
                if not failing:
                    log.warning("broker unreachable (%s); %d requests wait in the write-ahead "
                                "log, retrying with backoff", exc, self.wal.pending)
                failing = True
                self.stopping.wait(next(waits))
                continue
            self.wal.acknowledge(records)
            if failing:
                log.info("broker reachable again; replaying the write-ahead log")
                waits = self.backoff.delays()
            failing = False

    def _produce(self, records: list[WalRecord]) -> None:
        """Send a batch and return once the broker has all of it; raise if it has not.

        The producer reports failed sends only, served on this thread by its flush: a
        producer with futures served its reports on a thread of its own, so its
        flush saw the last one only at its next 10 ms look (a batch took 10 ms however
        quick the broker, and records waited for it), and each report took the
        interpreter lock from the event loop."""
        if self.producer is None:
            from algorail.runtime import kafka_io

            self.producer = kafka_io.make_producer(
                self.bootstrap_servers, on_error=self._failed, linger_ms=0,
                bootstrap_timeout_ms=2000, max_block_ms=5000, request_timeout_ms=5000,
                delivery_timeout_ms=10_000)
        self._failure = None
        for r in records:
            self.producer.send(r.topic, key=r.key, value=r.value, headers=r.headers)
        self.producer.flush(timeout=15)
        if self._failure is not None:
            raise self._failure

    def _failed(self, exc: BaseException) -> None:
        self._failure = self._failure or exc

    def _close_producer(self) -> None:
        """Closed without waiting, so records it still holds are dropped rather than sent
        later beside their replay."""
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:  # closing a producer whose broker is gone
                log.debug("closing the replay producer: %s", exc)


class WalSender:
    """The gateway's sender when the log is on: a request is safe once it is logged, and
    the replayer takes it to the broker.

    Records are written from the event loop into the log's memory (no system call); one
    write to the file and fsync at a time runs in a worker thread and every request written
    before it started waits for that one, so concurrent requests share them however few
    worker threads there are."""

    def __init__(self, wal: WriteAheadLog):
        self.wal = wal
        self._syncing: Any = None  # the fsync under way (an asyncio future)

    async def send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        import asyncio

        from algorail.runtime.codec import RUN_ID

        run_id = dict(headers).get(RUN_ID, b"").decode()
        _, number = self.wal.write(WalRecord(run_id, topic, value, headers))
        while self.wal.synced < number:
            if self._syncing is None or self._syncing.done():
                self._syncing = asyncio.ensure_future(
                    asyncio.to_thread(self.wal.sync, number))
            await asyncio.shield(self._syncing)
