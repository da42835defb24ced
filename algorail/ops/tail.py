"""`algorail tail PIPE...`: the messages on some pipes as they pass, one line each.

A pipe is ``component.port`` (an endpoint's ``endpoint.path`` too), an endpoint URL path
(``/owner/deployment/path``) or a topic name. The consumer has no group: it assigns the
partitions and seeks, so the pipeline's offsets never move.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from algorail.ops.records import Message, OpsError, Window, describe, open_reader, position
from algorail.plan import Plan
from algorail.runtime import kafka_io

DEFAULT_LAST = 10


def resolve_pipes(plan: Plan, pipes: list[str]) -> list[str]:
    """The topic of each pipe, from the plan."""
    topics = []
    for pipe in pipes:
        topic = _resolve(plan, pipe)
        if topic is None:
            known = ", ".join(sorted(_pipe_names(plan)))
            raise OpsError(f"no pipe {pipe!r} in {plan.owner}/{plan.deployment}: give "
                           f"component.port, an endpoint path or a topic ({known})")
        topics.append(topic)
    return list(dict.fromkeys(topics))


def _pipe_names(plan: Plan) -> dict[str, str]:
    return {topic.pipe: topic.name for topic in plan.topics if topic.pipe}


def _resolve(plan: Plan, pipe: str) -> str | None:
    if pipe in plan.topic_names():
        return pipe
    for route in plan.routes:
        if pipe in (route.url, route.url.lstrip("/")):
            return route.topic
    return _pipe_names(plan).get(pipe)


def tail(plan: Plan, bootstrap_servers: str, topics: list[str], *,
         window: Window | None = None, follow: bool = False, run_id: str | None = None,
         stop: threading.Event | None = None, started: Callable[[], None] | None = None
         ) -> Iterator[Message]:
    """The messages of `topics` from the window's start (default: the last 10 per
    partition) to their end, then, with `follow`, every new one until `stop` is set."""
    window = window or Window(last=DEFAULT_LAST)
    stop = stop or threading.Event()
    consumer = open_reader(bootstrap_servers)
    try:
        tps = kafka_io.partitions_of(consumer, topics)
        if not tps:
            raise OpsError(f"none of {', '.join(topics)} exists on {bootstrap_servers}")
        ends = {tp: end for tp, (_, end) in position(consumer, tps, window).items()}
        if started:
            started()
        caught_up = False
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    message = describe(record, plan)
                    if run_id is None or message.run_id == run_id:
                        yield message
            if not follow:
                caught_up = caught_up or all(consumer.position(tp) >= end
                                             for tp, end in ends.items())
                if caught_up and not batch:
                    return
            elif not batch:
                time.sleep(0.05)
    finally:
        kafka_io.close_consumer(consumer)


def format_line(message: Message) -> str:
    """One line: time, pipe, topic[partition]@offset, run, size, type, headers, payload."""
    stamp = time.strftime("%H:%M:%S", time.localtime(message.timestamp / 1000))
    millis = message.timestamp % 1000
    flags = " SKIP" if message.skip else ""
    if message.error:
        flags += f" ERROR={message.error!r}"
    extra = {k: v for k, v in message.headers.items()
             if k not in ("algorail-run-id", "algorail-source", "content-type",
                          "algorail-skip", "algorail-error")}
    headers = " ".join(f"{k}={v}" for k, v in extra.items())
    return (f"{stamp}.{millis:03d} {message.pipe} {message.topic}[{message.partition}]@"
            f"{message.offset} run={message.run_id} {message.size}B "
            f"{message.content_type or '-'}{flags} {headers} {message.preview()}")


def as_json(message: Message) -> dict[str, Any]:
    return message.to_dict(full_payload=True)


MAX_LAST = 200


def last_messages(plan: Plan, bootstrap_servers: str, pipe: str | None = None,
                  last: int = DEFAULT_LAST) -> dict[str, Any]:
    """The last `last` messages per partition of one pipe (every pipe without one), as the
    consoles show them: each with its key, headers and payload preview, newest first; and
    the pipe names there are to pick from."""
    names = sorted(_pipe_names(plan))
    topics = resolve_pipes(plan, [pipe]) if pipe else [_pipe_names(plan)[n] for n in names]
    window = Window(last=max(1, min(last, MAX_LAST)))
    found = [{**m.to_dict(), "key": None if m.key is None else m.key.decode("utf-8", "replace")}
             for m in tail(plan, bootstrap_servers, topics, window=window)] if topics else []
    found.sort(key=lambda m: (m["timestamp"], m["offset"]), reverse=True)
    return {"pipes": names, "messages": found}
