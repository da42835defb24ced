"""`algorail inspect RUN_ID`: every message of one run, in order, and its critical path.

The run's messages are found by scanning the pipeline's topics over a bounded window
(the last hour by default, at most `Window.max_records` per partition) for the run id
header. A results store view (the gateway's ``GET .../runs/{runId}``, or Redis) adds the
hooks' outcomes and errors, and the input positions in its error reports narrow the
window to the time of the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from algorail.ops.records import Message, OpsError, Window, describe, scan
from algorail.plan import Plan
from algorail.runtime import codec, tracing

ANCHOR_MARGIN_MS = 10 * 60 * 1000  # around a known message of the run


@dataclass
class Hop:
    message: Message
    since_start_ms: int
    since_previous_ms: int

    def to_dict(self, full_payload: bool = False) -> dict[str, Any]:
        return {**self.message.to_dict(full_payload), "sinceStartMs": self.since_start_ms,
                "sincePreviousMs": self.since_previous_ms}


@dataclass
class RunReport:
    run_id: str
    hops: list[Hop]
    critical_path: list[Hop]
    trace_id: str | None = None
    view: dict[str, Any] | None = None  # the results store's view of the run, when known
    scanned: int = 0
    notes: list[str] = field(default_factory=list)

    def step_ms(self) -> list[int]:
        """Milliseconds each step of the critical path took (0 for the first)."""
        stamps = [h.message.timestamp for h in self.critical_path]
        return [later - earlier for earlier, later in itertools.pairwise(stamps[:1] + stamps)]

    def to_dict(self, full_payload: bool = False) -> dict[str, Any]:
        return {
            "runId": self.run_id, "traceId": self.trace_id,
            "status": (self.view or {}).get("status"),
            "hooks": (self.view or {}).get("hooks", {}),
            "hops": [h.to_dict(full_payload) for h in self.hops],
            "criticalPath": [{"pipe": h.message.pipe, "ms": ms}
                             for h, ms in zip(self.critical_path, self.step_ms(), strict=True)],
            "scanned": self.scanned,
        }


def topic_ranks(plan: Plan) -> dict[str, int]:
    """How many hops from an endpoint each topic is: breaks ties between messages that
    share a millisecond, so the order is the pipeline's."""
    rank = {r.topic: 0 for r in plan.routes}
    rank.update({t.name: 0 for t in plan.topics if t.role == "external"})
    for connector in plan.connectors:
        rank.update({topic: 0 for topic in connector.outputs.values()})
    for _ in plan.runners:  # longest path, at most one pass per runner
        for runner in plan.runners:
            depth = max((rank.get(i.topic, 0) for i in [*runner.inputs, *runner.triggers]),
                        default=0) + 1
            for topic in [*runner.outputs.values(), runner.dead_letter_topic]:
                rank[topic] = max(rank.get(topic, 0), depth)
    last = max(rank.values(), default=0) + 1
    for topic in plan.topics:
        rank.setdefault(topic.name, last)
    return rank


def inspect_run(plan: Plan, bootstrap_servers: str, run_id: str, *,
                view: dict[str, Any] | None = None, window: Window | None = None,
                progress: Callable[[int, int], None] | None = None) -> RunReport:
    """Find every message of `run_id` on the plan's topics and order them."""
    window = window or Window()
    anchor = _anchor_ms(bootstrap_servers, view)
    if anchor is not None and window.since_ms is None:
        window = Window(since_ms=anchor - ANCHOR_MARGIN_MS, max_records=window.max_records)
    found: list[Message] = []
    scanned = 0
    for record in scan(bootstrap_servers, plan.topic_names(), window, progress):
        scanned += 1
        for key, value in record.headers or ():
            if key == codec.RUN_ID:
                if value.decode("utf-8", "replace") == run_id:
                    found.append(describe(record, plan))
                break
    if not found and view is None:
        raise OpsError(f"no message of run {run_id} in the window scanned ({scanned} "
                       "records): widen it with --since, or check the run id")
    rank = topic_ranks(plan)
    found.sort(key=lambda m: (m.timestamp, rank.get(m.topic, 0), m.topic, m.offset))
    start = found[0].timestamp if found else 0
    hops, previous = [], start
    for message in found:
        hops.append(Hop(message, message.timestamp - start, message.timestamp - previous))
        previous = message.timestamp
    trace = next((tracing.trace_id(h.message.headers.get(codec.TRACEPARENT, ""))
                  for h in hops), None)
    return RunReport(run_id, hops, critical_path(plan, hops), trace, view, scanned)


def critical_path(plan: Plan, hops: list[Hop]) -> list[Hop]:
    """From the run's last message back to its first: at each step the input that arrived
    last before the component wrote (the one the run waited for)."""
    if not hops:
        return []
    inputs = {r.component: [i.topic for i in [*r.inputs, *r.triggers]] for r in plan.runners}
    inputs.update({h.name: [i.topic for i in h.inputs] for h in plan.hooks})
    inputs.update({c.name: [i.topic for i in c.inputs] for c in plan.connectors})
    path = [hops[-1]]
    while True:
        current = path[-1].message
        sources = inputs.get(current.component, [])
        earlier = [h for h in hops if h.message.topic in sources
                   and h.message.timestamp <= current.timestamp and h not in path]
        if not earlier:
            return list(reversed(path))
        path.append(max(earlier, key=lambda h: (h.message.timestamp, h.message.offset)))


def _anchor_ms(bootstrap_servers: str, view: dict[str, Any] | None) -> int | None:
    """The time of an input the results store's error reports point at, if any."""
    from algorail.runtime import kafka_io

    positions = {}
    for error in (view or {}).get("errors", []):
        if isinstance(error.get("offset"), int) and error.get("topic"):
            tp = kafka_io.TopicPartition(error["topic"], error.get("partition", 0))
            positions[tp] = error["offset"]
    if not positions:
        return None
    stamps = kafka_io.first_timestamps(bootstrap_servers, positions)
    return min(stamps.values()) if stamps else None


def fetch_view(run_id: str, plan: Plan, gateway_url: str | None = None,
               results_url: str | None = None) -> dict[str, Any] | None:
    """The run as the results store shows it: through the gateway (dev mode or a cluster's
    gateway), or straight from Redis; None when neither is given or the run is unknown."""
    if gateway_url:
        import httpx

        url = f"{gateway_url.rstrip('/')}{plan.runs_url}/{run_id}"
        try:
            response = httpx.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise OpsError(f"cannot reach the gateway at {gateway_url}: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise OpsError(f"the gateway answered {response.status_code} for {url}: "
                           f"{response.text[:200]}")
        return response.json()
    if results_url:
        from algorail.runtime.results import open_results_store, run_view

        store = open_results_store(results_url)
        try:
            record = store.get(run_id)
        finally:
            store.close()
        hooks = sorted({h for r in plan.routes for h in r.hooks})
        return run_view(run_id, record, hooks) if record is not None else None
    return None
