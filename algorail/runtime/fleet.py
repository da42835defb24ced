"""Hook dispatchers for every plan a `plans.PlanWatcher` follows.

One `HookDispatcher` per plan. When a plan changes, its dispatcher is stopped and one for
the new version started, so new hooks fire and changed hooks deliver with their new
settings. Runs already in flight finish as the version they started on expects: the hooks
and reporting sinks that version had and the new one has not keep their consumers in a
*retired* dispatcher for `drain_seconds` (by default the longest a sync caller waits),
which delivers only for runs whose record names that version, so a run waiting for them
completes and a new run never gets them. A removed plan's whole dispatcher is retired the
same way. A hook both versions have delivers with the new version's settings.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from algorail.plan import Plan, plan_hash
from algorail.runtime import codec
from algorail.runtime.hooks import HookDispatcher, HookMetrics
from algorail.runtime.plans import Change
from algorail.runtime.results import ResultsStore

log = logging.getLogger("algorail.hooks")

DEFAULT_DRAIN_SECONDS = 300.0


def leftovers(old: Plan, new: Plan | None) -> Plan | None:
    """`old` cut to the hooks and reporting sinks `new` no longer has (None: nothing left
    for in-flight runs to wait for)."""
    hooks = {h.name for h in new.hooks} if new else set()
    sinks = {c.name for c in new.connectors} if new else set()
    gone_hooks = [h for h in old.hooks if h.name not in hooks]
    gone_sinks = [c for c in old.connectors if c.name not in sinks and c.report_topic]
    if not gone_hooks and not gone_sinks:
        return None
    return old.model_copy(update={"hooks": gone_hooks, "connectors": gone_sinks})


class RetiredDispatcher(HookDispatcher):
    """A dispatcher of an old plan version's leftovers: it delivers only for runs that
    started on that version (`version_hash`), or that name none (a Kafka endpoint's)."""

    def __init__(self, *args: Any, version_hash: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.version_hash = version_hash

    def accepts(self, record: Any) -> bool:
        run_id = codec.Envelope.from_headers(record.headers).run_id
        started = (self.results.get(run_id) or {}).get("plan") or {}
        return started.get("hash", self.version_hash) == self.version_hash


class HookFleet:
    """Subscribe `apply` to a watcher; `stop()` ends every dispatcher."""

    def __init__(self, bootstrap_servers: str, results: ResultsStore, *,
                 allow_private_urls: bool = False,
                 drain_seconds: float = DEFAULT_DRAIN_SECONDS):
        self.bootstrap_servers, self.results = bootstrap_servers, results
        self.allow_private_urls = allow_private_urls
        self.drain_seconds = drain_seconds
        self.metrics = HookMetrics()
        self.current: dict[str, HookDispatcher] = {}
        self.retired: dict[int, tuple[HookDispatcher, threading.Timer]] = {}
        self._lock = threading.Lock()

    def _dispatcher(self, plan: Plan) -> HookDispatcher:
        return HookDispatcher(plan, self.bootstrap_servers, self.results,
                              allow_private_urls=self.allow_private_urls, metrics=self.metrics)

    def apply(self, changes: list[Change]) -> None:
        with self._lock:
            for change in changes:
                running = self.current.pop(change.key, None)
                if running is not None:
                    running.stop()
                if change.new is not None:
                    self.current[change.key] = self._dispatcher(change.new).start()
                if change.old is not None and (rest := leftovers(change.old, change.new)):
                    self._retire(RetiredDispatcher(
                        rest, self.bootstrap_servers, self.results,
                        allow_private_urls=self.allow_private_urls, metrics=self.metrics,
                        version_hash=plan_hash(change.old),
                        # the current dispatcher, if any, records the pipeline's errors
                        record_errors=change.new is None).start())

    def _retire(self, dispatcher: HookDispatcher) -> None:
        key = id(dispatcher)
        timer = threading.Timer(self.drain_seconds, self._end, args=(key,))
        timer.daemon = True
        self.retired[key] = (dispatcher, timer)
        timer.start()
        log.info("hooks %s of %s/%s kept %gs for runs in flight",
                 ", ".join(h.name for h in dispatcher.plan.hooks) or "-",
                 dispatcher.plan.owner, dispatcher.plan.deployment, self.drain_seconds)

    def _end(self, key: int) -> None:
        with self._lock:
            entry = self.retired.pop(key, None)
        if entry is not None:
            entry[0].stop()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        with self._lock:
            dispatchers = [*self.current.values(), *(d for d, _ in self.retired.values())]
        return all(d.wait_ready(timeout) for d in dispatchers)

    def healthy(self) -> bool:
        with self._lock:
            return all(d.healthy() for d in self.current.values())

    def plans(self) -> dict[str, Any]:
        with self._lock:
            return {key: d.plan for key, d in self.current.items()}

    def stop(self) -> None:
        with self._lock:
            current, self.current = list(self.current.values()), {}
            retired, self.retired = list(self.retired.values()), {}
        for _, timer in retired:
            timer.cancel()
        for dispatcher in [*current, *(d for d, _ in retired)]:
            dispatcher.stop()
