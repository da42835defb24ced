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
from algorail.runtime.gateway import Rejected

SELDON_SUFFIX = ".pipeline"
BODY_TYPES = ("", "application/json", "application/octet-stream")


def routes(plan: Any, gateway: Any) -> list[Route]:
    v2_paths = [r for r in plan.routes if r.type == "http" and r.protocol == "v2"]
    if not v2_paths:
        return []
    api = V2Api(plan, gateway, v2_paths[0])
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


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class V2Api:
    """The handlers; the run itself goes through the gateway like any other request."""

    def __init__(self, plan: Any, gateway: Any, route: Any):
        self.plan, self.gateway, self.route = plan, gateway, route
        self.model_names = {plan.pipeline, plan.deployment}

    def model_name(self, request: Request) -> str:
        """The pipeline named by the Seldon-Model header or the URL; 404 for another."""
        name = request.headers.get("seldon-model") or request.path_params["name"]
        base = name.removesuffix(SELDON_SUFFIX)
        if base not in self.model_names:
            raise Rejected(404, f"no model {name!r} here: this gateway serves the pipeline "
                               f"{self.plan.pipeline!r} as model {self.plan.pipeline!r} or "
                               f"'{self.plan.pipeline}{SELDON_SUFFIX}'")
        return base

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
        return JSONResponse({"name": name, "versions": [], "platform": "algorail-pipeline",
                             "inputs": [], "outputs": []})

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
            self.gateway.metrics.request(self.route.url, exc.status, started)
            return error(exc.status, str(exc))
        payload = json.dumps(inference.tensors, separators=(",", ":")).encode()
        status, view = await self.gateway.execute(request, self.route, payload,
                                                  "application/json", timeout, started)
        return self.answer(name, inference, status, view)

    def parse(self, request: Request, body: bytes) -> v2.InferenceRequest:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
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

    def answer(self, name: str, inference: v2.InferenceRequest, status: int,
               view: dict[str, Any]) -> Response:
        run_id = view.get("runId", "")
        headers = {"x-run-id": run_id} if run_id else {}
        if status == 504:
            return JSONResponse({"error": f"run {run_id} did not finish in time"},
                                status_code=504, headers=headers)
        if status != 200:
            return JSONResponse({"error": view.get("error", "failed")}, status_code=status,
                                headers=headers)
        if view["status"] == "failed":
            errors = "; ".join(str(e.get("error", e)) for e in view["errors"]) or "failed"
            return JSONResponse({"error": errors}, status_code=400, headers=headers)
        tensors: dict[str, Any] = {}
        for result in view["results"].values():
            if isinstance(result, dict):
                tensors.update(result)
        try:
            body = v2.response(tensors, name, inference.id or run_id, inference.parameters,
                               inference.outputs)
        except v2.V2FormatError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=headers)
        return JSONResponse(body, headers=headers)
