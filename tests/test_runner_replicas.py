"""Several replicas of one runner on a 4-partition input: a replica killed with SIGKILL (its
partitions move to the other, then back when it restarts) or stopped with SIGTERM mid-stream
still gives exactly one output per input, and every input offset ends committed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import httpx
import pytest
from conftest import BOTH_CLIENTS, wait_until

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.runtime import kafka_io
from algorail.runtime.broker import free_port
from algorail.runtime.testing import TopicReader, as_dict, produce

PARTITIONS = 4
TOTAL = 4000

ALGO = """
import os
import time

calls = 0

def slow_copy(p):
    # Slow enough that a replica is stopped mid-stream; with HANG_MARKER set, the process
    # hangs on its 300th call, in the middle of a poll batch whose earlier outputs are
    # written but not committed: the test kills it there.
    global calls
    calls += 1
    marker = os.environ.get("HANG_MARKER")
    if marker and calls == 300:
        open(marker, "w").close()
        time.sleep(120)
    time.sleep(0.003)
    return p
"""

PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: rt, name: replicas}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  algos:
    - {name: copy, runtime: python, entrypoint: "replicaalgo:slow_copy", replicas: 2}
  pipes: [{from: api.in, to: copy.in}]
"""


class Replica:
    """One `algorail runner` process of the `copy` component, logging to its own file."""

    def __init__(self, plan_path, bs, log_path):
        self.log_path = log_path
        self.args = [sys.executable, "-m", "algorail.cli", "runner", "--plan", str(plan_path),
                     "--component", "copy", "--bootstrap-servers", bs]
        self.proc: subprocess.Popen | None = None
        self.metrics_port = 0

    def start(self, **env: str) -> Replica:
        self.metrics_port = free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*self.args, "--metrics-port", str(self.metrics_port)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env={**os.environ, **env})
        return self

    def duplicates_dropped(self) -> float:
        """Outputs this process found already written (by the other replica) and skipped."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        found = re.search(r"^algorail_runner_duplicates_dropped_total\{[^}]*\} (\S+)$", text,
                          re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def owned(self) -> int | None:
        """Partitions named by the last "ready" line of the current process, if any."""
        lines = [line for line in self.log_path.read_text().splitlines() if ": ready, " in line]
        return int(lines[-1].split(": ready, ")[1].split()[0]) if lines else None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)
        self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def deployment(module_broker, tmp_path):
    """A plan whose topics have 4 partitions, and two replicas sharing its consumer group."""
    bs = module_broker.bootstrap_servers
    (tmp_path / "replicaalgo.py").write_text(ALGO)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    plan = compile_plan(load_pipeline(tmp_path / "pipeline.yaml"),
                        deployment=f"rep-{uuid.uuid4().hex[:6]}")
    kafka_io.ensure_topics(bs, plan.created_topics(), partitions=PARTITIONS)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.to_json())
    replicas = [Replica(plan_path, bs, tmp_path / f"replica{i}.log") for i in range(2)]
    try:
        yield bs, plan, replicas
    finally:
        for replica in replicas:
            replica.stop()


def start_both(replicas, **env: str) -> None:
    """Start both replicas and wait until they own two partitions each; `env` goes to the
    first only."""
    replicas[0].start(**env)
    assert wait_until(lambda: replicas[0].owned() == PARTITIONS, 30), "first replica not ready"
    replicas[1].start()
    assert wait_until(lambda: [r.owned() for r in replicas] == [2, 2], 40), (
        "the two replicas did not share the partitions")


def read_until(reader: TopicReader, count: int, timeout: float) -> int:
    reader.read(count, timeout=timeout)
    assert len(reader.records) >= count, f"only {len(reader.records)} outputs in {timeout}s"
    return len(reader.records)


def committed_everywhere(bs, plan, source, expected: dict[int, int]) -> dict[int, int]:
    consumer = kafka_io.make_consumer(bs, plan.runner("copy").consumer_group)
    try:
        return {p: consumer.committed(kafka_io.TopicPartition(source, p)) or 0 for p in expected}
    finally:
        kafka_io.close_consumer(consumer)


def check_exactly_once(bs, plan, reader: TopicReader, timeout: float = 60) -> None:
    source = plan.routes[0].topic
    reader.read(TOTAL, timeout=timeout, settle=2)
    outputs = [as_dict(r) for r in reader.records]
    counts = Counter(o["run_id"] for o in outputs)
    doubled = {run: n for run, n in counts.items() if n > 1}
    missing = {f"r{i}" for i in range(TOTAL)} - set(counts)
    assert not doubled, f"{len(doubled)} inputs gave more than one output, e.g. {list(doubled)[:5]}"
    assert not missing, f"{len(missing)} inputs gave no output, e.g. {sorted(missing)[:5]}"
    assert all(o["value"]["i"] == int(o["run_id"][1:]) for o in outputs)
    inputs = TopicReader(bs, source)
    try:
        per_partition = Counter(r.partition for r in inputs.read(TOTAL, timeout=20))
    finally:
        inputs.close()
    assert len(per_partition) == PARTITIONS, "the inputs were not spread over every partition"
    expected = dict(per_partition)
    assert wait_until(lambda: committed_everywhere(bs, plan, source, expected) == expected, 15), (
        f"committed {committed_everywhere(bs, plan, source, expected)}, expected {expected}")


@BOTH_CLIENTS
def test_kill_9_of_one_replica_then_restart_gives_exactly_one_output_per_input(kafka_client,
                                                                               deployment,
                                                                               tmp_path):
    bs, plan, replicas = deployment
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    marker = tmp_path / "hung"
    start_both(replicas, HANG_MARKER=str(marker))
    reader = TopicReader(bs, out_topic)
    try:
        produce(bs, source, [(f"r{i}", {"i": i}) for i in range(TOTAL)])
        assert wait_until(marker.exists, 60), "the first replica never reached its 300th call"
        victim, survivor = replicas
        victim.signal(signal.SIGKILL)
        assert wait_until(lambda: survivor.owned() == PARTITIONS, 30), (
            "the surviving replica never took over the killed one's partitions")
        at_takeover = read_until(reader, 0, 1)
        assert at_takeover < TOTAL, "killed too late: everything was already done"
        victim.start()
        assert wait_until(lambda: victim.owned() == 2 and survivor.owned() == 2, 40), (
            "the restarted replica did not get its partitions back")
        assert len(reader.read(0, timeout=0.5)) < TOTAL, "restarted too late to test a rebalance"
        check_exactly_once(bs, plan, reader)
        # The killed replica had written outputs whose inputs were not committed yet: whoever
        # re-read those inputs dropped them instead of writing them again.
        assert survivor.duplicates_dropped() + victim.duplicates_dropped() > 0
    finally:
        reader.close()


def test_sigterm_of_one_replica_mid_stream_gives_exactly_one_output_per_input(deployment):
    bs, plan, replicas = deployment
    source, out_topic = plan.routes[0].topic, plan.runner("copy").outputs["out"]
    start_both(replicas)
    reader = TopicReader(bs, out_topic)
    try:
        produce(bs, source, [(f"r{i}", {"i": i}) for i in range(TOTAL)])
        read_until(reader, 800, 60)
        started = time.monotonic()
        replicas[0].signal(signal.SIGTERM)
        assert replicas[0].proc.returncode == 0
        assert wait_until(lambda: replicas[1].owned() == PARTITIONS, 20), (
            "the remaining replica did not take over after the graceful stop")
        assert len(reader.read(0, timeout=0.5)) < TOTAL, "stopped too late to test a handover"
        assert time.monotonic() - started < 15, "a graceful handover should not wait for a timeout"
        check_exactly_once(bs, plan, reader)
    finally:
        reader.close()

