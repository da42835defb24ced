"""The registry's HTTP API (Starlette), documented as OpenAPI at /v1/openapi.json.

Every /v1 route needs an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`).
Handlers only translate HTTP to `Registry` calls; the rules live in `service`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.schemas import SchemaGenerator

from algorail import __version__
from algorail.console import ConsoleFiles
from algorail.errors import AlgorailError
from algorail.ops.runs import run_stream_response
from algorail.registry import db, runs
from algorail.registry.auth import AuthError, Principal, principal_for
from algorail.registry.cache import open_cache
from algorail.registry.errors import Conflict, Invalid, RegistryError
from algorail.registry.monitoring import Monitor
from algorail.registry.policy import DeploymentPolicy
from algorail.registry.service import Registry, installed_plugins, validation
from algorail.registry.supervisor import Supervisor

log = logging.getLogger("algorail.registry")

STRING, OBJECT = {"type": "string"}, {"type": "object"}
# Answered by every /v1 operation, and by every one that takes a body.
UNAUTHORIZED = {401: {"description": "No API key, or an unknown one"}}
BODY_ERRORS = {
    413: {"description": "The body is larger than MAX_BODY_BYTES (4 MiB); it is not read"},
    422: {"description": "The body is not a JSON object, or a field is missing, of the wrong "
                         "type or too long; the error names it"},
}
MAX_BODY_BYTES = 4 * 1024 * 1024
SHUTDOWN_GRACE_S = 3  # a stream of runs never ends by itself: shutdown cuts it after this


def _json_body(required: list[str], **properties) -> dict:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


# Request bodies, referenced from the handlers' docstrings as #/components/requestBodies/X.
REQUEST_BODIES = {
    "Push": _json_body(["document"], document=OBJECT, bindings=OBJECT),
    "Blank": _json_body(["name"], name=STRING, version=STRING, description=STRING),
    "Clone": _json_body(["to"], to=STRING),
    "AlgoVersion": _json_body(
        ["version", "runtime"],
        version=STRING,
        runtime=STRING,
        settings=OBJECT,
        published={"type": "boolean"},
        description=STRING,
    ),
    "Connection": _json_body(["name", "bootstrapServers"], name=STRING, bootstrapServers=STRING),
    "Grant": _json_body(
        ["algo", "connection", "topic", "direction"],
        algo=STRING,
        connection=STRING,
        topic=STRING,
        direction={"type": "string", "enum": ["publish", "subscribe"]},
    ),
    "Deploy": _json_body(
        ["pipeline", "name"],
        pipeline=STRING,
        name=STRING,
        target={"type": "string", "enum": ["local", "kubernetes"]},
        settings=OBJECT,
    ),
    "Update": _json_body([], pipeline=STRING, settings=OBJECT),
    "Validate": _json_body([], document=OBJECT, yaml=STRING, bindings=OBJECT),
    "TestRequest": _json_body(["path", "body"], path=STRING, body=STRING),
}

SCHEMAS = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "algorail registry", "version": __version__},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "requestBodies": REQUEST_BODIES,
        },
        "security": [{"apiKey": []}],
    }
)


def _key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _principal(registry: Registry, key: str | None) -> Principal:
    with registry.sessions() as session:
        return principal_for(session, key)


async def _who(request: Request) -> Principal:
    return await run_in_threadpool(_principal, request.app.state.registry, _key(request))


async def _reply(func, *args, status: int = 200) -> JSONResponse:
    """Run a blocking registry call off the event loop and answer with its JSON."""
    return JSONResponse(await run_in_threadpool(func, *args), status_code=status)


async def _read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it is longer than MAX_BODY_BYTES
    (announced or as it streams in), so an oversized body is never read whole or parsed."""
    too_large = HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await _read_body(request) or b"{}")
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise Invalid(f"the request body is not UTF-8 JSON: {reason}") from None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    return body


KIND_NAMES = {str: "string", dict: "JSON object", bool: "boolean"}


def _field(
    body: dict, name: str, kind: type = str, default: Any = None, required: bool = True
) -> Any:
    """A body field of the right JSON type; a missing optional one gives `default`."""
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise Invalid(f"the request body needs {name!r}")
        return default
    if not isinstance(value, kind):
        raise Invalid(f"{name!r} must be a {KIND_NAMES[kind]}")
    return value


def _optional(body: dict, name: str, kind: type = str, default: Any = None) -> Any:
    return _field(body, name, kind, default, required=False)


def _registry(request: Request) -> Registry:
    return request.app.state.registry


async def whoami(request: Request) -> JSONResponse:
    """The owner and role of the calling key.
    ---
    summary: Who am I
    responses:
      200: {description: "{owner, admin}"}
    """
    who = await _who(request)
    return JSONResponse({"owner": who.owner, "admin": who.admin})


async def pipelines(request: Request) -> JSONResponse:
    """List the owner's pipelines, or push a pipeline version.
    ---
    get:
      summary: List this owner's pipelines
      responses:
        200: {description: "[{owner, name, versions, latest}]"}
    post:
      summary: Store a validated, immutable pipeline version
      requestBody: {$ref: "#/components/requestBodies/Push"}
      description: "Body: {document: <pipeline>, bindings?: {...}}; owner/name/version come
        from the document's metadata."
      responses:
        201: {description: The stored version}
        403: {description: The document's metadata.owner is not this key's owner}
        409: {description: This version already exists}
        422: {description: The pipeline is invalid; `problems` lists every broken rule}
    """
    who, reg = await _who(request), _registry(request)
    if request.method == "GET":
        return await _reply(reg.list_pipelines, who)
    body = await _body(request)
    document = _field(body, "document", dict)
    return await _reply(reg.push, who, document, _optional(body, "bindings", dict), status=201)


async def pipeline_versions(request: Request) -> JSONResponse:
    """List the versions of a pipeline, oldest first.
    ---
    summary: List pipeline versions
    responses:
      200: {description: Version summaries in semver order}
      404: {description: No such pipeline for this key's owner}
    """
    p = request.path_params
    return await _reply(
        _registry(request).pipeline_versions, await _who(request), p["owner"], p["name"]
    )


async def pipeline_version(request: Request) -> JSONResponse:
    """One pipeline version with its document.
    ---
    summary: Show a pipeline version
    responses:
      200: {description: "The version, with `document`"}
      404: {description: No such version for this key's owner}
    """
    p = request.path_params
    return await _reply(
        _registry(request).pipeline_version,
        await _who(request),
        p["owner"],
        p["name"],
        p["version"],
    )


async def clone_version(request: Request) -> JSONResponse:
    """Store a copy of a version under a new version tag.
    ---
    summary: Clone a pipeline version
    requestBody: {$ref: "#/components/requestBodies/Clone"}
    description: "Body: {to: NEW_VERSION}"
    responses:
      201: {description: The new version}
      404: {description: No such version for this key's owner}
      409: {description: The new version already exists}
    """
    p, body = request.path_params, await _body(request)
    return await _reply(
        _registry(request).clone,
        await _who(request),
        p["owner"],
        p["name"],
        p["version"],
        _field(body, "to"),
        status=201,
    )


async def blank_pipeline(request: Request) -> JSONResponse:
    """Start a pipeline from nothing.
    ---
    summary: Create a blank pipeline version
    requestBody: {$ref: "#/components/requestBodies/Blank"}
    description: "Body: {name, version?, description?}"
    responses:
      201: {description: The new, empty version}
      409: {description: This version already exists}
    """
    body = await _body(request)
    return await _reply(
        _registry(request).new_blank,
        await _who(request),
        _field(body, "name"),
        _optional(body, "version", str, "1.0.0"),
        _optional(body, "description"),
        status=201,
    )


async def algos(request: Request) -> JSONResponse:
    """List this owner's algos (every owner's for an admin key).
    ---
    summary: List algos
    responses:
      200: {description: "[{owner, name, versions, latestPublished}]"}
    """
    return await _reply(_registry(request).list_algos, await _who(request))


async def algo_versions(request: Request) -> JSONResponse:
    """List an algo's versions, or add one.
    ---
    get:
      summary: List algo versions
      responses:
        200: {description: Versions in semver order}
        404: {description: No such algo for this key's owner}
    post:
      summary: Add (and by default publish) an algo version
      requestBody: {$ref: "#/components/requestBodies/AlgoVersion"}
      description: "Body: {version, runtime, settings?, published? (default true), description?}"
      responses:
        201: {description: The new version}
        404: {description: Another owner's algo}
        409: {description: This version already exists}
    """
    who, reg, p = await _who(request), _registry(request), request.path_params
    if request.method == "GET":
        return await _reply(reg.algo_versions, who, p["owner"], p["name"])
    body = await _body(request)
    return await _reply(
        reg.publish_algo,
        who,
        p["owner"],
        p["name"],
        _field(body, "version"),
        _field(body, "runtime"),
        _optional(body, "settings", dict),
        _optional(body, "published", bool, True),
        _optional(body, "description"),
        status=201,
    )


async def connections(request: Request) -> JSONResponse:
    """Broker connections (admin keys only).
    ---
    get:
      summary: List connected external brokers
      responses:
        200: {description: "[{name, bootstrapServers}]"}
        403: {description: Not an admin key}
    post:
      summary: Connect an external Kafka broker
      requestBody: {$ref: "#/components/requestBodies/Connection"}
      description: "Body: {name, bootstrapServers}"
      responses:
        201: {description: The connection}
        403: {description: Not an admin key}
        409: {description: The name is taken}
    """
    who, reg = await _who(request), _registry(request)
    if request.method == "GET":
        return await _reply(reg.list_connections, who)
    body = await _body(request)
    return await _reply(
        reg.add_connection, who, _field(body, "name"), _field(body, "bootstrapServers"), status=201
    )


async def grant_event_flow(request: Request) -> JSONResponse:
    """Grant a published algo version publish or subscribe on a connected topic (admin).
    ---
    summary: Grant an event flow
    requestBody: {$ref: "#/components/requestBodies/Grant"}
    description: "Body: {algo: OWNER/NAME:VERSION, connection, topic, direction:
      publish|subscribe}"
    responses:
      201: {description: The grant}
      403: {description: Not an admin key}
      404: {description: No such algo version or connection}
      409: {description: The algo version is not published, or the grant exists}
    """
    body = await _body(request)
    return await _reply(
        _registry(request).grant,
        await _who(request),
        _field(body, "algo"),
        _field(body, "connection"),
        _field(body, "topic"),
        _field(body, "direction"),
        status=201,
    )


async def event_flows(request: Request) -> JSONResponse:
    """The event flows of an owner's algos.
    ---
    summary: List an owner's event flows
    responses:
      200: {description: "[{algo, connection, bootstrapServers, topic, direction}]"}
      404: {description: Another owner (for non-admin keys)}
    """
    return await _reply(
        _registry(request).event_flows, await _who(request), request.path_params["owner"]
    )


async def deployments(request: Request) -> JSONResponse:
    """List this owner's deployments (every owner's for an admin key), or deploy a pipeline
    version.
    ---
    get:
      summary: List deployments
      responses:
        200: {description: Deployments with their state}
    post:
      summary: Deploy a pipeline version
      requestBody: {$ref: "#/components/requestBodies/Deploy"}
      description: "Body: {pipeline: OWNER/NAME:VERSION, name, target: local|kubernetes,
        settings?: {...}}. local: {port, workdir, bootstrapServers, startTimeout};
        kubernetes: {namespace, deployment (resources, autoscaling; for admin keys also
        image, kafka), and for admin keys workdir}: a Pipeline resource for the operator.
        Answers at once; the deployment starts in the background (poll it until it is
        running or failed)."
      responses:
        201: {description: "The deployment, in state starting"}
        403: {description: "This key may not use the target or a setting (local deployments
          need the registry's --allow-local-deployments and an admin key)"}
        404: {description: No such pipeline version for this key's owner}
        409: {description: A deployment of that name is active}
    """
    who, reg = await _who(request), _registry(request)
    if request.method == "GET":
        return await _reply(reg.list_deployments, who)
    body = await _body(request)
    return await _reply(
        reg.deploy,
        who,
        _field(body, "pipeline"),
        _field(body, "name"),
        _optional(body, "target", str, "local"),
        _optional(body, "settings", dict),
        status=201,
    )


async def deployment(request: Request) -> JSONResponse:
    """One deployment: status, update or terminate.
    ---
    get:
      summary: Deployment status
      responses:
        200: {description: The deployment}
        404: {description: No such deployment for this key's owner}
    patch:
      summary: Update a deployment
      requestBody: {$ref: "#/components/requestBodies/Update"}
      description: "Body: {pipeline?: OWNER/NAME:VERSION, settings?: {...}}; restarts it in
        the background"
      responses:
        200: {description: "The deployment, in state starting"}
        403: {description: This key may not use a setting}
        404: {description: No such deployment or pipeline version for this key's owner}
        409: {description: The deployment is starting or stopping}
    delete:
      summary: Terminate a deployment, stopping everything it started
      responses:
        200: {description: "The deployment, terminated (or stopping, if it was starting)"}
        404: {description: No such deployment for this key's owner}
        409: {description: The deployment is already stopping}
        422: {description: The registry runs without a deployment supervisor}
        502: {description: What the deployment started could not be stopped}
    """
    who, reg, p = await _who(request), _registry(request), request.path_params
    if request.method == "GET":
        return await _reply(reg.deployment, who, p["owner"], p["name"])
    if request.method == "DELETE":
        return await _reply(reg.terminate, who, p["owner"], p["name"])
    body = await _body(request)
    return await _reply(
        reg.update,
        who,
        p["owner"],
        p["name"],
        _optional(body, "pipeline"),
        _optional(body, "settings", dict),
    )


async def validate(request: Request) -> JSONResponse:
    """Check a pipeline document as a push would, without storing it (the console's live
    validation).
    ---
    summary: Validate a pipeline document
    requestBody: {$ref: "#/components/requestBodies/Validate"}
    description: "Body: {document: <pipeline>} or {yaml: TEXT} (algorail YAML, or a Seldon
      Core 2 Pipeline manifest, which is converted), bindings?: {...}. Answers {valid,
      document, problems: [{rule, message, component, line, text}]}: the shape checks and
      graph rules of `algorail validate`, each naming the component it is about (null for
      the whole pipeline), and the algorail document read (null if the text is not one)."
    responses:
      200: {description: "{valid, document, problems}"}
    """
    await _who(request)
    body = await _body(request)
    text = _optional(body, "yaml")
    document = None if text is not None else _field(body, "document", dict)
    return await _reply(validation, document, text, _optional(body, "bindings", dict))


async def plugins(request: Request) -> JSONResponse:
    """The installed connector and hook plugins (the designer's palette).
    ---
    summary: List installed connectors and hook types
    responses:
      200: {description: "{connectors: [{name, description, kinds, configSchema}],
        hookTypes: [{name, description}]}"}
    """
    await _who(request)
    return await _reply(installed_plugins)


def _ops_deployment(reg: Registry, who: Principal, owner: str, name: str):
    return runs.ops_deployment(reg.deployment(who, owner, name))


async def deployment_runs(request: Request) -> Response:
    """The deployment's runs as they happen, as Server-Sent Events.
    ---
    summary: Stream a deployment's runs
    description: "text/event-stream. First a `ready` event; then a `run` event
      {runId, status: pending|complete|failed, startedMs, updatedMs, durationMs,
      components, messages, errors, hooks} each time a run's summary changes, starting
      with the runs of the last 50 messages per partition of the deployment's topics; a
      `problem` event {error} ends the stream when the broker cannot be read."
    responses:
      200: {description: "text/event-stream of run summaries"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, is not local (the registry does not
        reach a cluster's broker), or its broker cannot be read"}
    """
    who, p = await _who(request), request.path_params
    found = await run_in_threadpool(_ops_deployment, _registry(request), who, p["owner"],
                                    p["name"])
    return run_stream_response(found)


async def deployment_run(request: Request) -> JSONResponse:
    """One run of a deployment, as `algorail inspect RUN_ID --json` shows it.
    ---
    summary: Inspect a run
    description: "Every message of the run on the deployment's topics over the last hour
      (hops with their timing, payload preview, errors), its critical path, and the
      results store's status, hook outcomes, results and errors."
    responses:
      200: {description: "{runId, traceId, status, hooks, hops, criticalPath, scanned,
        errors, results}"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, its broker cannot be read, or no
        message of the run was found"}
    """
    who, p = await _who(request), request.path_params

    def report() -> dict:
        return runs.inspect(_ops_deployment(_registry(request), who, p["owner"], p["name"]),
                            p["run_id"])

    return await _reply(report)


async def deployment_components(request: Request) -> JSONResponse:
    """Each component of a running local deployment with its state, replicas, lag, rates
    and recent errors, as `algorail status --json` prints them.
    ---
    summary: A deployment's components
    description: "Read from its broker over about a second: committed offsets against end
      offsets (lag), two samples of end offsets (rates), the error and dead-letter topics of
      the last five minutes. Answers {components: [{name, kind, state, replicas, in_per_s,
      out_per_s, lag, errors, dead_letters, last_error}], topicRates}."
    responses:
      200: {description: "{components, topicRates}"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, is not local, or its broker cannot
        be read"}
    """
    who, p = await _who(request), request.path_params

    def read() -> dict:
        return runs.components(_ops_deployment(_registry(request), who, p["owner"], p["name"]))

    return await _reply(read)


def _last(request: Request) -> int:
    text = request.query_params.get("last", "20")
    if not text.isdigit():
        raise Invalid("last must be a whole number of messages")
    return int(text)


async def deployment_messages(request: Request) -> JSONResponse:
    """The last messages of one of a running local deployment's pipes, as `algorail tail`
    reads them.
    ---
    summary: The last messages of a pipe
    description: "Query: pipe (component.port, an endpoint path or a topic; all pipes
      without it), last (per partition, default 20, at most 200). Answers {pipes, messages:
      [{topic, partition, offset, timestamp, component, port, run_id, key, headers,
      content_type, size, error, payload (a preview)}]}, newest first."
    responses:
      200: {description: "{pipes, messages}"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, is not local, or its broker cannot
        be read"}
      422: {description: "The deployment has no such pipe (the error lists its pipes), or
        last is not a number"}
    """
    who, p = await _who(request), request.path_params
    pipe, last = request.query_params.get("pipe") or None, _last(request)

    def read() -> dict:
        found = _ops_deployment(_registry(request), who, p["owner"], p["name"])
        return runs.messages(found, pipe, last)

    return await _reply(read)


async def test_request(request: Request) -> JSONResponse:
    """Send a request to one of the deployment's http endpoint paths through its gateway.
    ---
    summary: Send a test request
    requestBody: {$ref: "#/components/requestBodies/TestRequest"}
    description: "Body: {path: PATH_NAME, body: TEXT}, sent with the path's content type
      (async: the gateway answers at once with the run id). Answers {status, url, answer}:
      the gateway's status and JSON answer, a refusal (415, 422) included."
    responses:
      200: {description: "{status, url, answer}"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, or its gateway cannot be reached"}
      422: {description: The deployment has no http endpoint path of that name}
    """
    who, p, body = await _who(request), request.path_params, await _body(request)
    path, text = _field(body, "path"), _field(body, "body")

    def send() -> dict:
        found = _ops_deployment(_registry(request), who, p["owner"], p["name"])
        return runs.send_test_request(found, path, text)

    return await _reply(send)


async def deployment_metrics(request: Request) -> JSONResponse:
    """A deployment's per-component throughput, latency percentiles and errors.
    ---
    summary: Monitor a deployment
    description: "From its gateway's /metrics (every runner's metrics), sampled every 5 s
      from the first call on, for as long as it is looked at within the hour; the last hour
      is kept. Answers {sampleSeconds, samples, problem, components: [{component, points:
      [{t (ms), throughput (messages written per second), p50, p95, p99 (algo call ms, null
      without calls), errors (errors and dead letters in the interval)}]}]}."
    responses:
      200: {description: "{sampleSeconds, samples, problem, components}"}
      404: {description: No such deployment for this key's owner}
      409: {description: "The deployment is not running, or the registry knows no gateway
        URL for it"}
    """
    who, p = await _who(request), request.path_params
    d = await run_in_threadpool(_registry(request).deployment, who, p["owner"], p["name"])
    url = (d.get("runtime") or {}).get("url")
    if d["state"] != "running" or not url:
        raise Conflict(f"deployment {d['owner']}/{d['name']} is {d['state']}"
                       + ("" if url else " and the registry knows no gateway URL for it")
                       + ": there are no metrics to read")
    return await _reply(request.app.state.monitor.view, d["owner"], d["name"], f"{url}/metrics")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def openapi_document(routes=None) -> dict:
    """The OpenAPI document. A handler serving several methods documents each under its
    method's name, so each operation takes its own part; path parameters are strings.
    Methods are in a fixed order (a route keeps them in a set), so the document is the same
    in every process."""
    schema = SCHEMAS.get_schema(routes=routes or ROUTES)
    schema["paths"] = {path: dict(sorted(methods.items()))
                       for path, methods in schema["paths"].items()}
    for path, methods in schema["paths"].items():
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": STRING}
            for name in re.findall(r"{(\w+)}", path)
        ]
        for method, operation in methods.items():
            operation = {**operation.get(method, operation), "parameters": parameters}
            responses = {**operation["responses"], **UNAUTHORIZED}
            if "requestBody" in operation:
                responses = {**BODY_ERRORS, **responses}
            operation["responses"] = dict(sorted(responses.items(), key=lambda r: str(r[0])))
            methods[method] = operation
    return schema


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(openapi_document(request.app.routes))


async def _registry_error(request: Request, exc: RegistryError) -> JSONResponse:
    return JSONResponse({"error": str(exc), "problems": exc.problems}, status_code=exc.status)


async def _auth_error(request: Request, exc: AuthError) -> JSONResponse:
    return JSONResponse({"error": str(exc), "problems": []}, status_code=401)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Unknown paths and methods answer JSON like every other error."""
    return JSONResponse(
        {"error": exc.detail, "problems": []}, status_code=exc.status_code, headers=exc.headers
    )


async def _other_error(request: Request, exc: AlgorailError) -> JSONResponse:
    """A deployment target that failed (the cluster, processes): the caller can act on it."""
    return JSONResponse({"error": str(exc), "problems": []}, status_code=502)


ROUTES = [
    Route("/healthz", healthz, include_in_schema=False),
    Route("/v1/openapi.json", openapi, include_in_schema=False),
    Route("/v1/whoami", whoami),
    Route("/v1/pipelines", pipelines, methods=["GET", "POST"]),
    Route("/v1/pipelines/blank", blank_pipeline, methods=["POST"]),
    Route("/v1/pipelines/{owner}/{name}/versions", pipeline_versions),
    Route("/v1/pipelines/{owner}/{name}/versions/{version}", pipeline_version),
    Route("/v1/pipelines/{owner}/{name}/versions/{version}/clone", clone_version, methods=["POST"]),
    Route("/v1/algos", algos),
    Route("/v1/algos/{owner}/{name}/versions", algo_versions, methods=["GET", "POST"]),
    Route("/v1/admin/connections", connections, methods=["GET", "POST"]),
    Route("/v1/admin/event-flows", grant_event_flow, methods=["POST"]),
    Route("/v1/owners/{owner}/event-flows", event_flows),
    Route("/v1/deployments", deployments, methods=["GET", "POST"]),
    Route("/v1/deployments/{owner}/{name}", deployment, methods=["GET", "PATCH", "DELETE"]),
    Route("/v1/deployments/{owner}/{name}/runs", deployment_runs),
    Route("/v1/deployments/{owner}/{name}/runs/{run_id}", deployment_run),
    Route("/v1/deployments/{owner}/{name}/requests", test_request, methods=["POST"]),
    Route("/v1/deployments/{owner}/{name}/components", deployment_components),
    Route("/v1/deployments/{owner}/{name}/messages", deployment_messages),
    Route("/v1/deployments/{owner}/{name}/metrics", deployment_metrics),
    Route("/v1/validate", validate, methods=["POST"]),
    Route("/v1/plugins", plugins),
]


def create_app(registry: Registry) -> Starlette:
    """The /v1 API, and the web console at /ui/ (static files that call the API)."""
    monitor = Monitor()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            yield
        finally:
            monitor.close()

    app = Starlette(
        routes=[*ROUTES, Mount("/ui", app=ConsoleFiles(), name="console")],
        lifespan=lifespan,
        exception_handlers={
            RegistryError: _registry_error,
            AuthError: _auth_error,
            AlgorailError: _other_error,
            HTTPException: _http_error,
        },
    )
    app.state.registry = registry
    app.state.monitor = monitor
    return app


def open_registry(
    database_url: str | None = None,
    redis_url: str | None = None,
    state_dir: str | Path | None = None,
    cache_prefix: str | None = None,
    policy: DeploymentPolicy | None = None,
) -> Registry:
    """Open (and migrate) the database and wire the cache, the supervisor and the
    deployment policy (default: no local deployments, kubernetes namespace `algorail`).
    The cache prefix defaults to `algorail:registry:<the database's identity>`."""
    engine = db.open_engine(database_url)
    db.migrate(engine)
    if state_dir is None:
        state_dir = Path(db.default_database_url().removeprefix("sqlite:///")).parent / "state"
    if redis_url and not cache_prefix:
        cache_prefix = f"algorail:registry:{db.identity(engine)}"
    return Registry(
        db.session_factory(engine),
        cache=open_cache(redis_url, cache_prefix),
        supervisor=Supervisor(state_dir),
        policy=policy,
    )


class BackgroundServer:
    """The API on a loopback port in a thread of this process (tests, notebooks)."""

    def __init__(self, registry: Registry, host: str = "127.0.0.1", port: int = 0):
        import threading

        import uvicorn

        from algorail.runtime.broker import free_port

        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            create_app(registry), host=host, port=self.port, log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the registry did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(registry: Registry, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Reconcile deployments recorded before a restart, then serve until interrupted."""
    import uvicorn

    for deployment_name, state in registry.reconcile().items():
        log.warning("deployment %s: %s", deployment_name, state)
    try:
        uvicorn.run(create_app(registry), host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    finally:
        registry.close()
