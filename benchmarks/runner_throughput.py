"""Runner throughput, CPU and added latency, against a bare confluent-kafka loop and a
quix-streams app on the same broker.

    python benchmarks/runner_throughput.py [--count 50000] [--sizes 1024 100]
                                           [--values json bytes]
                                           [--latency-count 1000] [--rounds 3]
                                           [--quix-python .venv-quix/bin/python]

Starts its own embedded broker. Contenders, each in its own process, each a pass-through
with at-least-once delivery (commit after the outputs are acknowledged), doing the same
work with each value: ``json`` values are decoded and encoded again (quix-streams' default
serializers; algorail's default content type, `application/json`; orjson in all three),
``bytes`` values are passed on as they came (quix-streams' ``bytes`` serializers; ports of
type `application/octet-stream`):

- ``bare``: a loop on confluent-kafka itself (poll a record as soon as there is one, with
  the others already fetched -> produce each record -> flush
  -> commit), the least a correct consume-produce loop does;
- ``quix``: a quix-streams `Application` (its default at-least-once guarantee) whose
  dataframe goes to the output topic, run by the interpreter of ``--quix-python`` (its own
  virtualenv: quix-streams pins its confluent-kafka; ``python3 -m venv .venv-quix &&
  .venv-quix/bin/pip install quixstreams``); skipped with a note when it is missing;
- ``algorail``: `algorail runner` with a pass-through python algo, on the client
  `ALGORAIL_KAFKA_CLIENT` selects (confluent by default), dedupe on.

All consumers get the embedded broker's settings (`broker.CONFLUENT_CONSUMER_SETTINGS`).
Throughput: each alone on a fresh broker of its own (the embedded broker slows as it
fills, so on a shared one whoever ran later ran slower), from the timestamps of the first
and last output of `count` pre-loaded messages (quix's output keeps its input's timestamp
unless set, so it sets the time of producing); CPU per message: the contender's CPU time
between its first and last output. Idle memory: each alone, resident MiB after
``--idle-seconds`` with nothing to read (target for the runner: at most 80 MiB). Latency:
all running on one more fresh broker, each having passed 100 messages on first, every one
of `latency-count` messages (one every 2 ms) sent to each, timed from send to receipt, so
a busy machine slows all alike. Each round runs every size and every contender in turn,
the contenders' order rotated from round to round (each goes first, in the middle and last
as often as the others over three rounds); medians are reported. The last line
printed is JSON: per kind of value, size and contender msgs_s, cpu_us_per_msg, p50_ms,
p99_ms, idle_rss_mib, and the ratios of algorail to each peer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from algorail.runtime import codec, kafka_io
from algorail.runtime.broker import CONFLUENT_CONSUMER_SETTINGS, EmbeddedBroker
from algorail.runtime.testing import plan_from_yaml

IDLE_RSS_TARGET_MIB = 80  # an idle runner replica, resident
WARMUP = 100  # messages each contender passes on before the latency is timed
MIN_IDLE_SECONDS = 5  # the embedded broker answers a join after 3 s (README, its limits)

CONTENT_TYPES = {"json": codec.JSON, "bytes": "application/octet-stream"}
PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {{owner: bench, name: passthrough}}
spec:
  endpoints: [{{name: api, paths: [{{name: in, contentType: {0}}}]}}]
  algos:
    - {{name: copy, runtime: python, entrypoint: "benchalgo:copy",
       inputs: [{{name: in, contentType: {0}}}], outputs: [{{name: out, contentType: {0}}}]}}
  pipes: [{{from: api.in, to: copy.in}}]
"""


# Each peer runs as `python -c PEER SERVERS IN OUT GROUP SETTINGS_JSON VALUES` until SIGTERM.
BARE_LOOP = """
import json, signal, sys, threading
import confluent_kafka as ck
import orjson
servers, source, target, group, settings, values = sys.argv[1:]
decode = values == "json"
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
consumer = ck.Consumer({"bootstrap.servers": servers, "group.id": group,
                        "enable.auto.commit": False, "auto.offset.reset": "earliest",
                        **json.loads(settings)})
producer = ck.Producer({"bootstrap.servers": servers, "linger.ms": 1})
consumer.subscribe([source])
while not stop.is_set():
    first = consumer.poll(0.1)  # returns as soon as a record is there
    if first is None:
        continue
    batch = [first, *consumer.consume(499, 0)]  # with what else was fetched already
    for m in batch:
        if m.error() is None:
            value = orjson.dumps(orjson.loads(m.value())) if decode else m.value()
            producer.produce(target, value, m.key(), headers=m.headers())
    if batch:
        producer.flush()
        consumer.commit(asynchronous=False)
consumer.close()
"""
QUIX_APP = """
import json, signal, sys, time
from quixstreams import Application
servers, source, target, group, settings, values = sys.argv[1:]
app = Application(broker_address=servers, consumer_group=group, auto_offset_reset="earliest",
                  consumer_extra_config=json.loads(settings), auto_create_topics=False)
out = app.topic(target, value_serializer=values)
sdf = app.dataframe(app.topic(source, value_deserializer=values))
sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
sdf.to_topic(out)
signal.signal(signal.SIGTERM, lambda *_: app.stop())
app.run()
"""


def preload(bootstrap_servers: str, topic: str, count: int, size: int, values: str) -> None:
    producer = kafka_io.make_producer(bootstrap_servers, linger_ms=5)
    pad = "x" * max(size - 40, 0)
    for i in range(count):
        headers = codec.Envelope(f"b{i}", "bench", "api.in", CONTENT_TYPES[values]).to_headers()
        producer.send(topic, json.dumps({"i": i, "pad": pad}).encode(), headers=headers)
    producer.flush()
    producer.close()


def throughput(bootstrap_servers: str, topic: str, count: int, timeout: float,
               process: psutil.Process) -> tuple[float, float]:
    """Messages per second between the first and last of `count` outputs, and the CPU
    microseconds per message `process` spent meanwhile."""
    consumer = kafka_io.make_consumer(bootstrap_servers)
    tps = kafka_io.partitions_of(consumer, [topic])
    consumer.assign(tps)
    consumer.seek_to_beginning()
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    first_cpu = None
    while len(stamps) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200, max_records=5000).values():
            if first_cpu is None:
                first_cpu, first_seen = sum(process.cpu_times()[:2]), len(records)
            stamps.extend(r.timestamp for r in records)
    last_cpu = sum(process.cpu_times()[:2])
    kafka_io.close_consumer(consumer)
    if len(stamps) < count:
        raise SystemExit(f"only {len(stamps)} of {count} outputs on {topic} in {timeout:.0f}s")
    cpu_us = (last_cpu - first_cpu) * 1e6 / max(count - first_seen, 1)
    return (count - 1) / max((max(stamps) - min(stamps)) / 1000, 1e-3), cpu_us


@dataclass
class Contender:
    name: str
    command: list[str]
    source: str
    target: str
    process: subprocess.Popen | None = None

    def start(self) -> psutil.Process:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        return psutil.Process(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


def paired_latencies(bootstrap_servers: str, contenders: list[Contender], start: int,
                     count: int, size: int, values: str) -> dict[str, list[float]]:
    """Milliseconds from send to receipt per contender. Each message goes to both, in
    alternating order, one pair every 2 ms, so machine noise hits both alike."""
    received: dict[str, dict[int, float]] = {c.name: {} for c in contenders}

    def read(contender: Contender) -> None:
        consumer = kafka_io.make_consumer(bootstrap_servers, fetch_max_wait_ms=5)
        tp = kafka_io.TopicPartition(contender.target, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        got = received[contender.name]
        deadline = time.monotonic() + 60 + count * 0.002
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for r in records:
                    got[json.loads(r.value)["i"]] = now
        kafka_io.close_consumer(consumer)

    readers = [threading.Thread(target=read, args=(c,)) for c in contenders]
    for reader in readers:
        reader.start()
    time.sleep(1)  # let the readers reach their positions
    producer = kafka_io.make_producer(bootstrap_servers, linger_ms=0)
    pad = "x" * max(size - 40, 0)
    sent: dict[str, dict[int, float]] = {c.name: {} for c in contenders}
    for i in range(count):
        value = json.dumps({"i": i, "pad": pad}).encode()
        headers = codec.Envelope(f"l{i}", "bench", "api.in", CONTENT_TYPES[values]).to_headers()
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


def idle_rss(contender: Contender, seconds: float) -> float:
    """MiB resident of `contender` after `seconds` with nothing to read (its group joined,
    its modules imported): what a deployment pays per idle replica."""
    process = contender.start()
    try:
        time.sleep(seconds)
        return process.memory_info().rss / 2**20
    finally:
        contender.stop()


def one_round(make: Callable[[str], dict[str, Contender]], names: list[str], size: int,
              values: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Each contender alone on a fresh broker of its own (the embedded broker slows as it
    fills: on a shared one, who ran later ran slower): idle memory, then throughput and CPU
    of pre-loaded messages. Then all of them side by side on one more fresh broker, once
    each has passed `WARMUP` messages on (its group joined), for latency."""
    rates, rss = {}, {}
    for name in names:
        with EmbeddedBroker() as broker:
            bootstrap_servers = broker.bootstrap_servers
            c = make(bootstrap_servers)[name]
            try:
                kafka_io.ensure_topics(bootstrap_servers, [c.source, c.target])
                rss[c.name] = idle_rss(c, args.idle_seconds)
                preload(bootstrap_servers, c.source, args.count, size, values)
                rates[c.name] = throughput(bootstrap_servers, c.target, args.count,
                                           args.timeout, c.start())
            finally:
                c.stop()
    with EmbeddedBroker() as broker:
        bootstrap_servers = broker.bootstrap_servers
        contenders = [make(bootstrap_servers)[name] for name in names]
        try:
            for c in contenders:
                kafka_io.ensure_topics(bootstrap_servers, [c.source, c.target])
                preload(bootstrap_servers, c.source, WARMUP, size, values)
                throughput(bootstrap_servers, c.target, WARMUP, args.timeout, c.start())
            lats = paired_latencies(bootstrap_servers, contenders, WARMUP, args.latency_count,
                                    size, values)
        finally:
            for c in contenders:
                c.stop()
    rows = {}
    for c in contenders:
        lat = lats[c.name]
        rows[c.name] = {"msgs_s": rates[c.name][0], "cpu_us_per_msg": rates[c.name][1],
                        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                        "idle_rss_mib": rss[c.name]}
        row = rows[c.name]
        print(f"{size} B {values} {c.name}: {row['msgs_s']:,.0f} msgs/s, idle "
              f"{row['idle_rss_mib']:.0f} MiB, {row['cpu_us_per_msg']:.0f} us CPU per msg, "
              f"latency p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms ({len(lat)} "
              f"samples), load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return rows


def make_contenders(name: str, values: str, bootstrap_servers: str, folder: Path,
                    args: argparse.Namespace, quix: bool) -> list[Contender]:
    plan = plan_from_yaml(PIPELINE.format(CONTENT_TYPES[values]), folder, bootstrap_servers,
                          deployment=f"passthrough{name}")
    plan_path = folder / f"plan{name}.json"
    plan_path.write_text(plan.to_json())
    peers = [("bare", sys.executable, BARE_LOOP)]
    peers += [("quix", str(args.quix_python), QUIX_APP)] if quix else []
    settings = json.dumps(CONFLUENT_CONSUMER_SETTINGS)
    contenders = [Contender(
        peer, [python, "-c", code, bootstrap_servers, f"bench.{peer}{name}.in",
               f"bench.{peer}{name}.out", f"bench-{peer}{name}", settings, values],
        f"bench.{peer}{name}.in", f"bench.{peer}{name}.out")
        for peer, python, code in peers]
    contenders.append(Contender(
        "algorail", [sys.executable, "-m", "algorail.cli", "runner", "--plan", str(plan_path),
                     "--component", "copy", "--bootstrap-servers", bootstrap_servers],
        plan.routes[0].topic, plan.runner("copy").outputs["out"]))
    return contenders


def compare(results: dict[str, list[dict[str, float]]]) -> dict:
    """Each contender's medians over the rounds, and algorail's ratios to each peer."""
    rows = {who: {key: round(statistics.median(r[key] for r in rounds), 2)
                  for key in ("msgs_s", "cpu_us_per_msg", "p50_ms", "p99_ms", "idle_rss_mib")}
            for who, rounds in results.items()}
    mine = rows["algorail"]
    ratios = {}
    for peer in ("bare", "quix"):
        if peer in rows:
            ratios[f"msgs_vs_{peer}"] = round(mine["msgs_s"] / rows[peer]["msgs_s"], 3)
            ratios[f"cpu_vs_{peer}"] = (round(  # None: too few outputs to time the CPU
                mine["cpu_us_per_msg"] / rows[peer]["cpu_us_per_msg"], 3)
                if rows[peer]["cpu_us_per_msg"] else None)
            ratios[f"p50_added_ms_vs_{peer}"] = round(mine["p50_ms"] - rows[peer]["p50_ms"], 2)
            ratios[f"idle_rss_vs_{peer}"] = round(
                mine["idle_rss_mib"] / rows[peer]["idle_rss_mib"], 3)
    ratios["idle_rss_target_met"] = mine["idle_rss_mib"] <= IDLE_RSS_TARGET_MIB
    return {"contenders": rows, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages for throughput")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 100],
                        help="bytes per message")
    parser.add_argument("--values", nargs="+", choices=sorted(CONTENT_TYPES),
                        default=["json", "bytes"],
                        help="what each contender does with a value: json decodes and "
                             "encodes it, bytes passes it on")
    parser.add_argument("--latency-count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--idle-seconds", type=float, default=10,
                        help="idle time before each contender's resident memory is read "
                             f"(at least {MIN_IDLE_SECONDS:.0f})")
    parser.add_argument("--quix-python", type=Path,
                        default=Path(__file__).resolve().parent.parent / ".venv-quix/bin/python")
    args = parser.parse_args()
    if args.idle_seconds < MIN_IDLE_SECONDS:
        parser.error(f"--idle-seconds must be at least {MIN_IDLE_SECONDS:.0f}: a contender "
                     "stopped before the broker answered its group join leaves its group "
                     "without partitions for good on the embedded broker")
    quix = args.quix_python.exists()
    if not quix:
        print(f"no quix-streams contender: {args.quix_python} is missing (python3 -m venv "
              ".venv-quix && .venv-quix/bin/pip install quixstreams)", file=sys.stderr)
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    names = ["bare", "quix", "algorail"] if quix else ["bare", "algorail"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "benchalgo.py").write_text("def copy(payload):\n    return payload\n")
        for n in range(args.rounds):
            shift = n % len(names)  # each goes first, in the middle and last in turn
            order = names[shift:] + names[:shift]
            for values in args.values:
                for size in args.sizes:
                    def make(bootstrap_servers: str, name: str = f"{n}x{size}{values}",
                             values: str = values) -> dict[str, Contender]:
                        return {c.name: c for c in make_contenders(
                            name, values, bootstrap_servers, Path(tmp), args, quix)}

                    print(f"round {n + 1} of {args.rounds}, {size} B, {values} values",
                          file=sys.stderr)
                    for who, row in one_round(make, order, size, values, args).items():
                        results.setdefault((values, size, who), []).append(row)

    summary: dict = {"count": args.count, "rounds": args.rounds,
                     "client": kafka_io.client_name(), "cpus": os.cpu_count()}
    for values in args.values:
        for size in args.sizes:
            summary.setdefault(values, {})[f"{size}B"] = compare(
                {who: rows for (v, s, who), rows in results.items() if (v, s) == (values, size)})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
