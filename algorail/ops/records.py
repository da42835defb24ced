"""Reading a pipeline's topics as an outsider: no consumer group, bounded, and each record
described in the plan's terms (which component and port wrote it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from algorail.errors import AlgorailError
from algorail.plan import Plan
from algorail.runtime import codec, kafka_io

PREVIEW_CHARS = 120
ATTEMPT = "algorail-attempt"  # how many times `algorail replay` re-sent this message


class OpsError(AlgorailError):
    pass


@dataclass
class Message:
    """One record of a pipeline topic, as the ops commands show it."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch, as the producer stamped it
    component: str
    port: str
    run_id: str
    size: int
    content_type: str
    skip: bool = False
    error: str | None = None
    dead_letter: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    value: bytes = b""
    key: bytes | None = None

    def payload(self) -> Any:
        """The value as a person reads it (`codec.readable`)."""
        return codec.readable(self.value, self.content_type)

    def preview(self, limit: int = PREVIEW_CHARS) -> str:
        if self.skip:
            return "(skip marker)"
        payload = self.payload()
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    @property
    def pipe(self) -> str:
        return f"{self.component}.{self.port}"

    def to_dict(self, full_payload: bool = False) -> dict[str, Any]:
        data = asdict(self)
        del data["value"], data["key"]
        data["payload"] = self.payload() if full_payload else self.preview()
        return data


def describe(record: Any, plan: Plan) -> Message:
    """A Kafka record as a `Message`: the component and port are the plan's owner of the
    topic (for an error report, the component that reported it)."""
    headers = codec.header_dict(record.headers)
    topic = _topic_plan(plan, record.topic)
    role = topic.role if topic else "external"
    component, port = (topic.component or "", topic.port or "") if topic else ("", "")
    error = headers.get(codec.ERROR)
    if role == "error":
        component, _, port = headers.get(codec.SOURCE, "").rpartition(".")
        try:
            error = json.loads(record.value).get("error")
        except (ValueError, AttributeError):
            error = (record.value or b"").decode("utf-8", "replace")
    elif role == "dead-letter":
        port = "dead-letter"
    elif not component:
        component, _, port = headers.get(codec.SOURCE, record.topic).rpartition(".")
    value = record.value or b""
    return Message(
        topic=record.topic, partition=record.partition, offset=record.offset,
        timestamp=record.timestamp, component=component or record.topic, port=port,
        run_id=headers.get(codec.RUN_ID, ""), size=len(value),
        content_type=headers.get(codec.CONTENT_TYPE, ""),
        skip=headers.get(codec.SKIP) == "1", error=error,
        dead_letter=role == "dead-letter", headers=headers, value=value, key=record.key)


def _topic_plan(plan: Plan, name: str) -> Any:
    for topic in plan.topics:
        if topic.name == name:
            return topic
    return None


def high_watermarks(consumer: Any, tps: list[Any], timeout: float = 10.0) -> dict[Any, int]:
    """The end offset of each partition, from fetch responses: the embedded broker's
    ListOffsets answer can be short, so the fetch starts one record before it (on Kafka
    that reads one record per partition). Moves the consumer's positions. (No pausing:
    kafka-python then loses track of a partition that is sought afterwards.)"""
    consumer.assign(tps)
    for tp, end in consumer.end_offsets(tps).items():
        consumer.seek(tp, max(end - 1, 0))
    found: dict[Any, int] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(tps) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100, max_records=1)
        found.update({tp: hw for tp in tps if (hw := consumer.highwater(tp)) is not None})
    return found


@dataclass
class Window:
    """Where a scan starts: the beginning, a time (ms), or the last `last` records per
    partition; and how many records per partition it reads at most."""

    since_ms: int | None = None
    last: int | None = None
    max_records: int = 100_000


def open_reader(bootstrap_servers: str) -> Any:
    """A consumer with no group: it never commits, so the pipeline's offsets stay put."""
    return kafka_io.make_consumer(bootstrap_servers, group_id=None, enable_auto_commit=False,
                                  fetch_max_wait_ms=100)


def position(consumer: Any, tps: list[Any], window: Window) -> dict[Any, tuple[int, int]]:
    """Seek each partition to the window's start; returns {tp: (start, end)}."""
    ends = high_watermarks(consumer, tps)
    starts = {tp: 0 for tp in tps}
    if window.since_ms is not None:
        for tp, hit in consumer.offsets_for_times({tp: window.since_ms for tp in tps}).items():
            starts[tp] = hit.offset if hit is not None else ends.get(tp, 0)
    elif window.last is not None:
        starts = {tp: max(ends.get(tp, 0) - window.last, 0) for tp in tps}
    for tp in tps:
        starts[tp] = max(starts[tp], ends.get(tp, 0) - window.max_records)
        consumer.seek(tp, starts[tp])
    return {tp: (starts[tp], ends.get(tp, starts[tp])) for tp in tps}


def scan(bootstrap_servers: str, topics: Iterable[str], window: Window,
         progress: Callable[[int, int], None] | None = None, timeout: float = 60.0
         ) -> Iterator[Any]:
    """Every record of `topics` in the window, up to the end offsets seen at the start;
    `progress(done, total)` after each batch. Records older than the window's start are
    read past (a broker may answer a time lookup with an earlier offset, as the embedded
    one does) but not yielded."""
    consumer = open_reader(bootstrap_servers)
    try:
        tps = kafka_io.partitions_of(consumer, topics)
        if not tps:
            return
        bounds = position(consumer, tps, window)
        total = sum(end - start for start, end in bounds.values())
        remaining = {tp for tp, (start, end) in bounds.items() if end > start}
        done = 0
        deadline = time.monotonic() + timeout
        if progress:
            progress(0, total)
        while remaining and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200, max_records=2000).items():
                end = bounds[tp][1]
                for record in records:
                    if record.offset < end:
                        done += 1
                        if window.since_ms is None or record.timestamp >= window.since_ms:
                            yield record
                if records and records[-1].offset + 1 >= end:
                    remaining.discard(tp)
            for tp in list(remaining):
                if consumer.position(tp) >= bounds[tp][1]:
                    remaining.discard(tp)
            if progress:
                progress(done, total)
        if remaining:
            raise OpsError(f"stopped reading after {timeout:.0f}s with {total - done} records "
                           "of the window unread: narrow it with --since")
    finally:
        kafka_io.close_consumer(consumer)


def since_ms(text: str | None) -> int | None:
    """`10m`, `2h`, `30s`, `1d` ago, in ms since the epoch; None for None."""
    if not text:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise OpsError(f"--since takes a duration like 30s, 10m, 2h or 1d, not {text!r}")
    return int((time.time() - float(number) * units[unit]) * 1000)
