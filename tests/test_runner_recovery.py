"""Crashes and restarts: a runner killed with SIGKILL in the middle of 5,000 messages and
restarted produces exactly one output per input; a runner restarted in a new process
resumes from the committed offsets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid

from conftest import BOTH_CLIENTS, wait_until

from algorail.runtime import kafka_io
from algorail.runtime.testing import (
    TopicReader,
    as_dict,
    plan_from_yaml,
    produce,
    read_topic,
    start_runners,
)

ALGO = """
import os
import time

def slow_copy(p):
    # Hang once on message 1777, mid poll batch: outputs before it are written, its
    # batch is not committed; the test kills the runner there.
    marker = os.environ.get("HANG_MARKER")
    if marker and p["i"] == 1777 and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(120)
    return p
"""

PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: rt, name: crash}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  algos:
    - {name: copy, runtime: python, entrypoint: "crashalgo:slow_copy"}
  pipes: [{from: api.in, to: copy.in}]
"""


def deploy(tmp_path, bs):
    (tmp_path / "crashalgo.py").write_text(ALGO)
    plan = plan_from_yaml(PIPELINE, tmp_path, bs, deployment=f"crash-{uuid.uuid4().hex[:6]}")
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.to_json())
    return plan, plan_path


def spawn_runner(plan_path, bs, log_path, marker):
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "algorail.cli", "runner", "--plan", str(plan_path),
         "--component", "copy", "--bootstrap-servers", bs],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "HANG_MARKER": str(marker)})


def committed_offset(bs, plan, topic):
    return committed_offset_of(bs, plan, topic, "copy")


def committed_offset_of(bs, plan, topic, component="pair"):
    consumer = kafka_io.make_consumer(bs, plan.runner(component).consumer_group)
    try:
        return consumer.committed(kafka_io.TopicPartition(topic, 0)) or 0
    finally:
        kafka_io.close_consumer(consumer)


@BOTH_CLIENTS
def test_kill_9_mid_stream_then_restart_gives_exactly_one_output_per_input(kafka_client, broker,
                                                                          tmp_path):
    bs = broker.bootstrap_servers
    plan, plan_path = deploy(tmp_path, bs)
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    total = 5000
    produce(bs, source, [(f"r{i}", {"i": i, "pad": "x" * 100}) for i in range(total)])
    log_path = tmp_path / "runner.log"
    marker = tmp_path / "hung"
    first = spawn_runner(plan_path, bs, log_path, marker)
    reader = TopicReader(bs, out_topic)
    try:
        reader.read(1777, timeout=90)
        assert wait_until(marker.exists, 30), "the first runner never reached message 1777"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        before = len(reader.read(0, timeout=1, settle=1))
        committed = committed_offset(bs, plan, source)
        assert before < total, "killed too late: everything was already done"
        assert before == 1777
        assert committed < before, "the kill must leave outputs written but not committed"
        second = spawn_runner(plan_path, bs, log_path, marker)
        try:
            reader.read(total, timeout=120, settle=3)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        reader.close()
        if first.poll() is None:
            first.kill()
    outputs = [as_dict(r) for r in reader.records]
    run_ids = [o["run_id"] for o in outputs]
    assert len(run_ids) == total, f"{len(run_ids) - len(set(run_ids))} duplicates"
    assert set(run_ids) == {f"r{i}" for i in range(total)}
    assert all(o["value"]["i"] == int(o["run_id"][1:]) for o in outputs)
    log = log_path.read_text()
    remembered = [int(n) for n in re.findall(r"(\d+) earlier outputs remembered", log)]
    assert remembered[-1] >= before - committed
    assert committed_offset(bs, plan, source) == total


def test_restart_in_a_new_runner_resumes_from_committed_offsets(broker, tmp_path):
    bs = broker.bootstrap_servers
    plan, _ = deploy(tmp_path, bs)
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    [runner] = start_runners(plan, bs)
    produce(bs, source, [(f"a{i}", {"i": i}) for i in range(50)])
    assert len(read_topic(bs, out_topic, 50)) == 50
    runner.stop()
    assert committed_offset(bs, plan, source) == 50
    produce(bs, source, [(f"b{i}", {"i": i}) for i in range(50)])
    [again] = start_runners(plan, bs)
    try:
        outputs = read_topic(bs, out_topic, 100, settle=1.5)
        processed = again.runner.metrics.messages_in.labels("copy", "in")._value.get()
    finally:
        again.stop()
    assert [o["run_id"] for o in outputs] == [f"a{i}" for i in range(50)] + [
        f"b{i}" for i in range(50)]
    assert processed == 50  # only the new inputs were read again


def test_transactional_mode_commits_outputs_and_offsets_together(broker, tmp_path):
    bs = broker.bootstrap_servers
    plan, _ = deploy(tmp_path, bs)
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    [runner] = start_runners(plan, bs, transactional=True)
    try:
        produce(bs, source, [(f"t{i}", {"i": i}) for i in range(30)])
        outputs = read_topic(bs, out_topic, 30, settle=0.5)
    finally:
        runner.stop()
    assert sorted(o["run_id"] for o in outputs) == sorted(f"t{i}" for i in range(30))
    assert committed_offset(bs, plan, source) == 30


JOIN_PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: rt, name: joinrestart}
spec:
  endpoints: [{name: api, paths: [{name: a}, {name: b}]}]
  algos:
    - name: pair
      runtime: python
      entrypoint: "pairalgo:pair"
      inputs: [{name: a}, {name: b}]
      join: {type: inner, windowMs: 20000}
  pipes:
    - {from: api.a, to: pair.a}
    - {from: api.b, to: pair.b}
"""


def test_a_join_half_done_before_a_restart_completes_after_it(broker, tmp_path):
    bs = broker.bootstrap_servers
    (tmp_path / "pairalgo.py").write_text("def pair(p):\n    return [p['a'], p['b']]\n")
    plan = plan_from_yaml(JOIN_PIPELINE, tmp_path, bs)
    topic_a, topic_b = (r.topic for r in plan.routes)
    [runner] = start_runners(plan, bs)
    produce(bs, topic_a, [(f"j{i}", i) for i in range(10)])
    assert wait_until(lambda: len(runner.runner.engine.pending) == 10, 20)
    runner.stop()  # the pending runs' inputs must not be committed
    assert committed_offset_of(bs, plan, topic_a) == 0
    [again] = start_runners(plan, bs)
    try:
        produce(bs, topic_b, [(f"j{i}", -i) for i in range(10)])
        out = read_topic(bs, plan.runner("pair").outputs["out"], 10, settle=1)
    finally:
        again.stop()
    assert sorted((o["run_id"], o["value"][0], o["value"][1]) for o in out) == sorted(
        (f"j{i}", i, -i) for i in range(10))
    assert committed_offset_of(bs, plan, topic_a) == 10
