"""The hook dispatcher and the built-in webhook hook, with a real broker, the machine's
Redis and a real HTTP target on loopback that is down for a while, or for good."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from algorail.plugins.hooks import WebhookHook, WebhookRefused, sign
from conftest import BOTH_CLIENTS, read_topic, wait_until

from algorail.compiler import compile_plan
from algorail.extensions import DeliveryContext, DeliveryFailed
from algorail.loader import validate_document
from algorail.runtime import codec
from algorail.runtime.broker import free_port
from algorail.runtime.hooks import HookDispatcher, RetryPolicy
from algorail.runtime.kafka_io import ensure_topics, make_producer
from algorail.runtime.results import MemoryResultsStore, RedisResultsStore, run_view

SECRET = "s3cret"


class Target:
    """A webhook receiver: records (headers, body) of each POST; `start()` opens the port."""

    def __init__(self, port: int, status: int = 204):
        self.port, self.received, self.status = port, [], status
        self.server = None
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                target.received.append((dict(self.headers), body))
                self.send_response(target.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler = Handler

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def run_ids(self) -> list[str]:
        return [headers["X-Algorail-Run-Id"] for headers, _ in self.received]


def pipeline(target_port: int, closed_port: int) -> dict:
    return {
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "hk", "name": "hooktest", "version": "1.0.0"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "algos": [{"name": "src", "runtime": "python", "entrypoint": "stand_in:src",
                       "inputs": [{"name": "x"}], "outputs": [{"name": "out"}, {"name": "other"}]}],
            "hooks": [
                {"name": "notify", "type": "webhook", "config": {
                    "urls": [f"http://127.0.0.1:{target_port}/hook"], "secret": SECRET,
                    "retries": 12, "backoffMs": 100, "maxBackoffMs": 600, "timeoutMs": 2000}},
                {"name": "doomed", "type": "webhook", "config": {
                    "urls": [f"http://127.0.0.1:{closed_port}/"], "retries": 2,
                    "backoffMs": 50}},
                {"name": "both", "type": "response", "join": "inner"},
            ],
            "pipes": [
                {"from": "api.in", "to": "src.x"},
                {"from": "src.out", "to": "notify"},
                {"from": "src.out", "to": "doomed"},
                {"from": "src.out", "to": "both"},
                {"from": "src.other", "to": "both"},
            ],
        },
    }


@pytest.fixture(scope="module")
def hooks(module_broker):
    import redis

    if not redis.Redis(host="127.0.0.1", port=6379).ping():
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    target = Target(free_port())
    plan = compile_plan(validate_document(pipeline(target.port, free_port())))
    bootstrap = module_broker.bootstrap_servers
    ensure_topics(bootstrap, plan.created_topics())
    prefix = f"algorail-test-hooks-{uuid.uuid4().hex[:8]}:"
    results = RedisResultsStore("redis://127.0.0.1:6379/0", ttl=120, prefix=prefix)
    dispatcher = HookDispatcher(plan, bootstrap, results, allow_private_urls=True).start()
    producer = make_producer(bootstrap, linger_ms=0)
    assert dispatcher.wait_ready(30)
    yield SimpleNamespace(plan=plan, bootstrap=bootstrap, results=results, target=target,
                          producer=producer, out=plan.runner("src").outputs,
                          metrics=dispatcher.metrics.registry)
    producer.close()
    dispatcher.stop()
    target.stop()
    for key in results.redis.scan_iter(f"{prefix}*"):
        results.redis.delete(key)
    results.close()


def settled(h, *run_ids: str) -> bool:
    """Whether the `notify` webhook is done with these runs, so that no retry of theirs
    is still in flight when another test takes the target down or up."""
    return wait_until(lambda: all(h.results.hook_state(r, "notify") in ("delivered", "failed")
                                  for r in run_ids), timeout=30)


def send(h, port: str, run_id: str, payload, skip: bool = False) -> None:
    value = b"" if skip else json.dumps(payload).encode()
    headers = codec.Envelope(run_id=run_id, deployment="hooktest", source=f"src.{port}",
                                skip=skip).to_headers()
    h.producer.send(h.out[port], value=value, headers=headers).get(timeout=10)


def test_target_down_then_up_gets_every_result_once_signed(hooks):
    runs = [f"run-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]

    def retries() -> float:
        labels = {"hook": "notify"}
        return hooks.metrics.get_sample_value("algorail_hook_retries_total", labels) or 0

    retried_before = retries()
    for i, run_id in enumerate(runs):
        hooks.results.start_run(run_id, ["notify"])
        send(hooks, "out", run_id, {"n": i})
    # the target is down: the dispatcher keeps retrying and reports nothing delivered yet
    assert wait_until(lambda: retries() >= retried_before + 2, timeout=15)
    assert [hooks.results.hook_state(r, "notify") for r in runs] == [None] * len(runs)
    hooks.target.start()
    assert wait_until(lambda: all(hooks.results.hook_state(r, "notify") == "delivered"
                                  for r in runs), timeout=30)
    # a replayed message (at-least-once) is not delivered again; a later run shows the
    # dispatcher got past it
    send(hooks, "out", runs[0], {"n": 0})
    sentinel = f"sentinel-{uuid.uuid4().hex[:6]}"
    send(hooks, "out", sentinel, {"n": 99})
    assert wait_until(lambda: hooks.results.hook_state(sentinel, "notify") == "delivered",
                      timeout=30)
    ours = {*runs, sentinel}  # other tests' runs may reach the target too
    received = [r for r in hooks.target.run_ids() if r in ours]
    assert sorted(received) == sorted(ours)
    for headers, body in hooks.target.received:
        if headers["X-Algorail-Run-Id"] not in ours:
            continue
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Algorail-Signature"], expected)
        assert headers["X-Algorail-Signature"] == sign(SECRET, body)
    bodies = {h["X-Algorail-Run-Id"]: json.loads(b) for h, b in hooks.target.received}
    assert [bodies[r] for r in runs] == [{"n": i} for i in range(5)]
    view = run_view(runs[0], hooks.results.get(runs[0]))
    assert view["deliveries"]["notify"]["attempts"] > 1
    assert view["results"]["notify"]["delivered"][0]["status"] == 204


def test_target_down_past_the_retry_budget_goes_to_the_dead_letter_topic(hooks):
    run_id = f"doomed-{uuid.uuid4().hex[:6]}"
    hooks.results.start_run(run_id, ["doomed"])
    send(hooks, "out", run_id, {"payload": "lost?"})
    assert wait_until(lambda: hooks.results.hook_state(run_id, "doomed") == "failed",
                      timeout=30)
    dead = [json.loads(r.value) for r in read_topic(hooks.bootstrap,
                                                      hooks.plan.hooks[1].dead_letter_topic)]
    [mine] = [d for d in dead if d["runId"] == run_id]
    assert mine["payload"] == {"payload": "lost?"} and mine["attempts"] == 3
    assert mine["hook"] == "doomed" and "ConnectError" in mine["error"]
    view = run_view(run_id, hooks.results.get(run_id))
    assert view["status"] == "failed" and view["errors"][0]["component"] == "doomed"
    labels = {"hook": "doomed"}
    assert hooks.metrics.get_sample_value("algorail_hook_dead_letters_total", labels) >= 1
    assert hooks.metrics.get_sample_value("algorail_hook_retries_total", labels) >= 2
    assert settled(hooks, run_id)


def test_inner_join_hook_delivers_both_parts_or_reports_skipped(hooks):
    joined, skipped = f"join-{uuid.uuid4().hex[:6]}", f"skip-{uuid.uuid4().hex[:6]}"
    send(hooks, "out", joined, {"a": 1})
    send(hooks, "other", joined, {"b": 2})
    send(hooks, "out", skipped, {"a": 3})
    send(hooks, "other", skipped, None, skip=True)
    assert wait_until(lambda: hooks.results.hook_state(joined, "both") == "delivered"
                      and hooks.results.hook_state(skipped, "both") == "skipped", timeout=30)
    view = run_view(joined, hooks.results.get(joined))
    assert view["results"]["both"] == {"src.out": {"a": 1}, "src.other": {"b": 2}}
    published = [r for r in read_topic(hooks.bootstrap, hooks.plan.output_topic)
                 if codec.Envelope.from_headers(r.headers).run_id == joined]
    assert [json.loads(r.value) for r in published] == [{"src.out": {"a": 1},
                                                         "src.other": {"b": 2}}]
    assert "both" not in run_view(skipped, hooks.results.get(skipped))["results"]
    assert settled(hooks, joined, skipped)


def test_private_addresses_are_refused_unless_allowed():
    """The address table, DNS rebinding and redirects are in test_webhook_ssrf.py."""
    target = Target(free_port())
    target.start()
    try:
        url = f"http://127.0.0.1:{target.port}/x"
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out")
        with pytest.raises(WebhookRefused):
            WebhookHook().deliver(SimpleNamespace(name="h", config={"urls": [url]}), {},
                                  context)
        assert target.received == []
        allowed = SimpleNamespace(name="h", config={"urls": [url], "allowPrivateUrls": True})
        assert WebhookHook().deliver(allowed, {"x": 1}, context) == {
            "delivered": [{"url": url, "status": 204}]}
        assert [json.loads(body) for _, body in target.received] == [{"x": 1}]
    finally:
        target.stop()


def test_webhook_config_is_validated():
    def problems(config):
        return WebhookHook().validate(SimpleNamespace(config=config), None)

    assert problems({"urls": ["https://example.com/h"], "retries": 3}) == []
    assert "needs config.urls" in problems({})[0]
    assert "not an http(s) URL" in problems({"urls": ["ftp://x"]})[0]
    assert "config.retries" in problems({"urls": ["https://e.com"], "retries": -1})[0]


def test_secret_from_environment(monkeypatch):
    hook = SimpleNamespace(name="h", config={"urls": ["http://127.0.0.1:9/"],
                                             "secretEnv": "ALGORAIL_TEST_UNSET_SECRET"})
    context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                              allow_private_urls=True)
    monkeypatch.delenv("ALGORAIL_TEST_UNSET_SECRET", raising=False)
    with pytest.raises(WebhookRefused, match="ALGORAIL_TEST_UNSET_SECRET"):
        WebhookHook().deliver(hook, {}, context)


def test_secret_from_the_mounted_secrets_folder(monkeypatch, tmp_path):
    """The chart mounts a Secret with one key per hook name and points the env var at it."""
    (tmp_path / "notify").write_text("from-a-file\n")
    monkeypatch.setenv("ALGORAIL_WEBHOOK_SECRETS_DIR", str(tmp_path))
    target = Target(free_port())
    target.start()
    try:
        hook = SimpleNamespace(name="notify",
                               config={"urls": [f"http://127.0.0.1:{target.port}/"]})
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                                  allow_private_urls=True)
        WebhookHook().deliver(hook, {"x": 1}, context)
        ((headers, body),) = target.received
        assert headers["X-Algorail-Signature"] == sign("from-a-file", body)
    finally:
        target.stop()


def test_backoff_doubles_up_to_the_cap_with_jitter():
    policy = RetryPolicy.from_config({"retries": 5, "backoffMs": 100, "maxBackoffMs": 500})
    assert policy.attempts == 6
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


@pytest.mark.parametrize("status, error", [(400, WebhookRefused), (404, WebhookRefused),
                                           (429, DeliveryFailed), (503, DeliveryFailed)])
def test_client_errors_are_final_and_server_errors_are_retried(status, error):
    target = Target(free_port(), status=status)
    target.start()
    try:
        hook = SimpleNamespace(name="h", config={"urls": [f"http://127.0.0.1:{target.port}/"]})
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                                  allow_private_urls=True)
        with pytest.raises(error, match=str(status)):
            WebhookHook().deliver(hook, {"x": 1}, context)
        assert len(target.received) == 1
    finally:
        target.stop()


def test_a_retry_skips_the_urls_that_already_answered():
    ok, flaky = Target(free_port()), Target(free_port(), status=503)
    ok.start()
    flaky.start()
    try:
        urls = [f"http://127.0.0.1:{t.port}/" for t in (ok, flaky)]
        hook, webhook = SimpleNamespace(name="h", config={"urls": urls}), WebhookHook()
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                                  allow_private_urls=True)
        with pytest.raises(DeliveryFailed):
            webhook.deliver(hook, {"x": 1}, context)
        flaky.status = 200
        assert webhook.deliver(hook, {"x": 1}, context) == {
            "delivered": [{"url": urls[0], "status": 204}, {"url": urls[1], "status": 200}]}
        assert (len(ok.received), len(flaky.received)) == (1, 2)
    finally:
        ok.stop()
        flaky.stop()


@BOTH_CLIENTS
def test_a_dispatcher_stopped_mid_retry_leaves_the_message_to_the_next_one(kafka_client,
                                                                          module_broker):
    """At-least-once: nothing is committed for a payload still being retried."""
    target = Target(free_port())
    document = pipeline(target.port, free_port())
    document["metadata"]["name"] = f"restarted-{kafka_client}"
    document["spec"]["hooks"] = [document["spec"]["hooks"][0]]
    document["spec"]["pipes"] = [p for p in document["spec"]["pipes"]
                                 if p["to"] in ("src.x", "notify")]
    plan = compile_plan(validate_document(document))
    bootstrap = module_broker.bootstrap_servers
    ensure_topics(bootstrap, plan.created_topics())
    results = MemoryResultsStore()
    first = HookDispatcher(plan, bootstrap, results, allow_private_urls=True).start()
    producer = make_producer(bootstrap)
    try:
        assert first.wait_ready(30)
        headers = codec.Envelope(run_id="restart-1", source="src.out").to_headers()
        producer.send(plan.runner("src").outputs["out"], value=b'{"n": 1}',
                      headers=headers).get(timeout=10)
        assert wait_until(lambda: first.metrics.registry.get_sample_value(
            "algorail_hook_retries_total", {"hook": "notify"}), timeout=20)
        first.stop()
        assert results.hook_state("restart-1", "notify") is None
        target.start()
        second = HookDispatcher(plan, bootstrap, results, allow_private_urls=True).start()
        try:
            assert wait_until(lambda: results.hook_state("restart-1", "notify") == "delivered",
                              timeout=40)
        finally:
            second.stop()
        assert target.run_ids() == ["restart-1"]
    finally:
        producer.close()
        target.stop()


def test_the_dispatcher_takes_the_interpreter_lock_for_no_delivery_report(module_broker):
    """Its consumers' producers report failed sends only: a thread serving every
    published response's report took the interpreter lock from the gateway beside it
    once per record. What a response hook publishes still reaches its topic."""
    plan = compile_plan(validate_document({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "hk", "name": f"quiet{uuid.uuid4().hex[:6]}", "version": "1.0.0"},
        "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
                 "hooks": [{"name": "echo", "type": "response"}],
                 "pipes": [{"from": "api.in", "to": "echo"}]}}))
    bootstrap = module_broker.bootstrap_servers
    ensure_topics(bootstrap, plan.created_topics())
    results = MemoryResultsStore()
    before = set(threading.enumerate())
    dispatcher = HookDispatcher(plan, bootstrap, results).start()
    try:
        started = [t.name for t in threading.enumerate() if t not in before]
        assert dispatcher.wait_ready(30)
        producer = make_producer(bootstrap, linger_ms=0)
        run_id = uuid.uuid4().hex
        headers = codec.Envelope(run_id=run_id, source=plan.routes[0].source).to_headers()
        producer.send(plan.routes[0].topic, value=b'{"n": 1}', headers=headers).get(10)
        producer.close()
        assert wait_until(lambda: results.hook_state(run_id, "echo") == "delivered")
    finally:
        dispatcher.stop()
    assert "algorail-kafka-reports" not in started, started
    published = [json.loads(r.value) for r in read_topic(bootstrap, plan.output_topic)
                 if codec.Envelope.from_headers(r.headers).run_id == run_id]
    assert published == [{"n": 1}]
