"""Runner throughput and added latency, against a bare kafka-python loop on the same broker.

    python benchmarks/runner_throughput.py [--count 50000] [--size 1024] [--latency-count 1000]

Starts its own embedded broker. Two contenders, each in its own process: the baseline
(poll -> produce each record -> flush -> commit, the least a correct consume-produce
loop does) and `algorail runner` with a pass-through python algo. Throughput: each alone,
from the producer timestamps of the first and last output of `count` pre-loaded
messages. Latency: both running, every one of `latency-count` messages (one every 2 ms)
sent to both, timed from send to receipt, so a busy machine slows both alike. Rounds
repeat all of it; medians are reported. The last line printed is JSON with
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
from dataclasses import dataclass
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


@dataclass
class Contender:
    name: str
    command: list[str]
    source: str
    target: str
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


def paired_latencies(bootstrap_servers: str, contenders: list[Contender], start: int,
                     count: int, size: int) -> dict[str, list[float]]:
    """Milliseconds from send to receipt per contender. Each message goes to both, in
    alternating order, one pair every 2 ms, so machine noise hits both alike."""
    from kafka import TopicPartition

    received: dict[str, dict[int, float]] = {c.name: {} for c in contenders}

    def read(contender: Contender) -> None:
        consumer = kafka_io.make_consumer(bootstrap_servers, fetch_max_wait_ms=5)
        tp = TopicPartition(contender.target, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        got = received[contender.name]
        deadline = time.monotonic() + 60 + count * 0.002
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for r in records:
                    got[json.loads(r.value)["i"]] = now
        consumer.close()

    readers = [threading.Thread(target=read, args=(c,)) for c in contenders]
    for reader in readers:
        reader.start()
    time.sleep(1)  # let the readers reach their positions
    producer = kafka_io.make_producer(bootstrap_servers, linger_ms=0)
    pad = "x" * max(size - 40, 0)
    sent: dict[str, dict[int, float]] = {c.name: {} for c in contenders}
    for i in range(count):
        value = json.dumps({"i": i, "pad": pad}).encode()
        headers = messages.Envelope(f"l{i}", "bench", "api.in").to_headers()
        for c in contenders if i % 2 else contenders[::-1]:
            sent[c.name][i] = time.perf_counter()
            producer.send(c.source, value, headers=headers)
        producer.flush()
        time.sleep(0.002)
    for reader in readers:
        reader.join()
    producer.close()
    return {name: [(received[name][i] - t) * 1000 for i, t in times.items()
                   if i in received[name]] for name, times in sent.items()}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def one_round(contenders: list[Contender], bootstrap_servers: str,
              args: argparse.Namespace) -> dict[str, tuple[float, list[float]]]:
    """Throughput of each alone (pre-loaded messages), then their latency side by side."""
    rates = {}
    try:
        for c in contenders:
            kafka_io.ensure_topics(bootstrap_servers, [c.source, c.target])
            preload(bootstrap_servers, c.source, args.count, args.size)
            c.start()
            rates[c.name] = throughput(bootstrap_servers, c.target, args.count, args.timeout)
        lats = paired_latencies(bootstrap_servers, contenders, args.count, args.latency_count,
                                args.size)
    finally:
        for c in contenders:
            c.stop()
    for c in contenders:
        lat = lats[c.name]
        print(f"{c.name}: {rates[c.name]:,.0f} msgs/s, latency p50 {percentile(lat, 50):.2f}"
              f" ms, p99 {percentile(lat, 99):.2f} ms ({len(lat)} samples)", file=sys.stderr)
    return {c.name: (rates[c.name], lats[c.name]) for c in contenders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages for throughput")
    parser.add_argument("--size", type=int, default=1024, help="bytes per message")
    parser.add_argument("--latency-count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
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
            plan_path = Path(tmp, f"plan{n}.json")
            plan_path.write_text(plan.to_json())
            bare = Contender(
                "bare", [sys.executable, __file__, "--bare-loop", bs, f"bench.bare{n}.in",
                         f"bench.bare{n}.out", f"bench-bare{n}"],
                f"bench.bare{n}.in", f"bench.bare{n}.out")
            runner = Contender(
                "algorail", [sys.executable, "-m", "algorail.cli", "runner", "--plan",
                             str(plan_path), "--component", "copy", "--bootstrap-servers", bs],
                plan.routes[0].topic, plan.runner("copy").outputs["out"])
            print(f"round {n + 1} of {args.rounds}", file=sys.stderr)
            for name, result in one_round([bare, runner], bs, args).items():
                results[name].append(result)

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
