"""A steady load through the embedded broker: does it keep up, on either Kafka client?

    python benchmarks/broker_soak.py [--seconds 60] [--rate 500] [--client both]
                                     [--through broker|dev] [--partitions 1]
                                     [--set KEY=VALUE ...]

For each client (`kafka_io.CLIENTS`: confluent, kafka-python) a fresh `EmbeddedBroker` is
started and a producer sends `--rate` records a second for `--seconds`, each carrying
its sequence number and send time, with algorail's client settings for that client
(``ALGORAIL_KAFKA_CLIENT``) plus any `--set` on the consumer (kafka-python names, or
librdkafka names such as fetch.wait.max.ms=500 for confluent).

- ``--through broker``: a consumer reads the topic the producer writes.
- ``--through dev``: `algorail dev` runs a one-algo pipeline (a pass-through) against that
  broker, its runner on the same client; the producer writes the pipeline's input topic
  and the consumer reads the algo's output topic.

Each client gets one JSON line: ``{"client", "through", "sent", "received", "lost",
"duplicates", "first_record_s", "p50_ms", "p99_ms", "p50_ms_per_10s", "broker_cpu_s",
"broker_cpu_s_per_10s", ...}``; the consumer is given 20 s after the last send to catch
up. Exit status 1 when a client did not receive everything exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from algorail.runtime import codec, kafka_io

TOPIC = "soak"
CATCH_UP_SECONDS = 20
PAD = "x" * 180  # records of about 220 bytes
DEV_PIPELINE = """\
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {owner: soak, name: soak, version: 1.0.0}
spec:
  endpoints: [{name: api, paths: [{name: in}]}]
  algos:
    - {name: copy, runtime: python, entrypoint: "copy:copy"}
  pipes: [{from: api.in, to: copy.in}]
"""


@contextmanager
def kafka_client(name: str):
    """`name` is the client of this process and of the processes it starts, meanwhile."""
    before = os.environ.get(kafka_io.CLIENT_ENV)
    os.environ[kafka_io.CLIENT_ENV] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(kafka_io.CLIENT_ENV)
        else:
            os.environ[kafka_io.CLIENT_ENV] = before


def produce(bootstrap: str, topic: str, rate: int, seconds: int, sent: list[int]) -> None:
    producer = kafka_io.make_producer(bootstrap)
    started = time.monotonic()
    for n in range(rate * seconds):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        value = json.dumps({"n": n, "t": time.time(), "pad": PAD}).encode()
        headers = codec.Envelope(run_id=f"soak-{n}").to_headers()
        producer.send(topic, value=value, key=str(n).encode(), headers=headers)
        sent[0] = n + 1
    producer.flush(30)
    producer.close()


def read(bootstrap: str, topic: str, settings: dict):
    """Batches of records of `topic` (an empty one after each idle poll), until closed."""
    consumer = kafka_io.make_consumer(bootstrap, group_id="soak", **settings)
    consumer.subscribe([topic])
    try:
        while True:
            yield from consumer.poll(timeout_ms=200).values()
            yield []
    finally:
        kafka_io.close_consumer(consumer)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def dev_mode(bootstrap: str, folder: Path):
    """`algorail dev` of `DEV_PIPELINE` against `bootstrap`: yields (input, output) topics."""
    from algorail.plan import Plan
    from algorail.runtime.testing import DevProcess

    (folder / "pipeline.yaml").write_text(DEV_PIPELINE)
    dev = DevProcess(str(folder / "pipeline.yaml"), "--bootstrap-servers", bootstrap,
                     work_dir=folder / "work")
    try:
        dev.wait_ready()
        plan = Plan.from_file(folder / "work" / "plan.json")
        yield plan.routes[0].topic, plan.runner("copy").outputs["out"]
    finally:
        dev.stop()


def soak(client: str, args: argparse.Namespace, settings: dict) -> dict:
    from algorail.runtime.broker import EmbeddedBroker

    with kafka_client(client), EmbeddedBroker() as broker, \
            tempfile.TemporaryDirectory() as folder:
        bootstrap = broker.bootstrap_servers
        if args.through == "dev":
            through = dev_mode(bootstrap, Path(folder))
        else:
            kafka_io.ensure_topics(bootstrap, [TOPIC], partitions=args.partitions)
            through = _same_topic()
        with through as (source, target):
            row = _measure(bootstrap, source, target, broker.process.pid, args, settings)
    return {"client": client, "through": args.through, **row}


@contextmanager
def _same_topic():
    yield TOPIC, TOPIC


def _measure(bootstrap: str, source: str, target: str, broker_pid: int,
             args: argparse.Namespace, settings: dict) -> dict:
    sent = [0]
    producer = threading.Thread(target=produce, daemon=True,
                                args=(bootstrap, source, args.rate, args.seconds, sent))
    cpu_before = cpu_seconds(broker_pid)
    producer.start()
    seen: set[int] = set()
    latencies: list[tuple[float, float]] = []  # (receive time, latency)
    duplicates = 0
    deadline = time.monotonic() + args.seconds + CATCH_UP_SECONDS + 30
    caught_up_by, first_record_s = None, None
    subscribed = time.monotonic()
    cpu_marks = [cpu_before]  # the broker's CPU seconds every 10 s: does it grow?
    records = read(bootstrap, target, settings)
    for batch in records:
        now = time.time()
        if time.monotonic() - subscribed >= 10 * len(cpu_marks):
            cpu_marks.append(cpu_seconds(broker_pid))
        if batch and first_record_s is None:
            first_record_s = time.monotonic() - subscribed
        for record in batch:
            body = json.loads(record.value)
            duplicates += body["n"] in seen
            seen.add(body["n"])
            latencies.append((now, now - body["t"]))
        if not producer.is_alive():
            caught_up_by = caught_up_by or time.monotonic() + CATCH_UP_SECONDS
            if len(seen) >= sent[0] or time.monotonic() > caught_up_by:
                break
        if time.monotonic() > deadline:
            break
    records.close()
    broker_cpu = cpu_seconds(broker_pid) - cpu_before
    ms = sorted(lat * 1000 for _, lat in latencies) or [0.0]
    start = latencies[0][0] if latencies else 0
    windows: dict[int, list[float]] = {}
    for at, lat in latencies:
        windows.setdefault(int((at - start) // 10), []).append(lat * 1000)
    return {
        "sent": sent[0], "received": len(seen), "lost": sent[0] - len(seen),
        "duplicates": duplicates,
        "first_record_s": round(first_record_s or -1, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1 if len(ms) > 1 else 0], 1),
        "p50_ms_per_10s": [round(statistics.median(w), 1) for _, w in sorted(windows.items())],
        "broker_cpu_s": round(broker_cpu, 1),
        "broker_cpu_s_per_10s": [round(later - earlier, 1) for earlier, later
                                 in zip(cpu_marks, cpu_marks[1:], strict=False)],
        "seconds": args.seconds, "rate": args.rate,
        "partitions": args.partitions, "settings": settings,
        "load_average": round(os.getloadavg()[0], 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=1,
                        help="partitions of the topic (--through broker)")
    parser.add_argument("--through", choices=["broker", "dev"], default="broker")
    parser.add_argument("--client", choices=[*kafka_io.CLIENTS, "both"], default="both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a consumer setting (kafka-python names, or librdkafka names "
                             "for --client confluent)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = int(value) if value.lstrip("-").isdigit() else value
    clients = list(kafka_io.CLIENTS) if args.client == "both" else [args.client]
    failed = False
    for client in clients:
        row = soak(client, args, settings if args.client != "both" else {})
        failed |= row["lost"] > 0 or row["duplicates"] > 0
        print(json.dumps(row), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
