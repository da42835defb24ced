"""The gateway's OpenAPI 3.1 document, derived from the plan's routes."""

from __future__ import annotations

from typing import Any

from algorail.plan import Plan, RoutePlan

_ERROR = {
    "description": "",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
    }}},
}
_RUN = {
    "type": "object",
    "required": ["runId", "status", "results", "errors"],
    "properties": {
        "runId": {"type": "string"},
        "status": {"enum": ["pending", "complete", "failed"]},
        "results": {"type": "object", "description": "hook name -> what it recorded"},
        "hooks": {"type": "object", "description": "hook name -> delivered|skipped|failed"},
        "deliveries": {"type": "object"},
        "errors": {"type": "array"},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {**_ERROR, "description": description}


def _run(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Run"}}}}


def _post(route: RoutePlan, max_sync_timeout: float) -> dict[str, Any]:
    schema = route.json_schema if route.json_schema is not None else {}
    waits = ", ".join(route.hooks) or "no hooks"
    return {
        "summary": f"Start a run at {route.endpoint}.{route.path}",
        "description": (f"Produces the body to Kafka topic {route.topic}. "
                        f"A sync call waits for: {waits}."),
        "operationId": f"post_{route.endpoint}_{route.path}".replace("-", "_"),
        "parameters": [
            {"name": "sync", "in": "query", "schema": {"type": "boolean"},
             "description": "hold the request until every reachable hook reported"},
            {"name": "timeout", "in": "query",
             "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": max_sync_timeout},
             "description": "seconds a sync request waits before answering 504"},
        ],
        "requestBody": {"required": True, "content": {route.content_type: {"schema": schema}}},
        "responses": {
            "200": _run("sync: every reachable hook reported or was skipped"),
            "202": {"description": "accepted: the run started", "content": {
                "application/json": {"schema": {
                    "type": "object", "required": ["runId", "status"],
                    "properties": {"runId": {"type": "string"},
                                   "status": {"const": "pending"}}}}}},
            "400": _error("bad query parameter"),
            "401": _error("missing or unknown API key"),
            "413": _error("body too large"),
            "415": _error("wrong Content-Type"),
            "422": _error("body does not match the path's schema"),
            "503": _error("broker, results or object store unreachable: nothing started"),
            "504": _run("sync: timed out; what arrived so far"),
        },
    }


def document(plan: Plan, max_sync_timeout: float) -> dict[str, Any]:
    paths: dict[str, Any] = {
        f"{plan.runs_url}/{{runId}}": {"get": {
            "summary": "A run's status and results",
            "operationId": "get_run",
            "parameters": [{"name": "runId", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": _run("the run"), "401": _error("missing or unknown API key"),
                          "404": _error("unknown or expired run")},
        }},
        "/healthz": {"get": {"operationId": "healthz", "responses": {"200": {
            "description": "alive", "content": {"application/json": {"schema": {
                "type": "object"}}}}}}},
    }
    for route in plan.routes:
        if route.type == "http":
            paths[route.url] = {"post": _post(route, max_sync_timeout)}
    kafka = [{"path": r.path, "topic": r.topic, "contentType": r.content_type}
             for r in plan.routes if r.type == "kafka"]
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{plan.owner}/{plan.pipeline}:{plan.version}",
                 "version": plan.version,
                 "description": plan.description or f"Deployment {plan.deployment}"},
        "paths": paths,
        "components": {"schemas": {"Run": _RUN}},
        "x-algorail-kafka-endpoints": kafka,
    }
