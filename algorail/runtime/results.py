"""The results store: what each run produced, per hook, shared by hook dispatcher and gateway.

The hook dispatcher writes (hook outcomes, run errors); the gateway reads, and
a sync request sleeps in `wait` until the store wakes it: `MemoryResultsStore` (dev mode,
one process) sets asyncio events directly, `RedisResultsStore` (production) publishes the
run id on a Redis channel after every write. Every write is idempotent, so a message the
dispatcher sees twice (at-least-once delivery) records the same thing twice.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from algorail.errors import AlgorailError

PENDING, COMPLETE, FAILED = "pending", "complete", "failed"
DELIVERED, SKIPPED, DELIVERY_FAILED = "delivered", "skipped", "failed"


class ResultsStoreError(AlgorailError):
    pass


def run_view(run_id: str, record: dict[str, Any], expected: list[str] | None = None) -> dict:
    """The body of GET .../runs/{runId}: status is `failed` once an error is recorded,
    `complete` once every expected hook was delivered, skipped or failed. The hooks a run
    waits for are those given to `start_run`, else `expected` (a run that entered through
    a Kafka endpoint has no start record), else any one hook."""
    hooks = record.get("hooks", {})
    want = record.get("expected", expected)
    if record.get("errors"):
        status = FAILED
    elif all(h in hooks for h in want) if want is not None else bool(hooks):
        status = COMPLETE
    else:
        status = PENDING
    return {
        "runId": run_id,
        "status": status,
        "results": dict(record.get("results", {})),
        "hooks": {h: d["state"] for h, d in hooks.items()},
        "deliveries": dict(hooks),
        "errors": list(record.get("errors", {}).values()),
        **({"plan": record["plan"]} if record.get("plan") else {}),
    }


class ResultsStore:
    """The interface both stores implement. Records are plain dicts:
    ``{"expected": [hook], "plan": {version, hash}, "results": {hook: value},
    "hooks": {hook: delivery}, "errors": {key: error}}``."""

    blocking = True  # calls do network I/O: an event loop calls them from a worker thread

    def __init__(self) -> None:
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._waiters_lock = threading.Lock()

    def start_run(self, run_id: str, expected: list[str],
                  plan: dict[str, str] | None = None) -> None:
        """Note that a run began, which hooks complete it (the route's hooks) and the plan
        version it started on (`plans.plan_label`), which its view names."""
        self._set(run_id, {"expected": list(expected), **({"plan": plan} if plan else {})})

    def record_hook(self, run_id: str, hook: str, delivery: dict[str, Any],
                    result: Any = None) -> None:
        """Record a hook's outcome (`delivery["state"]`) and, when delivered, its result."""
        fields: dict[str, Any] = {f"h:{hook}": delivery}
        if delivery["state"] == DELIVERED:
            fields[f"r:{hook}"] = result
        self._set(run_id, fields)

    def record_error(self, run_id: str, key: str, error: dict[str, Any]) -> None:
        """Record an error of the run; `key` makes a repeated record a no-op."""
        self._set(run_id, {f"e:{key}": error})

    def _set(self, run_id: str, fields: dict[str, Any]) -> None:
        """Set the run's `fields` ("expected", "plan", and "h:", "r:", "e:" + hook or
        key), each stored as JSON text (`parse_fields` reads them back)."""
        self._write(run_id, {name: json.dumps(value) for name, value in fields.items()})

    def _write(self, run_id: str, encoded: dict[str, str]) -> None:
        """Store the run's encoded fields and wake its waiters."""
        raise NotImplementedError

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's record, or None for a run never seen (or expired)."""
        raise NotImplementedError

    def hook_state(self, run_id: str, hook: str) -> str | None:
        record = self.get(run_id) or {}
        return record.get("hooks", {}).get(hook, {}).get("state")

    async def wait(self, run_id: str, timeout: float,
                   expected: list[str] | None = None) -> tuple[dict | None, bool]:
        """Sleep until the run is complete or failed, or `timeout` seconds pass.

        Returns (view or None, done). Wakes only when the store reports a write for this
        run: no polling.
        """
        deadline = time.monotonic() + timeout
        await self._listening()
        event = self._subscribe(run_id)
        try:
            while True:
                event.clear()
                record = await self._get_async(run_id)
                view = run_view(run_id, record, expected) if record is not None else None
                if view is not None and view["status"] != PENDING:
                    return view, True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return view, False
                try:
                    async with asyncio.timeout(remaining):  # no task per wait, unlike wait_for
                        await event.wait()
                except TimeoutError:
                    pass
        finally:
            self._unsubscribe(run_id, event)

    # -- waking waiters ---------------------------------------------------------------------

    def _subscribe(self, run_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._waiters_lock:
            self._waiters.setdefault(run_id, []).append((asyncio.get_running_loop(), event))
        return event

    def _unsubscribe(self, run_id: str, event: asyncio.Event) -> None:
        with self._waiters_lock:
            waiters = [w for w in self._waiters.get(run_id, []) if w[1] is not event]
            if waiters:
                self._waiters[run_id] = waiters
            else:
                self._waiters.pop(run_id, None)

    def _wake(self, run_id: str) -> None:
        """Wake this process's waiters for a run; safe from any thread."""
        with self._waiters_lock:
            waiters = list(self._waiters.get(run_id, []))
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def _get_async(self, run_id: str) -> dict[str, Any] | None:
        return self.get(run_id)

    async def _listening(self) -> None:
        """Make sure writes by other processes will wake this loop's waiters."""

    def close(self) -> None:
        """Release connections."""


class MemoryResultsStore(ResultsStore):
    """Dev mode: records in this process's memory, the oldest dropped past `max_runs`.

    A record is its fields as JSON text, as the Redis store keeps them: the values are
    copies, a result that Redis could not hold fails here too, and the collector has
    nothing to walk (10,000 records of dicts and lists were 40,000 objects that each full
    pass walked, every second or two under load)."""

    blocking = False

    def __init__(self, max_runs: int = 10_000):
        super().__init__()
        self.max_runs = max_runs
        self._runs: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def _write(self, run_id: str, encoded: dict[str, str]) -> None:
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                record = self._runs[run_id] = {}
                while len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            record.update(encoded)
        self._wake(run_id)

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            fields = dict(self._runs.get(run_id, {}))
        return parse_fields(fields) if fields else None

    def hook_state(self, run_id: str, hook: str) -> str | None:
        with self._lock:
            delivery = self._runs.get(run_id, {}).get(f"h:{hook}")
        return json.loads(delivery)["state"] if delivery is not None else None


def parse_fields(fields: dict[str, str | bytes]) -> dict[str, Any]:
    """A record (`ResultsStore`) from its stored fields."""
    record: dict[str, Any] = {"results": {}, "hooks": {}, "errors": {}}
    for name, value in fields.items():
        data = json.loads(value)
        kind, _, rest = name.partition(":")
        if name in ("expected", "plan"):
            record[name] = data
        elif kind == "r":
            record["results"][rest] = data
        elif kind == "h":
            record["hooks"][rest] = data
        elif kind == "e":
            record["errors"][rest] = data
    return record


class RedisResultsStore(ResultsStore):
    """Production: one Redis hash per run (expiring after `ttl` seconds), and a pub/sub
    channel carrying the run id of every write, which wakes waiting gateways."""

    def __init__(self, url: str, ttl: int = 86_400, prefix: str = "algorail:"):
        super().__init__()
        import redis

        self.url, self.ttl, self.prefix = url, ttl, prefix
        self.channel = f"{prefix}run-events"
        self.redis = redis.Redis.from_url(url)
        self._async_clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._listeners: dict[asyncio.AbstractEventLoop, tuple[asyncio.Task, asyncio.Event]] = {}

    def _key(self, run_id: str) -> str:
        return f"{self.prefix}run:{run_id}"

    def _write(self, run_id: str, encoded: dict[str, str]) -> None:
        key = self._key(run_id)
        try:
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping=encoded)
            pipe.expire(key, self.ttl)
            pipe.publish(self.channel, run_id)
            pipe.execute()
        except Exception as exc:
            raise ResultsStoreError(f"cannot write to Redis at {self.url}: {exc}; "
                                    "check that Redis is running and the URL is right") from exc

    def get(self, run_id: str) -> dict[str, Any] | None:
        return self._parse(self.redis.hgetall(self._key(run_id)))

    async def _get_async(self, run_id: str) -> dict[str, Any] | None:
        return self._parse(await self._async_client().hgetall(self._key(run_id)))

    @staticmethod
    def _parse(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
        return parse_fields({name.decode(): value for name, value in raw.items()}) if raw else None

    def _async_client(self):
        """A client for the running event loop (asyncio connections belong to one loop)."""
        import redis.asyncio

        loop = asyncio.get_running_loop()
        if loop not in self._async_clients:
            self._async_clients[loop] = redis.asyncio.Redis.from_url(self.url)
        return self._async_clients[loop]

    async def _listening(self) -> None:
        loop = asyncio.get_running_loop()
        if loop not in self._listeners or self._listeners[loop][0].done():
            subscribed = asyncio.Event()
            self._listeners[loop] = (loop.create_task(self._listen(subscribed)), subscribed)
        await self._listeners[loop][1].wait()

    async def _listen(self, subscribed: asyncio.Event) -> None:
        """One subscription per event loop; wakes the waiters of each run id published."""
        pubsub = self._async_client().pubsub()
        await pubsub.subscribe(self.channel)
        await pubsub.get_message(timeout=5)  # the confirmation: from here on nothing is missed
        subscribed.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    self._wake(message["data"].decode())
        finally:
            await pubsub.aclose()

    def close(self) -> None:
        for task, _ in self._listeners.values():
            task.cancel()
        self._listeners.clear()
        self.redis.close()


def open_results_store(url: str | None, ttl: int = 86_400) -> ResultsStore:
    """`redis://...` (or `rediss://`) for Redis; None or empty for in-memory (dev)."""
    if not url:
        return MemoryResultsStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisResultsStore(url, ttl=ttl)
    raise ResultsStoreError(
        f"unsupported results store URL {url!r}: use redis://HOST:PORT/DB, or leave it unset "
        "for an in-memory store (dev mode)"
    )
