"""One gateway for every plan a `plans.PlanWatcher` follows (`algorail gateway --plans-dir`
or `--plans-from-cluster`).

Each plan is served by its own app (`gateway.create_app`), all sharing one producer (or
write-ahead log), one results store and one metrics registry. A request goes to the app of
the plan its path names, ``/{owner}/{deployment}/...``; a V2 request to the plan serving
the model it names. When a plan changes, a new app replaces the old one for the requests
that come after: a request already in progress keeps the app it started with, so a sync
run waits for the hooks of the version it started on, and every run's record names that
version (``"plan": {"version", "hash"}`` in GET .../runs/{runId}). A removed plan's paths
answer 404 at once.

``/healthz`` (the pipelines served), ``/metrics`` and ``/openapi.json`` (every plan's paths)
are the router's own. With `grpc_address` the V2 gRPC service (v2_grpc.py) serves the
models of every plan on a port of its own, following the same changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from algorail.plan import Plan
from algorail.runtime import openapi
from algorail.runtime.gateway import (
    DEFAULT_MAX_BODY,
    MAX_SYNC_TIMEOUT,
    GatewayError,
    GatewayMetrics,
    KafkaSender,
    create_app,
)
from algorail.runtime.plans import Change, PlanWatcher, plan_label
from algorail.runtime.results import ResultsStore
from algorail.runtime.v2_routes import SELDON_SUFFIX, unknown_model
from algorail.runtime.wal import DEFAULT_MAX_BYTES as DEFAULT_WAL_MAX_BYTES

log = logging.getLogger("algorail.gateway")

ROUTER_PATHS = ("/healthz", "/metrics", "/openapi.json")


@dataclass(frozen=True)
class Served:
    """One plan and the app serving it."""

    plan: Plan
    app: Any

    @property
    def models(self) -> dict[str, Any]:
        return self.app.state.gateway.v2.models


class PlanRouter:
    """The ASGI app. Plans are (re)built by `apply` (a watcher's listener); the producer
    (or write-ahead log) opens when the app starts, before the first plans are read."""

    def __init__(self, watcher: PlanWatcher, *, results: ResultsStore,
                 bootstrap_servers: str | None = None, sender: Any = None,
                 object_store: Any = None, dev: bool = False,
                 api_keys: set[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
                 max_sync_timeout: float = MAX_SYNC_TIMEOUT, wal_dir: str | None = None,
                 wal_max_bytes: int = DEFAULT_WAL_MAX_BYTES,
                 grpc_address: tuple[str, int] | None = None,
                 health: Callable[[], dict[str, Any] | None] | None = None):
        if sender is None and bootstrap_servers is None:
            raise GatewayError("the gateway needs --bootstrap-servers "
                               "(or ALGORAIL_BOOTSTRAP_SERVERS)")
        if wal_dir is not None and bootstrap_servers is None:
            raise GatewayError("a gateway with a write-ahead log needs --bootstrap-servers "
                               "for its replayer")
        self.watcher, self.results, self.sender = watcher, results, sender
        self.bootstrap_servers = bootstrap_servers
        self.options = {"object_store": object_store, "dev": dev, "api_keys": api_keys,
                        "max_body_bytes": max_body_bytes, "max_sync_timeout": max_sync_timeout}
        self.wal_dir, self.wal_max_bytes = wal_dir, wal_max_bytes
        self.health, self.grpc_address, self.grpc_server = health, grpc_address, None
        self.metrics = GatewayMetrics()
        self.served: dict[str, Served] = {}  # watcher key -> what serves it
        self._by_prefix: dict[tuple[str, str], Served] = {}
        self._stop: list[Callable[[], None]] = []
        watcher.subscribe(self.apply)

    # -- following the plans ----------------------------------------------------------------

    def apply(self, changes: list[Change]) -> None:
        served = dict(self.served)
        for change in changes:
            served.pop(change.key, None)
            if change.new is None:
                continue
            try:
                served[change.key] = self._serve(change.new)
            except GatewayError as exc:
                log.error("%s (%s) is not served: %s", change.new.deployment, change.key, exc)
        prefixes: dict[tuple[str, str], Served] = {}
        for key, entry in sorted(served.items()):
            prefix = (entry.plan.owner, entry.plan.deployment)
            if prefix in prefixes:
                log.error("%s and another plan both serve /%s/%s: %s is not served", key,
                          *prefix, key)
                continue
            prefixes[prefix] = entry
        # one assignment each: a request sees the old set or the new one, never a mix
        self.served, self._by_prefix = served, prefixes

    def _serve(self, plan: Plan) -> Served:
        app = create_app(plan, results=self.results, sender=self.sender,
                         metrics=self.metrics, **self.options)
        if isinstance(self.sender, KafkaSender):
            self.sender.learn([r.topic for r in plan.routes if r.type in ("http", "grpc")])
        log.info("serving %s/%s %s (%s)", plan.owner, plan.deployment, plan.version,
                 plan_label(plan)["hash"][:19])
        return Served(plan, app)

    # -- requests -----------------------------------------------------------------------------

    def app_for(self, scope: dict[str, Any]) -> Any:
        path = scope.get("path", "")
        if path in ROUTER_PATHS:
            return None
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "v2":
            return self._v2_app(parts, scope)
        if len(parts) > 2 and (entry := self._by_prefix.get((parts[1], parts[2]))):
            return entry.app
        return None

    def _v2_app(self, parts: list[str], scope: dict[str, Any]) -> Any:
        headers = dict(scope.get("headers") or [])
        name = headers.get(b"seldon-model", b"").decode("latin-1")
        if not name and len(parts) > 3 and parts[2] in ("models", "pipelines"):
            name = parts[3]
        name = name.removesuffix(SELDON_SUFFIX)
        if not name:
            return next((e.app for e in self._by_prefix.values() if e.models), None)
        entry = self._serving(name)
        return entry.app if entry is not None else None

    def _serving(self, model: str) -> Served | None:
        return next((e for e in self._by_prefix.values() if model in e.models), None)

    # -- the V2 gRPC service's models (v2_grpc.Models) -----------------------------------------

    def find(self, name: str) -> tuple[Any, str]:
        """The V2 API of the plan serving model `name` now, and the model's base name."""
        entry = self._serving(name.removesuffix(SELDON_SUFFIX))
        if entry is None:
            raise unknown_model(name, {m: r for e in self._by_prefix.values()
                                       for m, r in e.models.items()})
        return entry.app.state.gateway.v2.find(name)

    def is_ready(self) -> bool:
        return self.sender is not None

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self.app_for(scope)
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        await self._own(scope)(scope, receive, send)

    def _own(self, scope: dict[str, Any]) -> Any:
        path = scope["path"]
        if path == "/healthz":
            problems = self.health() if self.health is not None else None
            return JSONResponse(problems or {"status": "ok", "pipelines": sorted(
                f"{o}/{d}" for o, d in self._by_prefix)}, 503 if problems else 200)
        if path == "/metrics":
            return self.metrics.response()
        if path == "/openapi.json":
            return JSONResponse(self.openapi())
        served = ", ".join(f"/{o}/{d}" for o, d in sorted(self._by_prefix)) or "none yet"
        return JSONResponse({"error": f"no pipeline serves {path} (pipelines: {served})"},
                            status_code=404)

    def openapi(self) -> dict[str, Any]:
        documents = [openapi.document(e.plan, self.options["max_sync_timeout"])
                     for _, e in sorted(self._by_prefix.items())]
        paths = {p: v for d in documents for p, v in d["paths"].items()}
        document = documents[0] if documents else {"openapi": "3.1.0"}
        return {**document, "info": {"title": "algorail gateway", "version": "1"},
                "paths": paths}

    # -- start and stop ------------------------------------------------------------------------

    async def _lifespan(self, receive, send) -> None:
        await receive()  # lifespan.startup
        try:
            await self.startup()
        except Exception as exc:
            log.error("the gateway did not start: %s", exc)
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def startup(self) -> None:
        if self.grpc_address is not None:
            from algorail.runtime import v2_grpc

            self.grpc_server = await v2_grpc.start_server(self, *self.grpc_address)
            log.info("V2 gRPC inference service on %s:%d", *self.grpc_address)
        if self.wal_dir is not None:
            from algorail.runtime.wal import WalReplayer, WalSender, WriteAheadLog

            if self.wal_max_bytes < self.options["max_body_bytes"]:
                raise GatewayError(f"--wal-max-bytes ({self.wal_max_bytes}) must be at least "
                                   f"--max-body-bytes ({self.options['max_body_bytes']})")
            wal = WriteAheadLog(self.wal_dir, self.wal_max_bytes)
            self.metrics.watch_wal(wal)
            replayer = WalReplayer(wal, self.bootstrap_servers).start()
            self.sender = WalSender(wal)
            self._stop += [replayer.stop, wal.close]
        elif self.sender is None:
            sender = self.sender = await asyncio.to_thread(KafkaSender, self.bootstrap_servers)
            self._stop.append(sender.close)
        await asyncio.to_thread(self.watcher.poll)
        self.watcher.start()
        self._stop.insert(0, self.watcher.stop)
        log.info("gateway ready for %d pipelines", len(self._by_prefix))

    async def shutdown(self) -> None:
        if self.grpc_server is not None:
            await self.grpc_server.stop(2)
            self.grpc_server = None
        for stop in self._stop:
            await asyncio.to_thread(stop)
        self._stop.clear()


def serve_live(watcher: PlanWatcher, *, bootstrap_servers: str, host: str = "127.0.0.1",
               port: int = 8080, results: ResultsStore, hooks: bool = True,
               drain_seconds: float | None = None, grpc_port: int | None = None,
               **options: Any) -> None:
    """Run the router with uvicorn until interrupted, with a `fleet.HookFleet` following
    the same plans in this process unless `hooks` is False, and the V2 gRPC service on
    `grpc_port` if given. `options` are PlanRouter's."""
    from algorail.ports import check_port_free
    from algorail.runtime.fleet import DEFAULT_DRAIN_SECONDS, HookFleet
    from algorail.runtime.gateway import run_server

    check_port_free(host, port)
    fleet = None
    if hooks:
        fleet = HookFleet(bootstrap_servers, results, allow_private_urls=options.get("dev", False),
                          drain_seconds=DEFAULT_DRAIN_SECONDS if drain_seconds is None
                          else drain_seconds)
        watcher.subscribe(fleet.apply)
    router = PlanRouter(watcher, results=results, bootstrap_servers=bootstrap_servers,
                        grpc_address=(host, grpc_port) if grpc_port is not None else None,
                        health=_fleet_health(fleet), **options)
    if fleet is not None:
        router.metrics.registry.register(fleet.metrics.registry)
    try:
        run_server(router, host, port)
    finally:
        if fleet is not None:
            fleet.stop()


def _fleet_health(fleet: Any) -> Callable[[], dict[str, Any] | None] | None:
    if fleet is None:
        return None
    return lambda: None if fleet.healthy() else {"status": "failing",
                                                  "error": "a hook consumer stopped"}

