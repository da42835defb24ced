"""`algorail replay`: send dead letters back to their component, or a run again as new.

Dead letters of an algo or a data sink go back to the input topic they were read from
(found from the plan by their ``algorail-source`` header), with the original run id and
an ``algorail-attempt`` header one higher. A run is left alone, unless forced, when the
component already wrote output for it (the original or an earlier replay got through),
an earlier replay of it is still on its way, or the results store shows it complete.
Hooks record their outcome once per run, so their dead letters are not replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from algorail.ops.records import ATTEMPT, Message, OpsError, Window, describe, scan
from algorail.plan import Plan
from algorail.runtime import codec, kafka_io, tracing
from algorail.runtime.dedup import ORIGIN
from algorail.runtime.results import COMPLETE

DROPPED_HEADERS = {codec.ERROR, ORIGIN, ATTEMPT}


@dataclass
class Resend:
    """One message to send, and why (or why not)."""

    topic: str
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    run_id: str
    original: Message
    skip_reason: str | None = None

    @property
    def attempt(self) -> int:
        return int(dict(self.headers).get(ATTEMPT, b"1"))


def _component(plan: Plan, name: str) -> tuple[Any, list[Any], list[str]]:
    """(plan entry, inputs, output topics) of an algo or data sink."""
    for runner in plan.runners:
        if runner.component == name:
            return runner, runner.inputs, list(runner.outputs.values())
    for connector in plan.connectors:
        if connector.name == name and connector.kind == "sink":
            return connector, connector.inputs, []
    if any(h.name == name for h in plan.hooks):
        raise OpsError(f"{name!r} is a hook: a hook records one outcome per run, so its dead "
                       "letters cannot be replayed; resend the run with --run RUN_ID --as-new")
    known = ", ".join([r.component for r in plan.runners]
                      + [c.name for c in plan.connectors if c.kind == "sink"]) or "none"
    raise OpsError(f"no algo or data sink named {name!r} in this plan (they are: {known})")


def plan_dead_letters(plan: Plan, bootstrap_servers: str, component: str, *,
                      run_id: str | None = None, window: Window | None = None,
                      force: bool = False, view: Callable[[str], dict | None] | None = None
                      ) -> list[Resend]:
    """What replaying `component`'s dead letters would send, each marked when skipped."""
    entry, inputs, outputs = _component(plan, component)
    window = window or Window()
    letters = [describe(r, plan) for r in scan(bootstrap_servers, [entry.dead_letter_topic],
                                               window)]
    letters = [m for m in letters if run_id is None or m.run_id == run_id]
    topics = {i.source: i.topic for i in inputs}
    resends = []
    for letter in letters:
        topic = topics.get(letter.headers.get(codec.SOURCE, ""))
        if topic is None:
            raise OpsError(f"dead letter {letter.topic}[{letter.partition}]@{letter.offset} "
                           f"came from {letter.headers.get(codec.SOURCE)!r}, which is not an "
                           f"input of {component} in this plan")
        attempt = int(letter.headers.get(ATTEMPT, "1")) + 1
        headers = [(k, v.encode()) for k, v in letter.headers.items()
                   if k not in DROPPED_HEADERS and k != codec.TRACEPARENT]
        headers += [(codec.TRACEPARENT,
                     tracing.child_traceparent(letter.headers.get(codec.TRACEPARENT, ""))
                     .encode()), (ATTEMPT, str(attempt).encode())]
        resends.append(Resend(topic, letter.value, letter.key, headers, letter.run_id, letter))
    if not force:  # what got through is looked for over the whole retained window
        _mark_done(bootstrap_servers, resends, outputs, Window(max_records=window.max_records),
                   view)
    return resends


def plan_as_new(plan: Plan, bootstrap_servers: str, run_id: str, *,
                window: Window | None = None) -> list[Resend]:
    """The run's endpoint message(s), to send again under one new run id."""
    endpoint_topics = [r.topic for r in plan.routes]
    found = [describe(r, plan) for r in scan(bootstrap_servers, endpoint_topics,
                                             window or Window())]
    found = [m for m in found if m.run_id == run_id]
    if not found:
        raise OpsError(f"no endpoint message of run {run_id} in the window scanned: widen it "
                       "with --since")
    new_run = codec.new_run_id()
    resends = []
    for message in found:
        envelope = codec.Envelope(
            new_run, message.headers.get(codec.DEPLOYMENT, plan.deployment),
            message.headers.get(codec.SOURCE, ""), message.content_type or
            "application/json", extra={ATTEMPT: "1", "algorail-replay-of": run_id})
        resends.append(Resend(message.topic, message.value, message.key,
                              envelope.to_headers(), new_run, message))
    return resends


def _mark_done(bootstrap_servers: str, resends: list[Resend], outputs: list[str],
               window: Window, view: Callable[[str], dict | None] | None) -> None:
    runs = {r.run_id for r in resends}
    wrote, replayed = set(), {}
    topics = outputs + sorted({r.topic for r in resends})
    for record in scan(bootstrap_servers, topics, window):
        headers = codec.header_dict(record.headers)
        run = headers.get(codec.RUN_ID)
        if run not in runs:
            continue
        if record.topic in outputs:
            wrote.add(run)
        elif ATTEMPT in headers:
            replayed[run] = max(replayed.get(run, 0), int(headers[ATTEMPT]))
    for resend in resends:
        if resend.run_id in wrote:
            resend.skip_reason = "the component already wrote output for this run"
        elif replayed.get(resend.run_id, 0) >= resend.attempt:
            resend.skip_reason = "already replayed (attempt " \
                                 f"{replayed[resend.run_id]} is on its way)"
        elif view is not None and (view(resend.run_id) or {}).get("status") == COMPLETE:
            resend.skip_reason = "the results store shows the run complete"


def send(bootstrap_servers: str, resends: list[Resend]) -> int:
    """Send what is not skipped, waiting for the broker's acknowledgements."""
    todo = [r for r in resends if r.skip_reason is None]
    if not todo:
        return 0
    producer = kafka_io.make_producer(bootstrap_servers)
    try:
        futures = [producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
                   for r in todo]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=5)
    return len(todo)
