"""`algorail status` and `algorail graph --status`: lag grows while a runner is stopped and
drains after it restarts; the picture is coloured by those states."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner
from ops_support import ops_plan, send

from algorail.cli import cli
from algorail.ops.status import DOWN, STALLED, pipeline_status
from algorail.runtime import testing


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


@pytest.mark.slow
def test_lag_grows_while_a_runner_is_stopped_and_drains_after_it_restarts(tmp_path, broker):
    bs = broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    clean = testing.start_runners(plan, bs, ["clean"])[0]
    send(plan, bs, "warm-up", "first")
    testing.read_topic(bs, plan.runner("clean").outputs["result"], count=1)
    clean.stop()
    lags = []
    for n in range(3):
        for m in range(2):
            send(plan, bs, f"while-down-{n}-{m}", "queued")
        lags.append(pipeline_status(plan, bs, interval=0.2).component("clean"))
    assert [s.lag for s in lags] == [2, 4, 6]
    assert {s.state for s in lags} <= {STALLED, DOWN}
    assert lags[-1].in_per_s == 0

    result = CliRunner().invoke(cli, ["status", "--plan", str(plan_file),
                                      "--bootstrap-servers", bs, "--interval", "0.2"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "│ clean" in line)
    assert "stalled" in row or "down" in row
    assert " 6 " in row

    image = tmp_path / "status.dot"
    drawn = CliRunner().invoke(cli, ["graph", str(tmp_path / "pipeline.yaml"), "--format",
                                     "dot", "--status", "--bootstrap-servers", bs,
                                     "--deployment", plan.deployment, "-o", str(image)])
    assert drawn.exit_code == 0, drawn.output
    dot = image.read_text()
    assert 'n_clean [label="clean\\n(algo)\\nstalled"' in dot or "\\ndown" in dot
    assert "fillcolor" in dot and "msg/s" in dot

    clean = testing.start_runners(plan, bs, ["clean"])[0]
    try:
        drained = wait_for(lambda: pipeline_status(plan, bs, interval=0.2)
                           .component("clean").lag == 0)
        assert drained
        outputs = testing.read_topic(bs, plan.runner("clean").outputs["result"], count=7)
        assert len(outputs) == 7
        as_json = CliRunner().invoke(cli, ["status", "--plan", str(plan_file),
                                           "--bootstrap-servers", bs, "--json",
                                           "--interval", "0.2"])
        shown = {c["name"]: c for c in json.loads(as_json.stdout)["components"]}
        assert shown["clean"]["lag"] == 0 and shown["clean"]["state"] != STALLED
        assert shown["route"]["lag"] == 7  # not running: everything clean wrote waits
        assert set(shown) == {"clean", "route", "check", "short-reply", "long-reply"}

        # A record the live runner has done but not yet committed (it commits every
        # second) is no stall, however short the interval asked for.
        send(plan, bs, "after-restart", "fresh")
        testing.read_topic(bs, plan.runner("clean").outputs["result"], count=8)
        live = pipeline_status(plan, bs, interval=0.05).component("clean")
        assert live.state != STALLED and live.lag == 0, live
    finally:
        clean.stop()


def test_status_counts_errors_and_dead_letters_of_the_last_minutes(tmp_path, module_broker):
    bs = module_broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    runner = plan.runner("check")
    error = {"runId": "r1", "component": "check", "error": "algo 'check' failed: boom"}
    producer_topic = plan.error_topic
    from algorail.runtime import codec, kafka_io

    producer = kafka_io.make_producer(bs)
    headers = codec.Envelope("r1", plan.deployment, "check.errors").to_headers()
    producer.send(producer_topic, json.dumps(error).encode(), headers=headers)
    producer.send(runner.dead_letter_topic, b'{"text": "x"}',
                  headers=[*headers, (codec.ERROR, b"boom")])
    producer.flush()
    producer.close()
    check = pipeline_status(plan, bs, interval=0.1).component("check")
    assert (check.errors, check.dead_letters) == (1, 1)
    assert check.last_error == "algo 'check' failed: boom"
