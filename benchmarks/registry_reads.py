"""Registry read latency over HTTP, without and with the Redis read cache.

    python benchmarks/registry_reads.py [--database postgresql|mariadb|sqlite] [--requests 500]

Fills a fresh database of its own (algorail_bench_<random>, dropped at the end) with 40
versions of one pipeline, serves the registry on loopback, and reads the versions list and
one version document `--requests` times from 8 threads: first with no cache (the baseline),
then with the machine's Redis (own key prefix, removed at the end). Ends with one JSON line:
``{"baseline_rps", "cached_rps", "ratio", "baseline_p50_ms", "cached_p50_ms", ...}``
(ratio = cached_rps / baseline_rps).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from algorail.registry.api import BackgroundServer, open_registry
from algorail.registry.auth import Principal, create_key
from algorail.registry.client import RegistryClient

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432", "postgres", " WITH (FORCE)"),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306", "test", ""),
}
REDIS = "redis://127.0.0.1:6379/0"


def drive(url: str, key: str, requests: int, threads: int = 8) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()

    def work(count: int) -> None:
        with RegistryClient(url, key) as client:
            for i in range(count):
                start = time.perf_counter()
                if i % 2:
                    client.pipeline_versions("bench", "hello")
                else:
                    client.pipeline_version("bench", "hello", f"1.{i % 40}.0")
                with lock:
                    latencies.append(time.perf_counter() - start)

    workers = [threading.Thread(target=work, args=(requests // threads,)) for _ in range(threads)]
    began = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    return len(latencies) / (time.perf_counter() - began), latencies


def measure(database: str, redis_url: str | None, state: str, requests: int) -> dict:
    prefix = f"algorail:bench:{uuid.uuid4().hex[:8]}"
    registry = open_registry(database, redis_url=redis_url, state_dir=state, cache_prefix=prefix)
    with registry.sessions() as session:
        key = create_key(session, "bench")
    server = BackgroundServer(registry).start()
    try:
        drive(server.url, key, 40)  # warm up connections (and the cache)
        rps, latencies = drive(server.url, key, requests)
    finally:
        server.stop()
        if redis_url:
            keys = list(registry.cache.redis.scan_iter(f"{prefix}:*"))
            if keys:
                registry.cache.redis.delete(*keys)
        registry.sessions.kw["bind"].dispose()
    latencies.sort()
    return {"rps": rps, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def fill(database: str, state: str) -> None:
    registry = open_registry(database, state_dir=state)
    doc = yaml.safe_load((ROOT / "examples" / "hello.yaml").read_text())
    doc["metadata"]["owner"] = "bench"
    for minor in range(40):
        doc = copy.deepcopy(doc)
        doc["metadata"]["version"] = f"1.{minor}.0"
        registry.push(Principal("bench"), doc)
    registry.sessions.kw["bind"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["postgresql", "mariadb", "sqlite"],
                        default="postgresql")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        admin = None
        if args.database == "sqlite":
            database = f"sqlite:///{state}/bench.db"
        else:
            server, admin_db, force = SERVERS[args.database]
            name = f"algorail_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(f"{server}/{admin_db}", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            database = f"{server}/{name}"
        try:
            fill(database, state)
            baseline = measure(database, None, state, args.requests)
            cached = measure(database, REDIS, state, args.requests)
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    print(json.dumps({
        "database": args.database, "requests": args.requests,
        "baseline_rps": round(baseline["rps"], 1), "cached_rps": round(cached["rps"], 1),
        "ratio": round(cached["rps"] / baseline["rps"], 2),
        "baseline_p50_ms": round(baseline["p50_ms"], 2),
        "cached_p50_ms": round(cached["p50_ms"], 2),
        "baseline_p99_ms": round(baseline["p99_ms"], 2),
        "cached_p99_ms": round(cached["p99_ms"], 2),
    }))


if __name__ == "__main__":
    main()
