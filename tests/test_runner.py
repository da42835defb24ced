"""Runners on a real broker: chain, fan-out, joins, triggers, batch, conditional routing,
errors, and the metrics endpoint. One broker per module; each test its own deployment."""

from __future__ import annotations

import textwrap
import uuid

import httpx
import pytest
from conftest import wait_until

from algorail.runtime import kafka_io
from algorail.runtime.codec import Envelope
from algorail.runtime.testing import plan_from_yaml, produce, read_topic, start_runners

ALGOS = '''
def upper(p):
    return {"text": p["text"].upper()}

def count(p):
    return {"words": len(p["text"].split())}

def route(p):
    return {"short": p} if len(p["text"]) < 10 else {"long": p}

def both(p):
    return {"a": p["a"], "b": p.get("b")}

def same(p):
    return p

def batch_sum(items):
    total = sum(i["n"] for i in items)
    return [{"n": i["n"], "total": total} for i in items]

def flaky(p):
    if p.get("fail"):
        raise ValueError("bad input " + str(p["n"]))
    return p
'''


def pipeline(name: str, body: str) -> str:
    head = f"""
    apiVersion: algorail.io/v1
    kind: Pipeline
    metadata: {{owner: rt, name: {name}}}
    spec:
    """
    return textwrap.dedent(head) + textwrap.indent(textwrap.dedent(body), "  ")


@pytest.fixture
def deploy(module_broker, tmp_path):
    """deploy(name, body) -> (plan, runner threads); runners stop after the test."""
    started = []
    (tmp_path / "algos.py").write_text(ALGOS)

    def _deploy(name, body, **kwargs):
        plan = plan_from_yaml(pipeline(name, body), tmp_path, module_broker.bootstrap_servers,
                              deployment=f"{name}-{uuid.uuid4().hex[:6]}")
        threads = start_runners(plan, module_broker.bootstrap_servers, **kwargs)
        started.extend(threads)
        return plan, threads

    yield _deploy
    for t in started:
        t.stop()


def topic(plan, component, port):
    return plan.runner(component).outputs[port]


def endpoint(plan, path):
    return next(r.topic for r in plan.routes if r.path == path)


def test_chain_and_fan_out(deploy, module_broker):
    bs = module_broker.bootstrap_servers
    plan, _ = deploy("chain", """
    endpoints: [{name: api, paths: [{name: in}]}]
    algos:
      - {name: up, runtime: python, entrypoint: "algos:upper", outputs: [{name: out}]}
      - {name: count, runtime: python, entrypoint: "algos:count"}
      - {name: count2, runtime: python, entrypoint: "algos:count"}
    pipes:
      - {from: api.in, to: up.in}
      - {from: up.out, to: count.in}
      - {from: api.in, to: count2.in}
    """)
    produce(bs, endpoint(plan, "in"), [(f"r{i}", {"text": f"hello world {i}"}) for i in range(20)])
    ups = read_topic(bs, topic(plan, "up", "out"), 20)
    counts = read_topic(bs, topic(plan, "count", "out"), 20, settle=0.5)
    fanned = read_topic(bs, topic(plan, "count2", "out"), 20)
    assert sorted(r["value"]["text"] for r in ups) == sorted(
        f"HELLO WORLD {i}" for i in range(20))
    assert len(counts) == 20 and {r["value"]["words"] for r in counts} == {3}
    assert {r["run_id"] for r in counts} == {f"r{i}" for i in range(20)}
    assert {r["run_id"] for r in fanned} == {f"r{i}" for i in range(20)}
    assert counts[0]["headers"]["algorail-source"] == "count.out"


JOIN_BODY = """
endpoints: [{name: api, paths: [{name: a}, {name: b}]}]
algos:
  - name: inner
    runtime: python
    entrypoint: "algos:both"
    inputs: [{name: a}, {name: b}]
    join: {type: inner, windowMs: 1500}
  - name: outer
    runtime: python
    entrypoint: "algos:both"
    inputs: [{name: a}, {name: b}]
    join: {type: outer, windowMs: 800}
  - name: first
    runtime: python
    entrypoint: "algos:same"
    inputs: [{name: a}, {name: b}]
    join: {type: any}
pipes:
  - {from: api.a, to: inner.a}
  - {from: api.b, to: inner.b}
  - {from: api.a, to: outer.a}
  - {from: api.b, to: outer.b}
  - {from: api.a, to: first.a}
  - {from: api.b, to: first.b}
"""


def test_inner_outer_and_any_joins(deploy, module_broker):
    bs = module_broker.bootstrap_servers
    plan, threads = deploy("joins", JOIN_BODY)
    produce(bs, endpoint(plan, "a"), [(f"r{i}", i) for i in range(10)])
    produce(bs, endpoint(plan, "b"), [(f"r{i}", i * 10) for i in range(5)])  # r5..r9: no b
    inner = read_topic(bs, topic(plan, "inner", "out"), 5, settle=2.0)
    assert sorted((r["run_id"], r["value"]["b"]) for r in inner) == [
        (f"r{i}", i * 10) for i in range(5)]
    outer = read_topic(bs, topic(plan, "outer", "out"), 10)
    assert {r["run_id"]: r["value"]["b"] for r in outer} == {
        f"r{i}": (i * 10 if i < 5 else None) for i in range(10)}
    first = read_topic(bs, topic(plan, "first", "out"), 10, settle=0.5)
    assert sorted(r["run_id"] for r in first) == sorted(f"r{i}" for i in range(10))
    for r in first:  # whichever input came first, alone
        [(name, value)] = r["value"].items()
        assert value == int(r["run_id"][1:]) * (1 if name == "a" else 10)
    errors = read_topic(bs, plan.error_topic, 5)
    expired = sorted(e["value"]["runId"] for e in errors if e["value"]["component"] == "inner")
    assert expired == [f"r{i}" for i in range(5, 10)]
    assert "join window" in errors[0]["value"]["error"]
    inner_runner = next(t.runner for t in threads if t.runner.spec.component == "inner")
    assert inner_runner.engine.expired_total == 5 and not inner_runner.engine.pending


def test_triggers_and_conditional_routing(deploy, module_broker):
    bs = module_broker.bootstrap_servers
    plan, _ = deploy("routes", """
    endpoints: [{name: api, paths: [{name: in}, {name: go}]}]
    algos:
      - {name: router, runtime: python, entrypoint: "algos:route",
         outputs: [{name: short}, {name: long}]}
      - {name: shout, runtime: python, entrypoint: "algos:upper"}
      - name: gated
        runtime: python
        entrypoint: "algos:upper"
        triggers: [{from: api.go, fields: [ok]}]
        join: {windowMs: 5000}  # the trigger is produced after the inputs
    pipes:
      - {from: api.in, to: router.in}
      - {from: router.short, to: shout.in}
      - {from: api.in, to: gated.in}
    """)
    texts = {"s1": "hi", "l1": "a much longer text", "s2": "yo"}
    produce(bs, endpoint(plan, "in"), [(k, {"text": v}) for k, v in texts.items()])
    produce(bs, endpoint(plan, "go"), [("s1", {"ok": True}), ("l1", {"nope": 1})])
    short = read_topic(bs, topic(plan, "router", "short"), 3)
    long = read_topic(bs, topic(plan, "router", "long"), 3)
    assert {r["run_id"]: r["skip"] for r in short} == {"s1": False, "l1": True, "s2": False}
    assert {r["run_id"]: r["skip"] for r in long} == {"s1": True, "l1": False, "s2": True}
    shouted = read_topic(bs, topic(plan, "shout", "out"), 3)
    assert {r["run_id"]: r["value"] for r in shouted} == {
        "s1": {"text": "HI"}, "l1": None, "s2": {"text": "YO"}}
    assert next(r for r in shouted if r["run_id"] == "l1")["skip"]
    gated = read_topic(bs, topic(plan, "gated", "out"), 2, settle=1.5)
    assert {r["run_id"]: r["skip"] for r in gated} == {"s1": False, "l1": True}


def test_batch_by_size_and_window(deploy, module_broker):
    bs = module_broker.bootstrap_servers
    plan, _ = deploy("batch", """
    endpoints: [{name: api, paths: [{name: in}]}]
    algos:
      - {name: summer, runtime: python, entrypoint: "algos:batch_sum",
         batch: {size: 4, windowMs: 500}}
    pipes: [{from: api.in, to: summer.in}]
    """)
    produce(bs, endpoint(plan, "in"), [(f"r{i}", {"n": i}) for i in range(10)])
    out = read_topic(bs, topic(plan, "summer", "out"), 10)
    totals = {r["value"]["n"]: r["value"]["total"] for r in out}
    assert totals == {0: 6, 1: 6, 2: 6, 3: 6, 4: 22, 5: 22, 6: 22, 7: 22, 8: 17, 9: 17}


def test_errors_go_to_the_error_topic_and_dead_letters(deploy, module_broker):
    bs = module_broker.bootstrap_servers
    plan, threads = deploy("errors", """
    endpoints: [{name: api, paths: [{name: in}]}]
    algos:
      - {name: flaky, runtime: python, entrypoint: "algos:flaky",
         retry: {attempts: 2, backoffMs: 10}}
    pipes: [{from: api.in, to: flaky.in}]
    """, metrics_port=0)
    items = [(f"r{i}", {"n": i, "fail": i % 3 == 0}) for i in range(9)]
    produce(bs, endpoint(plan, "in"), items)
    producer = kafka_io.make_producer(bs)  # a poison message: not JSON at all
    producer.send(endpoint(plan, "in"), b"{not json", headers=Envelope("poison").to_headers())
    producer.close()
    out = read_topic(bs, topic(plan, "flaky", "out"), 6)
    assert sorted(r["run_id"] for r in out) == [f"r{i}" for i in range(9) if i % 3]
    errors = read_topic(bs, plan.error_topic, 4)
    assert sorted(e["value"]["runId"] for e in errors) == ["poison", "r0", "r3", "r6"]
    poison = next(e["value"] for e in errors if e["value"]["runId"] == "poison")
    assert "cannot read the message" in poison["error"]
    error = next(e["value"] for e in errors if e["value"]["runId"] == "r3")
    assert error["component"] == "flaky" and "bad input 3" in error["error"]
    assert error["topic"] == endpoint(plan, "in") and error["offset"] == 3
    assert error["source"] == "test.in" and error["partition"] == 0
    dead = {d["run_id"]: d for d in read_topic(bs, plan.runner("flaky").dead_letter_topic, 4)}
    assert dead.pop("poison")["value"] == b"{not json"  # not retried: it cannot be read
    assert sorted(d["value"]["n"] for d in dead.values()) == [0, 3, 6]
    assert all("bad input" in d["headers"]["algorail-error"] for d in dead.values())
    runner = threads[0].runner
    port = runner.metrics_server.port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'algorail_runner_errors_total{component="flaky"} 4.0' in text
    assert 'algorail_runner_retries_total{component="flaky"} 6.0' in text
    assert 'algorail_runner_messages_out_total{component="flaky",kind="data",port="out"} 6.0' \
        in text
    lag = ('algorail_runner_consumer_lag{component="flaky",partition="0",'
           f'topic="{endpoint(plan, "in")}"}} 0.0')
    assert wait_until(lambda: lag in httpx.get(f"http://127.0.0.1:{port}/metrics").text, 10)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
