"""The gateway: how clients put requests into a pipeline and get results back.

An ASGI app (Starlette, served by uvicorn) with, per http endpoint path of the plan:

- ``POST /{owner}/{deployment}/{path}``: checks the body (415 wrong content type, 422 not
  valid for the path's validator or JSON Schema, 413 too large; nothing enters the pipeline
  then), produces it to the path's topic under a new run id and answers
  ``202 {"runId", "status": "pending"}`` (with a write-ahead log, see wal.py, once the
  request is on disk, even while the broker is down). With ``?sync=true&timeout=S`` it
  holds the request until every hook reachable from the path has reported or was skipped
  (200, the GET body), or answers 504 with what arrived. The results store wakes it;
  nothing polls.
- ``GET /{owner}/{deployment}/runs/{runId}``: the run's results, or 404.
- the Open Inference Protocol (KServe V2) REST API when a path has ``protocol: v2``
  (Seldon manifests): see v2_routes.py. V2 requests are also accepted at the path's URL.
- ``/healthz``, ``/metrics`` (Prometheus), ``/openapi.json``.

`kafka` paths are topics clients produce to directly (listed in the OpenAPI document);
`grpc` paths are models of the V2 gRPC service, served with ``grpc_address``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from algorail import v2
from algorail.errors import AlgorailError
from algorail.extensions import StartupContext, schema_problems
from algorail.parsing import ParseError, loads_json
from algorail.plan import Plan, RoutePlan
from algorail.runtime import codec, openapi, tracing
from algorail.runtime.objectstore import new_key
from algorail.runtime.plans import plan_label
from algorail.runtime.results import ResultsStore, run_view
from algorail.runtime.wal import DEFAULT_MAX_BYTES as DEFAULT_WAL_MAX_BYTES

log = logging.getLogger("algorail.gateway")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_SYNC_TIMEOUT = 30.0
MAX_SYNC_TIMEOUT = 300.0


class GatewayError(AlgorailError):
    pass


class Rejected(Exception):
    """A request refused before anything entered the pipeline: HTTP status and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def render_json(content: Any) -> bytes:
    """JSON with orjson, several times faster on the request path; what orjson refuses
    (integers past 64 bits, keys that are not strings) the stdlib encodes, as Starlette's
    JSONResponse does."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode()


class FastJSONResponse(JSONResponse):
    """A JSONResponse encoded by `render_json`."""

    def render(self, content: Any) -> bytes:
        return render_json(content)


def load_api_keys(path: str | Path) -> set[str]:
    """One key per line; blank lines and lines starting with # are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GatewayError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
    keys = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    if not keys:
        raise GatewayError(f"the API keys file {path} holds no keys: put one key per line")
    return keys


class KafkaSender:
    """Produces from the event loop without blocking it. `send` only blocks while it looks
    up a topic's partitions, so topics looked up at start are sent to directly and others
    from a worker thread; the acknowledgement is awaited through the future's callbacks."""

    def __init__(self, bootstrap_servers: str, topics: list[str] = ()):
        from algorail.runtime import kafka_io

        self.producer = kafka_io.make_producer(bootstrap_servers, linger_ms=0,
                                               max_block_ms=10_000)
        self.known: set[str] = set()
        self.learn(topics)

    def learn(self, topics: list[str]) -> None:
        """Look `topics` up (a plan loaded later), so sends to them go straight through."""
        for topic in topics:
            try:
                if self.producer.partitions_for(topic):
                    self.known.add(topic)
            except Exception as exc:  # sent through a worker thread then; maybe created later
                log.warning("topic %s is not known to the broker yet: %s", topic, exc)

    async def send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(result: Any = None, error: BaseException | None = None) -> None:
            if not done.done():
                done.set_exception(error) if error else done.set_result(result)

        if topic in self.known:
            future = self.producer.send(topic, value=value, headers=headers)
        else:
            future = await loop.run_in_executor(
                None, lambda: self.producer.send(topic, value=value, headers=headers))
        future.add_callback(lambda md: loop.call_soon_threadsafe(settle, md))
        future.add_errback(lambda exc: loop.call_soon_threadsafe(settle, None, exc))
        await done

    def close(self) -> None:
        self.producer.close(timeout=5)


class GatewayMetrics:
    """Requests by route and status, and their latency, on the gateway's own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("algorail_gateway_requests", "Requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("algorail_gateway_request_seconds", "Request latency",
                                 ["route"], registry=self.registry)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def watch_wal(self, wal: Any) -> None:
        from prometheus_client import Gauge

        Gauge("algorail_gateway_wal_records", "Requests in the write-ahead log not yet taken "
              "by the broker", registry=self.registry).set_function(lambda: wal.pending)
        Gauge("algorail_gateway_wal_bytes", "Bytes of those requests",
              registry=self.registry).set_function(lambda: wal.pending_bytes)

    def request(self, route: str, status: int, started: float) -> None:
        # the labelled children are looked up once per (route, status), not per request
        try:
            counter, latency = self._children[route, status]
        except KeyError:
            counter, latency = self._children.setdefault(
                (route, status), (self.requests.labels(route, str(status)),
                                  self.latency.labels(route)))
        counter.inc()
        latency.observe(time.perf_counter() - started)

    def response(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class Gateway:
    """The request handling behind the app; one per plan."""

    def __init__(self, plan: Plan, sender: Any, results: ResultsStore, object_store: Any = None,
                 api_keys: set[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
                 max_sync_timeout: float = MAX_SYNC_TIMEOUT,
                 reporting_sinks: frozenset[str] = frozenset(),
                 metrics: GatewayMetrics | None = None):
        self.plan, self.sender, self.results = plan, sender, results
        self.plan_label = plan_label(plan)  # the plan version each run records
        self.object_store = object_store
        self.api_keys = api_keys
        self.max_body_bytes = max_body_bytes
        self.max_sync_timeout = max_sync_timeout
        # what completes a run from each path: its hooks, and the writes of its sinks that
        # report them (dev mode runs them in Python; Kafka Connect does not report)
        self.waits = {r.url: [*r.hooks, *(s for s in r.sinks if s in reporting_sinks)]
                      for r in plan.routes}
        self.all_hooks = sorted({h for waits in self.waits.values() for h in waits})
        self.validators = self._content_validators()
        self.media_types = {r.url: codec.media_type(r.content_type) for r in plan.routes}
        self.metrics = metrics or GatewayMetrics()  # shared by a PlanRouter's plans
        self.v2: Any = None  # the V2 inference API (v2_routes.V2Api), set with the routes

    @staticmethod
    def _content_validators() -> dict[str, Any]:
        from algorail.plugin_manager import get_registry

        return dict(get_registry().content_types)

    # -- checks ---------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if self.api_keys is None:
            return
        given = request.headers.get("x-api-key", "")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            given = given or token.strip()
        # header values arrive as latin-1 text: compare the bytes sent with each key's UTF-8
        sent = given.encode("latin-1")
        if not any(hmac.compare_digest(sent, key.encode()) for key in self.api_keys):
            raise Rejected(401, "missing or unknown API key: send it as 'Authorization: "
                                "Bearer KEY' or 'X-API-Key: KEY'")

    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise Rejected(413, self._too_large())
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise Rejected(413, self._too_large())
        return bytes(body)

    def _too_large(self) -> str:
        return f"request body is larger than the limit of {self.max_body_bytes} bytes"

    def check_body(self, route: RoutePlan, media_type: str, body: bytes) -> None:
        if media_type != self.media_types[route.url]:
            raise Rejected(415, f"{route.url} takes Content-Type {route.content_type}, "
                                f"got {media_type or 'none'}")
        validator = self.validators.get(route.content_type)
        if validator is not None and (problem := validator.check(body)):
            raise Rejected(422, problem)
        if route.json_schema is None and not codec.is_json(media_type):
            return
        value = parse_json_body(body)
        if route.json_schema is not None:
            problems = schema_problems(route.json_schema, value, "body")
            if problems:
                raise Rejected(422, "body does not match the path's schema: "
                                    + "; ".join(problems))

    def sync_options(self, request: Request, always_sync: bool = False) -> float | None:
        """The sync timeout in seconds, or None for an async request. A `timeout` is
        checked even without `sync`, so a wrong one is never silently ignored."""
        sync = request.query_params.get("sync", "false").lower() in ("true", "1", "yes")
        raw = request.query_params.get("timeout")
        timeout = min(DEFAULT_SYNC_TIMEOUT, self.max_sync_timeout)
        if raw is not None:
            try:
                timeout = float(raw)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= self.max_sync_timeout:
                raise Rejected(400, f"timeout must be a number of seconds above 0 and at most "
                                    f"{self.max_sync_timeout:g}, got {raw!r}")
        return timeout if sync or always_sync else None

    # -- handlers ---------------------------------------------------------------------------

    async def post(self, request: Request, route: RoutePlan) -> Response:
        status, body = await self.run(request, route)
        return FastJSONResponse(body, status_code=status)

    async def post_asgi(self, scope: dict[str, Any], receive: Any, send: Any,
                        route: RoutePlan) -> None:
        """`post` as a plain ASGI handler: what `GatewayApp` calls for the plan's paths."""
        try:
            status, body = await self.run(AsgiRequest(scope, receive), route)
        except ClientDisconnect:
            return
        except Exception:
            # as Starlette's ServerErrorMiddleware: a 500, and the error goes on to the log
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-length", b"21"),
                                    (b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise
        content = render_json(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": content})

    async def run(self, request: Request, route: RoutePlan,
                  always_sync: bool = False) -> tuple[int, dict[str, Any]]:
        """Check, start and (when sync) wait for one run: (HTTP status, body)."""
        started = time.perf_counter()
        try:
            self.authorize(request)
            timeout = self.sync_options(request, always_sync)
            body = await self.read_body(request)
            media_type = codec.media_type(request.headers.get("content-type", ""))
            self.check_body(route, media_type, body)
            if route.protocol == "v2":
                body = decode_v2_request(body)
        except Rejected as exc:
            self.metrics.request(route.url, exc.status, started)
            return exc.status, {"error": str(exc)}
        return await self.execute(route, body, media_type, timeout, started,
                                  request.headers.get("traceparent", ""))

    async def execute(self, route: RoutePlan, body: bytes, media_type: str,
                      timeout: float | None, started: float, traceparent: str = ""
                      ) -> tuple[int, dict[str, Any]]:
        """Start one checked run and (when `timeout` is set) wait for it."""
        run_id = codec.new_run_id()
        try:
            await self.start(route, run_id, body, media_type, traceparent)
        except Exception as exc:  # the broker, results or object store is unreachable
            log.error("%s: run %s not started: %s", route.url, run_id, exc)
            self.metrics.request(route.url, 503, started)
            return 503, {"error": f"the run could not be started ({exc}); nothing "
                                  "entered the pipeline: try again later"}
        if timeout is None:
            self.metrics.request(route.url, 202, started)
            return 202, {"runId": run_id, "status": "pending"}
        view, done = await self.results.wait(run_id, timeout)
        view = view or run_view(run_id, {"expected": self.waits[route.url]})
        status = 200 if done else 504
        self.metrics.request(route.url, status, started)
        return status, view

    async def start(self, route: RoutePlan, run_id: str, body: bytes, media_type: str,
                    traceparent: str = "") -> None:
        """Note the run, store a file body, and produce the message."""
        with tracing.span("gateway request", traceparent, run_id=run_id,
                          pipeline=self.plan.pipeline, component=route.endpoint, port=route.path):
            await self.results_call(self.results.start_run, run_id,
                                    self.waits[route.url], self.plan_label)
            value, content_type = body, route.content_type
            if route.message_data_type == "fileReference":
                value, content_type = await self.store_file(route, run_id, body, media_type)
            envelope = codec.Envelope(
                run_id=run_id, deployment=self.plan.deployment,
                source=route.source, content_type=content_type,
                traceparent=tracing.child_traceparent(traceparent),
            )
            await self.sender.send(route.topic, value, envelope.to_headers())

    async def results_call(self, method, *args) -> Any:
        """Call the results store; from a worker thread when it does network I/O."""
        if not self.results.blocking:
            return method(*args)
        return await asyncio.get_running_loop().run_in_executor(None, method, *args)

    async def store_file(self, route: RoutePlan, run_id: str, body: bytes,
                         media_type: str) -> tuple[bytes, str]:
        key = new_key(f"{route.object_prefix}/{run_id}")
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self.object_store.put, body, media_type, key)
        return codec.encode(ref, codec.FILE_REFERENCE), codec.FILE_REFERENCE

    async def get_run(self, request: Request) -> Response:
        try:
            self.authorize(request)
        except Rejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        run_id = request.path_params["run_id"]
        record = await self.results_call(self.results.get, run_id)
        if record is None:
            return JSONResponse({"error": f"no run {run_id!r} in {self.plan.owner}/"
                                          f"{self.plan.deployment} (unknown or expired)"},
                                status_code=404)
        return JSONResponse(run_view(run_id, record, self.all_hooks))


class AsgiRequest:
    """What the gateway reads of a request (`headers`, `query_params`, `stream`), taken
    straight from the ASGI scope with Starlette's rules: header names lower case and the
    first of repeated headers, the last of repeated query parameters."""

    __slots__ = ("headers", "query_params", "_receive")

    def __init__(self, scope: dict[str, Any], receive: Any):
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        self.headers = headers
        query = scope.get("query_string", b"")
        self.query_params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) \
            if query else {}
        self._receive = receive

    async def stream(self):
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            if message["type"] == "http.request":
                if body := message.get("body", b""):
                    yield body
                if not message.get("more_body", False):
                    return


class GatewayApp(Starlette):
    """The gateway's Starlette app, with POSTs to the plan's http paths (the hot path)
    handed to the gateway directly, past Starlette's routing, middleware and response
    objects; every other request goes through Starlette as usual."""

    def __init__(self, gateway: Gateway, posts: dict[str, RoutePlan], **kwargs: Any):
        super().__init__(**kwargs)
        self.posts = posts
        self.state.gateway = gateway

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" \
                and not scope.get("root_path"):
            route = self.posts.get(scope["path"])
            if route is not None:
                scope["app"] = self
                await self.state.gateway.post_asgi(scope, receive, send, route)
                return
        await super().__call__(scope, receive, send)


def create_app(plan: Plan, *, results: ResultsStore, bootstrap_servers: str | None = None,
               sender: Any = None, object_store: Any = None, dev: bool = False,
               api_keys: set[str] | None = None, max_body_bytes: int = DEFAULT_MAX_BODY,
               max_sync_timeout: float = MAX_SYNC_TIMEOUT, wal_dir: str | Path | None = None,
               wal_max_bytes: int = DEFAULT_WAL_MAX_BYTES,
               grpc_address: tuple[str, int] | None = None,
               health: Callable[[], dict[str, Any] | None] | None = None,
               reporting_sinks: frozenset[str] = frozenset(),
               extra_routes: tuple[Route, ...] = (),
               metrics: GatewayMetrics | None = None) -> Starlette:
    """The gateway's ASGI app for `plan`. Give `bootstrap_servers` (a producer is opened
    when the app starts) or a ready `sender`. API keys are off unless given. With `wal_dir`
    requests are logged there before the 202 and a replayer sends them to the broker. With
    `grpc_address` (host, port) the V2 gRPC service (v2_grpc.py) runs beside the app.
    `health` returns None when all is well, else what /healthz answers with a 503 (dev
    mode: the components that failed). A run is complete once its hooks and its
    `reporting_sinks` (data sinks run in Python, as in dev mode) reported. `extra_routes`
    are served first (dev mode's ``/v1/dev``). `metrics` is shared when one process
    serves several plans (router.py)."""
    if sender is None and bootstrap_servers is None:
        raise GatewayError("the gateway needs --bootstrap-servers (or ALGORAIL_BOOTSTRAP_SERVERS)")
    if object_store is None and any(r.message_data_type == "fileReference" for r in plan.routes):
        if not dev:
            raise GatewayError("this pipeline has fileReference paths: give the gateway an "
                               "object store (--object-store-url s3://BUCKET?endpoint=URL)")
    gateway = Gateway(plan, sender, results, object_store, api_keys, max_body_bytes,
                      max_sync_timeout, reporting_sinks, metrics)
    wal = _open_wal(wal_dir, wal_max_bytes, max_body_bytes, bootstrap_servers)
    if wal is not None:
        gateway.metrics.watch_wal(wal)
    if object_store is None and dev:
        import tempfile

        from algorail.runtime.objectstore import LocalObjectStore

        gateway.object_store = LocalObjectStore(tempfile.mkdtemp(prefix="algorail-files-"))
    routes = [*extra_routes, *_routes(plan, gateway, health)]
    context = StartupContext(service="gateway", plan=plan, routes=[],
                             metrics=gateway.metrics.registry)
    from algorail.plugin_manager import call_startup

    call_startup(context)
    routes.extend(context.routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        opened = replayer = None
        if wal is not None:
            from algorail.runtime.wal import WalReplayer, WalSender

            replayer = WalReplayer(wal, bootstrap_servers).start()
            gateway.sender = WalSender(wal)
        elif gateway.sender is None:
            topics = [r.topic for r in plan.routes if r.type in ("http", "grpc")]
            opened = gateway.sender = await asyncio.to_thread(KafkaSender, bootstrap_servers,
                                                              topics)
        grpc_server = None
        if grpc_address is not None and gateway.v2.models:
            from algorail.runtime import v2_grpc

            grpc_server = await v2_grpc.start_server(gateway.v2, *grpc_address)
            log.info("V2 gRPC inference service on %s:%d", *grpc_address)
        elif any(r.type == "grpc" for r in plan.routes):
            log.warning("this plan has grpc paths: serve them with --grpc-port")
        log.info("gateway for %s/%s ready", plan.owner, plan.deployment)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(2)
            if replayer is not None:
                await asyncio.to_thread(replayer.stop)
                wal.close()
            if opened is not None:
                await asyncio.to_thread(opened.close)
                gateway.sender = None

    # a path an earlier route (`extra_routes`) also matches is left to Starlette's order
    posts = {r.url: r for r in plan.routes if r.type == "http"
             and not any(getattr(e, "path_regex", None) is not None and e.path_regex.match(r.url)
                         for e in extra_routes)}
    app = GatewayApp(gateway, posts, routes=routes, lifespan=lifespan)
    app.state.wal = wal
    return app


def _open_wal(wal_dir: str | Path | None, max_bytes: int, max_body_bytes: int,
              bootstrap_servers: str | None) -> Any:
    if wal_dir is None:
        return None
    if bootstrap_servers is None:
        raise GatewayError("a gateway with a write-ahead log needs --bootstrap-servers for "
                           "its replayer")
    if max_bytes < max_body_bytes:
        raise GatewayError(f"--wal-max-bytes ({max_bytes}) must be at least --max-body-bytes "
                           f"({max_body_bytes}) or a large request could never be logged")
    from algorail.runtime.wal import WriteAheadLog

    return WriteAheadLog(wal_dir, max_bytes)


def _routes(plan: Plan, gateway: Gateway, health: Callable[[], dict[str, Any] | None] | None
            ) -> list[Route]:
    from algorail.runtime import v2_routes

    document = openapi.document(plan, gateway.max_sync_timeout)

    def healthz(request: Request) -> Response:
        problems = health() if health is not None else None
        return JSONResponse(problems or {"status": "ok"}, 503 if problems else 200)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", lambda request: gateway.metrics.response()),
        Route("/openapi.json", lambda request: JSONResponse(document)),
        Route(f"{plan.runs_url}/{{run_id}}", gateway.get_run,
              methods=["GET"]),
    ]
    for route in plan.routes:
        if route.type == "http":
            routes.append(Route(route.url, _poster(gateway, route), methods=["POST"]))
    gateway.v2 = v2_routes.V2Api(plan, gateway)
    routes.extend(v2_routes.routes(gateway.v2))
    return routes


def parse_json_body(body: bytes) -> Any:
    """A request body as JSON, or a 422 saying why not (NaN, nesting beyond the limit)."""
    try:
        return loads_json(body)
    except ParseError as exc:
        raise Rejected(422, f"body: {exc}") from None


def decode_v2_request(body: bytes) -> bytes:
    """A V2 inference request becomes the JSON object of tensors a pipeline carries; any
    other JSON object passes as it is."""
    value = parse_json_body(body)
    if not v2.is_request(value):
        return body
    try:
        return json.dumps(v2.parse_request(value).tensors).encode()
    except v2.V2FormatError as exc:
        raise Rejected(422, str(exc)) from None


def _poster(gateway: Gateway, route: RoutePlan):
    async def post(request: Request) -> Response:
        return await gateway.post(request, route)

    return post


def serve(plan: Plan, *, bootstrap_servers: str, host: str = "127.0.0.1", port: int = 8080,
          results: ResultsStore | None = None, object_store: Any = None, dev: bool = False,
          hooks: bool = True, api_keys: set[str] | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY, wal_dir: str | Path | None = None,
          wal_max_bytes: int = DEFAULT_WAL_MAX_BYTES, metrics: tuple[Any, ...] = (),
          grpc_port: int | None = None,
          health: Callable[[], dict[str, Any] | None] | None = None,
          reporting_sinks: frozenset[str] = frozenset(),
          extra_routes: tuple[Route, ...] = ()) -> None:
    """Run the gateway with uvicorn until interrupted, with a hook dispatcher in the same
    process unless `hooks` is False (then run `algorail hooks` beside it). Its /metrics
    also serves the dispatcher's and those of the Prometheus collectors in `metrics`."""
    from algorail.ports import check_port_free
    from algorail.runtime.hooks import HookDispatcher
    from algorail.runtime.results import MemoryResultsStore

    check_port_free(host, port)  # before the producer and the dispatcher start
    results = results if results is not None else MemoryResultsStore()
    app = create_app(plan, results=results, bootstrap_servers=bootstrap_servers,
                     object_store=object_store, dev=dev, api_keys=api_keys,
                     max_body_bytes=max_body_bytes, wal_dir=wal_dir, wal_max_bytes=wal_max_bytes,
                     grpc_address=(host, grpc_port) if grpc_port is not None else None,
                     health=health, reporting_sinks=reporting_sinks,
                     extra_routes=extra_routes)
    dispatcher = None
    if hooks:  # also without hooks: it records the runs that failed
        dispatcher = HookDispatcher(plan, bootstrap_servers, results, allow_private_urls=dev)
        dispatcher.start()
        metrics = (dispatcher.metrics.registry, *metrics)
    for collector in metrics:
        app.state.gateway.metrics.registry.register(collector)
    try:
        run_server(app, host, port)
    finally:
        if dispatcher is not None:
            dispatcher.stop()


def run_server(app: Any, host: str, port: int) -> None:
    """Serve `app` with uvicorn until SIGINT or SIGTERM."""
    import uvicorn

    in_main = threading.current_thread() is threading.main_thread()
    if in_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        # uvicorn shuts down on SIGTERM and then raises it again for the previous handler:
        # make that a no-op so what the caller started is stopped and the exit status is 0
        signal.signal(signal.SIGTERM, lambda *_: None)
    # at log level warning the access log prints nothing: off, it costs nothing per request
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    # what was imported and built to get here lives as long as the process: frozen, the
    # collector's full passes leave it out. Each stops every request; in dev mode at
    # 1,900 sync requests/s they came every second or two and took 45-66 ms, 10-28 ms frozen
    gc.freeze()
    server.run()
