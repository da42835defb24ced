"""The gateway's V2 gRPC inference service (`inference.GRPCInferenceService`).

The same pipeline-as-model as the REST API (v2_routes.py), on a port of its own
(``--grpc-port``), for one plan (`gateway.create_app`) or for every plan a
`router.PlanRouter` follows, so a pipeline created, updated or deleted is a model, a new
version of it, or gone for the next call. ServerLive, ServerReady, ServerMetadata,
ModelReady, ModelMetadata and ModelInfer (typed or raw tensor contents in; raw contents
out, as Triton and MLServer answer). The API key goes in the ``authorization`` (Bearer)
or ``x-api-key`` metadata; ``seldon-model`` metadata names the model like Seldon's header.
Errors are gRPC statuses: INVALID_ARGUMENT (a bad request or a failed run), NOT_FOUND,
UNAUTHENTICATED, UNAVAILABLE, DEADLINE_EXCEEDED.

The messages are those of the published protocol definition, as generated in
`tritonclient.grpc.service_pb2` (Triton's `grpc_service.proto`: package `inference`, a
superset of KServe's `grpc_predict_v2.proto`, wire-compatible for these calls); install
them with ``pip install 'algorail[grpc]'``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import algorail
from algorail import v2
from algorail.runtime.gateway import DEFAULT_SYNC_TIMEOUT, Rejected

STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}


class _Metadata:
    """gRPC invocation metadata where the gateway's checks read request headers."""

    def __init__(self, context: Any):
        self.headers = {k.lower(): v for k, v in context.invocation_metadata() or ()
                        if isinstance(v, str)}


class Models(Protocol):
    """Where the service finds the API of a model: a plan's `v2_routes.V2Api`, or the
    `router.PlanRouter` of every plan served."""

    def find(self, name: str) -> tuple[Any, str]: ...

    def is_ready(self) -> bool: ...


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: Models):
        self.models = models

    async def ServerLive(self, request, context):  # noqa: N802 - the protocol's names
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=self.models.is_ready())

    async def ServerMetadata(self, request, context):  # noqa: N802
        return pb.ServerMetadataResponse(name="algorail", version=algorail.__version__,
                                         extensions=[])

    async def ModelReady(self, request, context):  # noqa: N802
        try:
            api, _ = self.models.find(request.name)
        except Rejected:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=api.is_ready())

    async def ModelMetadata(self, request, context):  # noqa: N802
        try:
            api, name = self.models.find(request.name)
        except Rejected as exc:
            await context.abort(STATUS[exc.status], str(exc))
        return pb.ModelMetadataResponse(name=name, versions=[api.plan.version],
                                        platform="algorail-pipeline")

    async def ModelInfer(self, request, context):  # noqa: N802
        started = time.perf_counter()
        metadata = _Metadata(context)
        try:
            api, name = self.models.find(metadata.headers.get("seldon-model")
                                         or request.model_name)
            api.gateway.authorize(metadata)
            inference = v2.InferenceRequest(
                tensors=v2.from_proto(request.inputs, request.raw_input_contents, "inputs"),
                id=request.id or None,
                parameters=v2.parameters_from_proto(request.parameters),
                outputs=[o.name for o in request.outputs] or None)
        except Rejected as exc:
            await context.abort(STATUS[exc.status], str(exc))
        except v2.V2FormatError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        remaining = context.time_remaining()
        timeout = min(remaining if remaining is not None else DEFAULT_SYNC_TIMEOUT,
                      api.gateway.max_sync_timeout)
        status, body, run_id = await api.run(name, inference, timeout, started,
                                             metadata.headers.get("traceparent", ""))
        if status != 200:
            await context.abort(STATUS.get(status, grpc.StatusCode.UNKNOWN), body["error"])
        response = pb.ModelInferResponse(model_name=body["model_name"], id=body["id"])
        v2.parameters_to_proto(response.parameters, body.get("parameters") or {})
        outputs = {o["name"]: {k: v for k, v in o.items() if k != "name"}
                   for o in body["outputs"]}
        response.raw_output_contents.extend(v2.to_proto(outputs, response.outputs.add))
        return response


async def start_server(models: Models, host: str, port: int) -> grpc.aio.Server:
    """Serve the service on HOST:PORT in the running event loop (the gateway's)."""
    server = grpc.aio.server()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(models), server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}")
    await server.start()
    return server
