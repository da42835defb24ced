"""`algorail status`: every component's state, rates, lag and recent errors, from Kafka.

Everything comes from the broker, so it works the same for dev mode and a cluster:
committed offsets of each component's consumer group against the end offsets of its
input topics (lag), two samples of end offsets and commits `interval` seconds apart
(messages in and out per second; at least STALL_SECONDS apart when a component looks
stalled), the error and dead-letter topics of the last five
minutes, and the group's members (replicas) where the broker describes groups.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from algorail.ops.records import Window, describe, high_watermarks, open_reader, scan
from algorail.plan import Plan
from algorail.runtime import kafka_io
from algorail.runtime.delivery import COMMIT_SECONDS

RECENT_MS = 5 * 60 * 1000
# A delivery loop commits every COMMIT_SECONDS, so a component is called stalled only
# when it committed nothing for longer than that.
STALL_SECONDS = 2 * COMMIT_SECONDS

DOWN, STALLED, CATCHING_UP, RUNNING, UP_TO_DATE = (
    "down", "stalled", "catching up", "running", "up to date")


@dataclass
class ComponentStatus:
    name: str
    kind: str
    state: str
    replicas: str
    in_per_s: float | None
    out_per_s: float | None
    lag: int | None
    errors: int = 0
    dead_letters: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PipelineStatus:
    components: list[ComponentStatus]
    topic_rates: dict[str, float] = field(default_factory=dict)  # messages/s per topic

    def to_dict(self) -> dict[str, Any]:
        return {"components": [c.to_dict() for c in self.components],
                "topicRates": self.topic_rates}

    def component(self, name: str) -> ComponentStatus:
        return next(c for c in self.components if c.name == name)


@dataclass
class _Consumer:
    """A component that reads: its group and input topics."""

    name: str
    kind: str
    group: str
    inputs: list[str]
    outputs: list[str]
    replicas: int
    dead_letter_topic: str


def _consumers(plan: Plan) -> list[_Consumer]:
    items = [_Consumer(r.component, "algo", r.consumer_group,
                       [i.topic for i in [*r.inputs, *r.triggers]], list(r.outputs.values()),
                       r.replicas, r.dead_letter_topic) for r in plan.runners]
    for c in plan.connectors:
        inputs = [i.topic for i in c.inputs]
        items.append(_Consumer(c.name, f"data {c.kind}", c.consumer_group, inputs,
                               list(c.outputs.values()), 1, c.dead_letter_topic))
    items += [_Consumer(h.name, "hook", h.consumer_group, [i.topic for i in h.inputs],
                        [h.publish_topic] if h.publish_topic else [], 1, h.dead_letter_topic)
              for h in plan.hooks]
    return items


def pipeline_status(plan: Plan, bootstrap_servers: str, interval: float = 1.0
                    ) -> PipelineStatus:
    consumers = _consumers(plan)
    reader = open_reader(bootstrap_servers)
    admin = kafka_io.make_admin(bootstrap_servers)
    try:
        tps = kafka_io.partitions_of(reader, plan.topic_names())

        def sample() -> tuple[dict[Any, int], dict[str, dict[Any, int]]]:
            """End offsets, then each component's committed offsets."""
            return (high_watermarks(reader, tps),
                    {c.name: _committed(admin, c.group) for c in consumers})

        ends_before, commits_before = sample()
        waiting = {c.name: _behind(c, ends_before, commits_before) for c in consumers}
        started = time.monotonic()
        time.sleep(interval)
        ends, commits = sample()
        if any(waiting[c.name] and commits[c.name] == commits_before[c.name]
               for c in consumers):
            # Too short a window to call that component stalled: sample again once
            # its next commit is due.
            time.sleep(max(started + STALL_SECONDS - time.monotonic(), 0.0))
            ends, commits = sample()
        elapsed = time.monotonic() - started
        members = _members(admin, [c.group for c in consumers])
    finally:
        kafka_io.close_consumer(reader)
        admin.close()
    rates: dict[str, float] = {}
    for tp, end in ends.items():
        rates[tp.topic] = rates.get(tp.topic, 0.0) + (end - ends_before.get(tp, end)) / elapsed
    errors, dead, last = _recent_failures(plan, bootstrap_servers, consumers)
    statuses = []
    for c in consumers:
        lag = _behind(c, ends, commits)
        consumed = sum(commits[c.name].values()) - sum(commits_before[c.name].values())
        count = members.get(c.group)
        statuses.append(ComponentStatus(
            name=c.name, kind=c.kind, state=_state(count, lag, waiting[c.name], consumed),
            replicas=f"{'?' if count is None else count}/{c.replicas}",
            in_per_s=round(consumed / elapsed, 2) if c.inputs else None,
            out_per_s=round(sum(rates.get(t, 0.0) for t in c.outputs), 2) if c.outputs
            else None,
            lag=lag if c.inputs else None, errors=errors.get(c.name, 0),
            dead_letters=dead.get(c.name, 0), last_error=last.get(c.name)))
    return PipelineStatus(statuses, {t: round(r, 2) for t, r in rates.items()})


def _behind(consumer: _Consumer, ends: dict[Any, int], commits: dict[str, dict[Any, int]]
            ) -> int:
    """Records of the consumer's inputs its group has not committed."""
    done = commits[consumer.name]
    return sum(max(end - done.get(tp, 0), 0) for tp, end in ends.items()
               if tp.topic in consumer.inputs)


def _state(members: int | None, lag: int, waiting: int, consumed: int) -> str:
    """`waiting`: the lag at the start of the window, which a live component commits
    within it; records that arrived during the window may not be committed yet."""
    if members == 0:
        return DOWN
    if waiting and not consumed:
        return STALLED
    if lag:
        return CATCHING_UP
    return RUNNING if members else UP_TO_DATE


def _committed(admin: Any, group: str) -> dict[Any, int]:
    try:
        return admin.group_offsets(group)
    except Exception:  # a group that never committed
        return {}


def _members(admin: Any, groups: list[str]) -> dict[str, int]:
    """Members per group; empty when the broker cannot describe groups (the embedded
    broker's answer does not parse)."""
    try:
        return admin.group_members(groups)
    except Exception:
        return {}


def _recent_failures(plan: Plan, bootstrap_servers: str, consumers: list[_Consumer]
                     ) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Errors and dead letters per component over the last five minutes, and the last
    error of each."""
    window = Window(since_ms=int(time.time() * 1000) - RECENT_MS, max_records=10_000)
    owner = {c.dead_letter_topic: c.name for c in consumers}
    errors: dict[str, int] = {}
    dead: dict[str, int] = {}
    last: dict[str, str] = {}
    for record in scan(bootstrap_servers, [plan.error_topic, *owner], window):
        message = describe(record, plan)
        if record.topic == plan.error_topic:
            errors[message.component] = errors.get(message.component, 0) + 1
            last[message.component] = message.error or ""
        else:
            name = owner[record.topic]
            dead[name] = dead.get(name, 0) + 1
            last.setdefault(name, message.error or "")
    return errors, dead, last
