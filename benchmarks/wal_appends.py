"""Write-ahead log appends from concurrent threads: group commit against one fsync each.

    python benchmarks/wal_appends.py --old-source DIR [--appends 640] [--threads 1 16 64]

Runs the same workload (`--appends` records of ~100 B, shared by `--threads` threads,
each returning only once its record is fsync'd) with this checkout's `WriteAheadLog` and
with the one in `--old-source` (a checkout before group commit), alternately, each in its
own process; one JSON line per thread count with appends/s, fsyncs and CPU ms per append
for both, and the ratio of appends/s (this / old).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKLOAD = """
import json, os, sys, tempfile, threading, time
from algorail.runtime import wal
threads, appends = int(sys.argv[1]), int(sys.argv[2])
calls = [0]
real_fsync = os.fsync
def counted(fd):
    calls[0] += 1
    real_fsync(fd)
wal.os.fsync = counted  # a log without the `fsync` argument calls os.fsync
directory = tempfile.mkdtemp(dir=sys.argv[3])
try:
    log = wal.WriteAheadLog(directory, fsync=counted)
except TypeError:
    log = wal.WriteAheadLog(directory)
per_thread = max(1, appends // threads)
record = wal.WalRecord("r" * 32, "t", b'{"text": "hello"}' * 4, [("run", b"x" * 32)])
def client():
    for _ in range(per_thread):
        log.append(record)
workers = [threading.Thread(target=client) for _ in range(threads)]
started, cpu = time.perf_counter(), time.process_time()
for w in workers:
    w.start()
for w in workers:
    w.join()
elapsed, cpu, total = time.perf_counter() - started, time.process_time() - cpu, threads * per_thread
print(json.dumps({"appends_per_s": round(total / elapsed), "fsyncs_per_append":
                  round(calls[0] / total, 3), "cpu_ms_per_append": round(cpu * 1000 / total, 3)}))
"""


def run(source: Path | None, threads: int, appends: int, scratch: str) -> dict:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    out = subprocess.run([sys.executable, "-c", WORKLOAD, str(threads), str(appends), scratch],
                         capture_output=True, text=True, check=True, env=env,
                         cwd=scratch).stdout  # not this checkout's folder: it would shadow
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-source", type=Path, required=True)
    parser.add_argument("--appends", type=int, default=640)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="algorail-wal-bench-")  # on the disk, not tmpfs
    for threads in args.threads:
        rows: dict[str, list[dict]] = {"group_commit": [], "old": []}
        for _ in range(args.rounds):
            rows["old"].append(run(args.old_source, threads, args.appends, scratch))
            rows["group_commit"].append(run(None, threads, args.appends, scratch))
        median = {name: sorted(r, key=lambda x: x["appends_per_s"])[len(r) // 2]
                  for name, r in rows.items()}
        print(json.dumps({
            "threads": threads, **{f"{n}_{k}": v for n, m in median.items() for k, v in m.items()},
            "ratio": round(median["group_commit"]["appends_per_s"]
                           / median["old"]["appends_per_s"], 2),
            "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
