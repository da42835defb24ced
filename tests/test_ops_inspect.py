"""`algorail inspect`: a run through three algos, a conditional branch and a failing step,
found on a real broker with every hop once, in order, with its ports and skip marker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from ops_support import LONG_TEXT, break_check, ops_plan, send

from algorail.cli import cli
from algorail.ops.inspect import inspect_run
from algorail.runtime import testing


@pytest.mark.slow
def test_inspect_shows_every_hop_of_a_failed_run_in_order(tmp_path, broker):
    bs = broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    break_check(tmp_path)
    runners = testing.start_runners(plan, bs)
    try:
        send(plan, bs, "run-other", "short one")
        send(plan, bs, "run-long", LONG_TEXT)
        dead = testing.read_topic(bs, plan.runner("check").dead_letter_topic, count=1)
        assert [d["run_id"] for d in dead] == ["run-long"]
        testing.read_topic(bs, plan.runner("route").outputs["short"], count=2)
    finally:
        for runner in runners:
            runner.stop()

    report = inspect_run(plan, bs, "run-long")
    pipes = [hop.message.pipe for hop in report.hops]
    assert len(pipes) == 6, pipes
    assert pipes[:2] == ["api.in", "clean.result"]
    assert set(pipes[2:4]) == {"route.short", "route.long"}
    assert set(pipes[4:]) == {"check.errors", "check.dead-letter"}
    by_pipe = {hop.message.pipe: hop.message for hop in report.hops}
    assert by_pipe["route.short"].skip and not by_pipe["route.long"].skip
    assert by_pipe["clean.result"].payload() == {"text": LONG_TEXT.strip().lower()}
    assert "check is broken" in by_pipe["check.dead-letter"].error
    assert "check is broken" in by_pipe["check.errors"].error
    assert all(hop.message.run_id == "run-long" for hop in report.hops)
    starts = [hop.since_start_ms for hop in report.hops]
    assert starts == sorted(starts) and starts[0] == 0
    assert [h.message.pipe for h in report.critical_path][:3] == [
        "api.in", "clean.result", "route.long"]
    assert report.trace_id and len(report.trace_id) == 32

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    result = CliRunner().invoke(cli, ["inspect", "run-long", "--plan", str(plan_file),
                                      "--bootstrap-servers", bs, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [h["component"] + "." + h["port"] for h in shown["hops"]] == pipes
    assert shown["traceId"] == report.trace_id
    path = shown["criticalPath"]
    assert [step["pipe"] for step in path[:3]] == ["api.in", "clean.result", "route.long"]
    assert path[0]["ms"] == 0 and all(step["ms"] >= 0 for step in path)

    table = CliRunner().invoke(cli, ["inspect", "run-long", "--plan", str(plan_file),
                                     "--bootstrap-servers", bs])
    assert table.exit_code == 0, table.output
    assert "skip marker" in table.stdout and "critical path: api.in" in table.stdout

    missing = CliRunner().invoke(cli, ["inspect", "no-such-run", "--plan", str(plan_file),
                                       "--bootstrap-servers", bs])
    assert missing.exit_code == 1 and "no message of run no-such-run" in missing.output


def test_the_results_store_view_adds_hooks_and_narrows_the_scan(tmp_path, module_broker,
                                                                redis_url):
    import time
    import uuid

    from algorail.ops.inspect import fetch_view
    from algorail.runtime import codec, kafka_io
    from algorail.runtime.results import RedisResultsStore

    bs = module_broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    topic = plan.routes[0].topic
    run_id = uuid.uuid4().hex
    producer = kafka_io.make_producer(bs)
    hour_ago = int(time.time() * 1000) - 3600_000
    old = codec.Envelope("an-old-run", plan.deployment, "api.in").to_headers()
    producer.send(topic, b'{"text": "old"}', headers=old, timestamp_ms=hour_ago).get(10)
    ours = codec.Envelope(run_id, plan.deployment, "api.in").to_headers()
    sent = producer.send(topic, b'{"text": "ours"}', headers=ours).get(10)
    producer.close()

    store = RedisResultsStore(redis_url)  # the default prefix, as `--results-url` reads it
    try:
        store.record_hook(run_id, "short-reply", {"state": "delivered", "attempts": 1}, {})
        store.record_error(run_id, "k", {"runId": run_id, "component": "check", "error": "x",
                                         "topic": topic, "partition": 0,
                                         "offset": sent.offset})
        view = fetch_view(run_id, plan, results_url=redis_url)
    finally:
        store.redis.delete(store._key(run_id))
        store.close()
    assert view["status"] == "failed" and view["hooks"] == {"short-reply": "delivered"}
    report = inspect_run(plan, bs, run_id, view=view)
    assert [h.message.pipe for h in report.hops] == ["api.in"]
    assert report.scanned == 1  # the message of an hour before is outside the window
    wide = inspect_run(plan, bs, run_id)
    assert wide.scanned == 2
