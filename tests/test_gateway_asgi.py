"""The gateway's POST path as plain ASGI (`GatewayApp`): what it reads of a request and
what it answers, in process, with a sender that records what would go to Kafka."""

from __future__ import annotations

import asyncio
import json

import httpx
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from algorail.compiler import compile_plan
from algorail.loader import validate_document
from algorail.runtime import codec
from algorail.runtime.gateway import create_app
from algorail.runtime.results import MemoryResultsStore

PIPELINE = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "asgi", "name": "fast", "version": "1.0.0"},
    "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in", "schema": {
                 "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}]}],
             "hooks": [{"name": "echo", "type": "response"}],
             "pipes": [{"from": "api.in", "to": "echo"}]},
}
URL = "/asgi/fast/in"


class Recorded:
    """A sender keeping what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((topic, value, codec.header_dict(headers)))


def app_and_sender(**options):
    plan = compile_plan(validate_document(json.loads(json.dumps(PIPELINE))))
    sender = Recorded()
    return create_app(plan, results=MemoryResultsStore(), sender=sender, **options), sender


async def post(app, url: str, **request) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gateway") as client:
        return await client.post(url, **request)


def test_a_checked_request_is_sent_and_answered_202_and_a_wrong_one_says_why():
    app, sender = app_and_sender()
    ok = asyncio.run(post(app, URL, json={"n": 1}, headers={"TraceParent": "00-" + "a" * 32
                                                            + "-" + "b" * 16 + "-01"}))
    assert ok.status_code == 202 and ok.headers["content-type"] == "application/json"
    [(topic, value, headers)] = sender.sent
    assert ok.json() == {"runId": headers[codec.RUN_ID], "status": "pending"}
    assert json.loads(value) == {"n": 1} and headers[codec.TRACEPARENT].split("-")[1] == "a" * 32
    wrong = asyncio.run(post(app, URL, content=b"n=1",
                             headers={"content-type": "text/plain"}))
    assert wrong.status_code == 415 and "application/json" in wrong.json()["error"]
    invalid = asyncio.run(post(app, URL, json={"n": "one"}))
    assert invalid.status_code == 422 and "schema" in invalid.json()["error"]
    assert len(sender.sent) == 1


def test_the_last_of_repeated_query_parameters_counts():
    app, sender = app_and_sender()
    assert asyncio.run(post(app, f"{URL}?timeout=never&timeout=5", json={"n": 1})
                       ).status_code == 202
    assert asyncio.run(post(app, f"{URL}?timeout=5&timeout=never", json={"n": 1})
                       ).status_code == 400
    assert len(sender.sent) == 1


def test_a_body_in_several_messages_is_read_whole():
    app, sender = app_and_sender()
    chunks = [b'{"n"', b": 7", b"}"]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    answered: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        answered.append(message)

    scope = {"type": "http", "method": "POST", "path": URL, "root_path": "",
             "query_string": b"", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(app(scope, receive, send))
    assert answered[0]["status"] == 202 and json.loads(sender.sent[0][1]) == {"n": 7}


def test_an_earlier_route_on_a_plan_path_is_served_first():
    own = Route(URL, lambda request: PlainTextResponse("mine"), methods=["POST"])
    app, sender = app_and_sender(extra_routes=(own,))
    answer = asyncio.run(post(app, URL, json={"n": 1}))
    assert answer.text == "mine" and sender.sent == []


def test_what_the_gateway_built_before_serving_is_left_out_of_full_collections(monkeypatch):
    """A full collection walks every object the collector tracks and stops every request
    meanwhile; the modules, app and clients made before serving live as long as the
    process, so the server starts with them frozen."""
    import gc
    import signal

    import uvicorn

    from algorail.runtime.gateway import run_server

    frozen_at_start = []
    monkeypatch.setattr(uvicorn.Server, "run",
                        lambda self: frozen_at_start.append(gc.get_freeze_count()))
    previous = signal.getsignal(signal.SIGTERM)
    gc.unfreeze()
    try:
        run_server(PlainTextResponse("ok"), "127.0.0.1", 0)
    finally:
        gc.unfreeze()
        signal.signal(signal.SIGTERM, previous)
    assert frozen_at_start and frozen_at_start[0] > 1000
