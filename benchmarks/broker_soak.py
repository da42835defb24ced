"""A steady load through the embedded broker: does a consumer keep up, on either client?

    python benchmarks/broker_soak.py [--seconds 60] [--rate 500] [--client both]
                                     [--partitions 1] [--set KEY=VALUE ...]

For each client (kafka-python, confluent-kafka) a fresh `EmbeddedBroker` is started; a
kafka-python producer sends `--rate` records a second for `--seconds` (each carrying its
send time), and a consumer of that client reads them, with the settings algorail
recommends for the embedded broker (`algorail.runtime.broker.CONFLUENT_CONSUMER_SETTINGS`)
plus any `--set` (confluent-kafka names, e.g. fetch.wait.max.ms=500). Each client gets
one JSON line: ``{"client", "sent", "received", "lost", "first_record_s", "p50_ms",
"p99_ms", "p50_ms_per_10s", "broker_cpu_s", "broker_cpu_s_per_10s", ...}``; the
consumer is given 20 s after the last send to catch up. Exit status 1 when a client did
not receive everything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

STAMP = struct.Struct(">dI")  # send time, sequence number
TOPIC = "soak"
CATCH_UP_SECONDS = 20


def produce(bootstrap: str, rate: int, seconds: int, sent: list[int]) -> None:
    from algorail.runtime.kafka_io import make_producer

    producer = make_producer(bootstrap)
    started = time.monotonic()
    for n in range(rate * seconds):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.send(TOPIC, STAMP.pack(time.time(), n) + b"x" * 200)
        sent[0] = n + 1
    producer.flush(30)
    producer.close()


def kafka_python_records(bootstrap: str, settings: dict):
    from algorail.runtime.kafka_io import make_consumer

    consumer = make_consumer(bootstrap, group_id="soak", **settings)
    consumer.subscribe([TOPIC])
    try:
        while True:
            for batch in consumer.poll(timeout_ms=200).values():
                yield [r.value for r in batch]
            yield []
    finally:
        consumer.close()


def confluent_records(bootstrap: str, settings: dict):
    from confluent_kafka import Consumer

    from algorail.runtime.broker import CONFLUENT_CONSUMER_SETTINGS

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **CONFLUENT_CONSUMER_SETTINGS, **settings})
    consumer.subscribe([TOPIC])
    try:
        while True:
            # consume(n, timeout) waits for n records or the timeout: poll for the first
            # one, then take what is already queued, so a record waits for no others
            first = consumer.poll(0.2)
            messages = [first, *consumer.consume(499, timeout=0)] if first is not None else []
            yield [m.value() for m in messages if m.error() is None]
    finally:
        consumer.close()


CLIENTS = {"kafka-python": kafka_python_records, "confluent-kafka": confluent_records}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(client: str, args: argparse.Namespace, settings: dict) -> dict:
    from algorail.runtime.broker import EmbeddedBroker
    from algorail.runtime.kafka_io import ensure_topics

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap_servers, [TOPIC], partitions=args.partitions)
        sent = [0]
        producer = threading.Thread(target=produce, daemon=True,
                                    args=(broker.bootstrap_servers, args.rate, args.seconds,
                                          sent))
        cpu_before = cpu_seconds(broker.process.pid)
        producer.start()
        seen: set[int] = set()
        latencies: list[tuple[float, float]] = []  # (receive time, latency)
        duplicates = 0
        deadline = time.monotonic() + args.seconds + CATCH_UP_SECONDS + 30
        caught_up_by, first_record_s = None, None
        subscribed = time.monotonic()
        cpu_marks = [cpu_before]  # the broker's CPU seconds every 10 s: does it grow?
        records = CLIENTS[client](broker.bootstrap_servers, settings)
        for batch in records:
            now = time.time()
            if time.monotonic() - subscribed >= 10 * len(cpu_marks):
                cpu_marks.append(cpu_seconds(broker.process.pid))
            if batch and first_record_s is None:
                first_record_s = time.monotonic() - subscribed
            for value in batch:
                stamp, n = STAMP.unpack_from(value)
                duplicates += n in seen
                seen.add(n)
                latencies.append((now, now - stamp))
            if not producer.is_alive():
                caught_up_by = caught_up_by or time.monotonic() + CATCH_UP_SECONDS
                if len(seen) >= sent[0] or time.monotonic() > caught_up_by:
                    break
            if time.monotonic() > deadline:
                break
        records.close()
        broker_cpu = cpu_seconds(broker.process.pid) - cpu_before
    ms = sorted(lat * 1000 for _, lat in latencies) or [0.0]
    start = latencies[0][0] if latencies else 0
    windows: dict[int, list[float]] = {}
    for at, lat in latencies:
        windows.setdefault(int((at - start) // 10), []).append(lat * 1000)
    return {
        "client": client, "sent": sent[0], "received": len(seen),
        "lost": sent[0] - len(seen), "duplicates": duplicates,
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
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--client", choices=[*CLIENTS, "both"], default="both")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a consumer setting (confluent-kafka names; kafka-python "
                             "names for --client kafka-python)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = int(value) if value.lstrip("-").isdigit() else value
    clients = list(CLIENTS) if args.client == "both" else [args.client]
    failed = False
    for client in clients:
        row = soak(client, args, settings if args.client != "both" else {})
        failed |= row["lost"] > 0
        print(json.dumps(row), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
