"""The gateway's Open Inference Protocol (KServe V2) REST API, for a plan with a V2 path.

A pipeline is served as a model named ``{pipeline}`` or ``{pipeline}.pipeline`` (Seldon's
gateway form; a ``Seldon-Model`` header names the model instead of the URL):

- ``GET /v2`` server metadata, ``/v2/health/live``, ``/v2/health/ready``;
- ``GET /v2/models/{name}`` model metadata, ``/v2/models/{name}/ready``;
- ``POST /v2/models/{name}/infer`` and Seldon's ``/v2/pipelines/{name}/infer``: one
  synchronous run, answered with a V2 inference response whose ``id`` and ``parameters``
  echo the request's and whose ``outputs`` are those asked for (all when none are).

A body without Content-Type is JSON. The binary tensor data extension is read (the
``Inference-Header-Content-Length`` header); responses are always JSON, which V2 clients
accept. Errors are ``{"error": "..."}``: 400 for a bad request or a failed run, 404 for an
unknown model, 401 without a valid API key, 503 when the run cannot start, 504 when it
does not finish within ``?timeout=`` seconds.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import algorail
from algorail import v2
from algorail.runtime import codec
from algorail.runtime.gateway import Rejected

SELDON_SUFFIX = ".pipeline"
BODY_TYPES = ("", "application/json", "application/octet-stream")


def models(plan: Any) -> dict[str, Any]:
    """Model name -> the route a run of it enters by: a pipeline with a V2 http path is the
    model {pipeline} (and {deployment}); a `grpc` endpoint path is the model {path}."""
    found = {r.path: r for r in plan.routes if r.type == "grpc"}
    v2_paths = [r for r in plan.routes if r.type == "http" and r.protocol == "v2"]
    if v2_paths:
        found.update({plan.pipeline: v2_paths[0], plan.deployment: v2_paths[0]})
    return found


def routes(api: V2Api) -> list[Route]:
    """The REST routes, for a plan with a V2 http path."""
    if not any(r.type == "http" for r in api.models.values()):
        return []
    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", api.server_metadata, methods=["GET"]),
        Route("/v2/health/live", api.live, methods=["GET"]),
        Route("/v2/health/ready", api.ready, methods=["GET"]),
        *(Route(base, api.model_metadata, methods=["GET"]) for base in (model, versioned)),
        *(Route(f"{base}/ready", api.model_ready, methods=["GET"])
          for base in (model, versioned)),
        *(Route(f"{base}/infer", api.infer, methods=["POST"]) for base in (model, versioned)),
        Route("/v2/pipelines/{name}/infer", api.infer, methods=["POST"]),
    ]


def unknown_model(name: str, models: dict[str, Any]) -> Rejected:
    """The 404 for a model that none of `models` (name -> route) is, naming those served."""
    served = sorted({*models, *(f"{m}{SELDON_SUFFIX}" for m, r in models.items()
                                if r.type == "http")})
    return Rejected(404, f"no model {name!r} here: this gateway serves "
                         f"{', '.join(map(repr, served)) or 'none yet'}")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class V2Api:
    """The handlers; the run itself goes through the gateway like any other request."""

    def __init__(self, plan: Any, gateway: Any):
        self.plan, self.gateway = plan, gateway
        self.models = models(plan)

    def model_name(self, request: Request) -> str:
        """The pipeline named by the Seldon-Model header or the URL; 404 for another."""
        return self.check_model(request.headers.get("seldon-model")
                                or request.path_params["name"])

    def check_model(self, name: str) -> str:
        base = name.removesuffix(SELDON_SUFFIX)
        if base not in self.models:
            raise unknown_model(name, self.models)
        return base

    def find(self, name: str) -> tuple[V2Api, str]:
        """The API serving model `name` and its base name (the gRPC service asks a plan's
        API, or a `router.PlanRouter`, the same way)."""
        return self, self.check_model(name)

    def is_ready(self) -> bool:
        return self.gateway.sender is not None

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse({"name": "algorail", "version": algorail.__version__,
                             "extensions": ["binary_tensor_data"]})

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.is_ready()
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        try:
            name = self.model_name(request)
        except Rejected as exc:
            return error(exc.status, str(exc))
        return JSONResponse({"name": name, "versions": [self.plan.version],
                             "platform": "algorail-pipeline", "inputs": [], "outputs": []})

    async def model_ready(self, request: Request) -> Response:
        try:
            name = self.model_name(request)
        except Rejected as exc:
            return error(exc.status, str(exc))
        ready = self.is_ready()
        return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self.gateway.authorize(request)
            name = self.model_name(request)
            timeout = self.gateway.sync_options(request, always_sync=True)
            inference = self.parse(request, await self.gateway.read_body(request))
        except Rejected as exc:
            self.gateway.metrics.request(request.url.path, exc.status, started)
            return error(exc.status, str(exc))
        status, body, run_id = await self.run(name, inference, timeout, started,
                                              request.headers.get("traceparent", ""))
        return JSONResponse(body, status_code=status,
                            headers={"x-run-id": run_id} if run_id else {})

    def parse(self, request: Request, body: bytes) -> v2.InferenceRequest:
        media_type = codec.media_type(request.headers.get("content-type", ""))
        if media_type not in BODY_TYPES:
            raise Rejected(415, f"{request.url.path} takes a V2 inference request as "
                                f"application/json (or no Content-Type), got {media_type}")
        binary = b""
        header_length = request.headers.get("inference-header-content-length")
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise Rejected(400, "Inference-Header-Content-Length must be the length of "
                                    f"the JSON part of the body, at most {len(body)}")
            body, binary = body[:int(header_length)], body[int(header_length):]
        try:
            value = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Rejected(400, f"the body is not a JSON V2 inference request: {exc}") from None
        try:
            return v2.parse_request(value, binary)
        except v2.V2FormatError as exc:
            raise Rejected(400, str(exc)) from None

    async def run(self, name: str, inference: v2.InferenceRequest, timeout: float | None,
                  started: float, traceparent: str = "") -> tuple[int, dict[str, Any], str]:
        """One synchronous run of a checked request (REST or gRPC): (HTTP status, V2
        response or {"error"}, run id)."""
        payload = json.dumps(inference.tensors, separators=(",", ":")).encode()
        status, view = await self.gateway.execute(self.models[name], payload,
                                                  "application/json", timeout, started,
                                                  traceparent)
        run_id = view.get("runId", "")
        if status == 504:
            return 504, {"error": f"run {run_id} did not finish in time"}, run_id
        if status != 200:
            return status, {"error": view.get("error", "failed")}, run_id
        if view["status"] == "failed":
            errors = "; ".join(str(e.get("error", e)) for e in view["errors"]) or "failed"
            return 400, {"error": errors}, run_id
        tensors: dict[str, Any] = {}
        for result in view["results"].values():
            if isinstance(result, dict):
                tensors.update(result)
        try:
            return 200, v2.response(tensors, name, inference.id or run_id, inference.parameters,
                                    inference.outputs), run_id
        except v2.V2FormatError as exc:
            return 400, {"error": str(exc)}, run_id
