"""A pipeline's runs as they happen: run summaries folded from the messages of its topics
(read as `algorail tail` reads them) and from the results store's view of each run (which
says when it is complete), streamed as Server-Sent Events; and one run's report, as
`algorail inspect` makes it. The registry serves them for its deployments and
`algorail dev` for its pipeline."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from algorail.ops.deployments import Deployment
from algorail.ops.records import Message, OpsError, Window

BACKLOG = 50  # messages per partition the stream starts with
HEARTBEAT_S = 10.0  # an SSE comment this often, so a gone client is noticed
VIEW_EVERY_S = 0.5  # how often pending runs are looked up in the results store
VIEW_FOR_S = 120.0  # a run with no new message for this long is no longer looked up
MAX_VIEWS = 20  # results store lookups per round
INSPECT_WINDOW_MS = 60 * 60 * 1000  # the last hour, as `algorail inspect` scans by default
NOTHING = object()  # no message arrived in a round


@dataclass
class RunSummary:
    """One run as the stream shows it."""

    run_id: str
    started_ms: int
    updated_ms: int
    first_seen: dict[str, int] = field(default_factory=dict)  # component -> ms
    messages: int = 0
    errors: list[str] = field(default_factory=list)
    status: str = "pending"  # pending | complete | failed, the results store's when known
    hooks: dict[str, str] = field(default_factory=dict)

    def add(self, message: Message) -> None:
        self.messages += 1
        self.started_ms = min(self.started_ms, message.timestamp)
        self.updated_ms = max(self.updated_ms, message.timestamp)
        seen = self.first_seen.get(message.component, message.timestamp)
        self.first_seen[message.component] = min(seen, message.timestamp)
        if message.error or message.dead_letter:
            self.errors.append(f"{message.component}: {message.error or 'dead letter'}")
            self.status = "failed"

    def see(self, view: dict[str, Any]) -> None:
        """Take the results store's status and hook outcomes."""
        self.status = view.get("status") or self.status
        self.hooks = dict(view.get("hooks") or {})
        for error in view.get("errors") or []:
            text = f"{error.get('component', '')}: {error.get('error', error)}".strip(": ")
            if text not in self.errors:
                self.errors.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {"runId": self.run_id, "status": self.status, "startedMs": self.started_ms,
                "updatedMs": self.updated_ms, "durationMs": self.updated_ms - self.started_ms,
                "components": sorted(self.first_seen, key=self.first_seen.__getitem__),
                "messages": self.messages,
                "errors": self.errors[-5:], "hooks": self.hooks}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def run_stream(deployment: Deployment, backlog: int = BACKLOG) -> AsyncIterator[str]:
    """SSE text: a `run` event each time a run's summary changes (starting with the runs
    of the last `backlog` messages per partition), a `problem` event (and the end) when
    the broker cannot be read. Ends when the client goes (the tail stops with it)."""
    from starlette.concurrency import run_in_threadpool

    from algorail.ops.inspect import fetch_view
    from algorail.ops.tail import tail

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Message | Exception | None] = asyncio.Queue()
    stop = threading.Event()
    plan = deployment.plan

    def read() -> None:
        try:
            for message in tail(plan, deployment.bootstrap_servers, plan.topic_names(),
                                window=Window(last=backlog), follow=True, stop=stop):
                loop.call_soon_threadsafe(queue.put_nowait, message)
        except Exception as exc:  # noqa: BLE001 - shown to the user as the stream's end
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    def look_up(run_id: str) -> dict[str, Any] | None:
        try:
            return fetch_view(run_id, plan, gateway_url=deployment.gateway_url)
        except OpsError:
            return None  # the gateway is busy or gone; the next round asks again

    runs: dict[str, RunSummary] = {}
    reader = threading.Thread(target=read, daemon=True, name="console-run-stream")
    reader.start()
    yield sse("ready", {"pipeline": f"{plan.owner}/{plan.pipeline}:{plan.version}",
                        "deployment": plan.deployment})
    last_beat = last_views = time.monotonic()
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), VIEW_EVERY_S)
            except TimeoutError:
                item = NOTHING
            if item is None:
                return
            if isinstance(item, Exception):
                yield sse("problem", {"error": f"cannot read the deployment's broker "
                                               f"{deployment.bootstrap_servers}: {item}"})
                return
            changed: set[str] = set()
            if isinstance(item, Message) and item.run_id:
                run = runs.setdefault(item.run_id, RunSummary(item.run_id, item.timestamp,
                                                              item.timestamp))
                run.add(item)
                changed.add(item.run_id)
            now = time.monotonic()
            if deployment.gateway_url and now - last_views >= VIEW_EVERY_S:
                last_views = now
                recent = time.time() * 1000 - VIEW_FOR_S * 1000
                pending = [r for r in runs.values()
                           if r.status == "pending" and r.updated_ms >= recent][-MAX_VIEWS:]
                for run in pending:
                    view = await run_in_threadpool(look_up, run.run_id)
                    if view and (view.get("status"), view.get("hooks")) != (run.status, run.hooks):
                        run.see(view)
                        changed.add(run.run_id)
            for run_id in changed:
                yield sse("run", runs[run_id].to_dict())
            if changed:
                last_beat = now
            elif now - last_beat >= HEARTBEAT_S:
                last_beat = now
                yield ": still here\n\n"
    finally:
        stop.set()


def run_report(deployment: Deployment, run_id: str) -> dict[str, Any]:
    """`algorail inspect RUN_ID --json` over the last hour, with the results store's
    errors and results; raises `OpsError` when the broker or gateway cannot be read."""
    from algorail.ops.inspect import fetch_view, inspect_run

    view = fetch_view(run_id, deployment.plan, gateway_url=deployment.gateway_url)
    report = inspect_run(deployment.plan, deployment.bootstrap_servers, run_id, view=view,
                         window=Window(since_ms=int(time.time() * 1000) - INSPECT_WINDOW_MS))
    return {**report.to_dict(), "errors": (view or {}).get("errors", []),
            "results": (view or {}).get("results", {})}


def run_stream_response(deployment: Deployment) -> Any:
    """`run_stream` as a Starlette response (unbuffered by proxies, never cached)."""
    from starlette.responses import StreamingResponse

    return StreamingResponse(run_stream(deployment), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})
