"""Runner throughput and added latency, against a bare kafka-python loop on the same broker.

    python benchmarks/runner_throughput.py [--count 50000] [--size 1024] [--latency-count 1000]

Starts its own embedded broker. For each contender, in turn, in its own process
(alternating for `--rounds`, reporting medians, since a shared machine is noisy):
the baseline (poll -> produce each record -> flush -> commit, the least a correct
consume-produce loop does) and `algorail runner` with a pass-through python algo.
Throughput comes from the producer timestamps of the first and last output of `count`
pre-loaded messages; latency from `latency-count` messages sent one every 2 ms, timed
from send to receipt by the same reader. The last line printed is JSON with
baseline_msgs_s, algorail_msgs_s, ratio, p50_added_ms, p99_added_ms.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from algorail.runtime import kafka_io, messages
from algorail.runtime.broker import EmbeddedBroker
from algorail.runtime.testing import plan_from_yaml

PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: bench, name: passthrough}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  algos:
    - {name: copy, runtime: python, entrypoint: "benchalgo:copy"}
  pipes: [{from: api.in, to: copy.in}]
"""


def bare_loop(bootstrap_servers: str, source: str, target: str, group: str) -> None:
    """The baseline: consume, produce, flush, commit; until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = kafka_io.make_consumer(bootstrap_servers, group)
    producer = kafka_io.make_producer(bootstrap_servers)
    consumer.subscribe([source])
    while not stop.is_set():
        batch = consumer.poll(timeout_ms=100)
        for records in batch.values():
            for r in records:
                producer.send(target, value=r.value, key=r.key, headers=r.headers)
        if batch:
            producer.flush()
            consumer.commit()
    consumer.close()
    producer.close()


def preload(bootstrap_servers: str, topic: str, count: int, size: int) -> None:
    producer = kafka_io.make_producer(bootstrap_servers, linger_ms=5)
    pad = "x" * max(size - 40, 0)
    for i in range(count):
        headers = messages.Envelope(f"b{i}", "bench", "api.in").to_headers()
        producer.send(topic, json.dumps({"i": i, "pad": pad}).encode(), headers=headers)
    producer.flush()
    producer.close()


def throughput(bootstrap_servers: str, topic: str, count: int, timeout: float) -> float:
    """Messages per second between the first and last of `count` outputs."""
    consumer = kafka_io.make_consumer(bootstrap_servers)
    tps = kafka_io.partitions_of(consumer, [topic])
    consumer.assign(tps)
    consumer.seek_to_beginning()
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    while len(stamps) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=5000).values():
            stamps.extend(r.timestamp for r in records)
    consumer.close()
    if len(stamps) < count:
        raise SystemExit(f"only {len(stamps)} of {count} outputs on {topic} in {timeout:.0f}s")
    return (count - 1) / max((max(stamps) - min(stamps)) / 1000, 1e-3)


def latencies(bootstrap_servers: str, source: str, target: str, start: int, count: int,
              size: int) -> list[float]:
    """Milliseconds from send to receipt, one message every 2 ms."""
    from kafka import TopicPartition

    consumer = kafka_io.make_consumer(bootstrap_servers, fetch_max_wait_ms=5)
    tp = TopicPartition(target, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    received: dict[int, float] = {}

    def read() -> None:
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for r in records:
                    received[json.loads(r.value)["i"]] = now

    reader = threading.Thread(target=read)
    reader.start()
    producer = kafka_io.make_producer(bootstrap_servers, linger_ms=0)
    pad = "x" * max(size - 40, 0)
    sent: dict[int, float] = {}
    for i in range(count):
        headers = messages.Envelope(f"l{i}", "bench", "api.in").to_headers()
        sent[i] = time.perf_counter()
        producer.send(source, json.dumps({"i": i, "pad": pad}).encode(), headers=headers)
        time.sleep(0.002)
    producer.flush()
    reader.join()
    producer.close()
    consumer.close()
    return [(received[i] - sent[i]) * 1000 for i in sent if i in received]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def contender(name: str, command: list[str], bootstrap_servers: str, source: str, target: str,
              args: argparse.Namespace) -> tuple[float, list[float]]:
    """One round: pre-load, start the process, measure throughput then latency, stop it."""
    kafka_io.ensure_topics(bootstrap_servers, [source, target])
    preload(bootstrap_servers, source, args.count, args.size)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rate = throughput(bootstrap_servers, target, args.count, args.timeout)
        lat = latencies(bootstrap_servers, source, target, args.count, args.latency_count,
                        args.size)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print(f"{name}: {rate:,.0f} msgs/s, latency p50 {percentile(lat, 50):.2f} ms, "
          f"p99 {percentile(lat, 99):.2f} ms", file=sys.stderr)
    return rate, lat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages for throughput")
    parser.add_argument("--size", type=int, default=1024, help="bytes per message")
    parser.add_argument("--latency-count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--bare-loop", nargs=4, metavar=("SERVERS", "IN", "OUT", "GROUP"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(*args.bare_loop)
        return
    results: dict[str, list[tuple[float, list[float]]]] = {"bare": [], "algorail": []}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        bs = broker.bootstrap_servers
        Path(tmp, "benchalgo.py").write_text("def copy(payload):\n    return payload\n")
        for n in range(args.rounds):
            plan = plan_from_yaml(PIPELINE, Path(tmp), bs, deployment=f"passthrough{n}")
            plan_path = Path(tmp, "plan.json")
            plan_path.write_text(plan.to_json())
            bare = [f"bench.bare{n}.in", f"bench.bare{n}.out"]
            results["bare"].append(contender(
                f"round {n + 1}: bare kafka-python loop",
                [sys.executable, __file__, "--bare-loop", bs, *bare, f"bench-bare{n}"],
                bs, *bare, args))
            results["algorail"].append(contender(
                f"round {n + 1}: algorail runner",
                [sys.executable, "-m", "algorail.cli", "runner", "--plan", str(plan_path),
                 "--component", "copy", "--bootstrap-servers", bs],
                bs, plan.routes[0].topic, plan.runner("copy").outputs["out"], args))

    def median_rate(name: str) -> float:
        return statistics.median(rate for rate, _ in results[name])

    def median_latency(name: str, q: int) -> float:
        return statistics.median(percentile(lat, q) for _, lat in results[name])

    base_rate, rate = median_rate("bare"), median_rate("algorail")
    added = {q: median_latency("algorail", q) - median_latency("bare", q) for q in (50, 99)}
    print(json.dumps({
        "count": args.count, "size": args.size, "rounds": args.rounds,
        "baseline_msgs_s": round(base_rate, 1), "algorail_msgs_s": round(rate, 1),
        "ratio": round(rate / base_rate, 3),
        "p50_added_ms": round(added[50], 3), "p99_added_ms": round(added[99], 3),
    }))


if __name__ == "__main__":
    main()
