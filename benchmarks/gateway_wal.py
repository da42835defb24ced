"""What the write-ahead log costs the gateway: asynchronous requests (answered 202) with
and without the log, at several concurrencies, load from `wrk`.

    python benchmarks/gateway_wal.py [--seconds 10] [--concurrency 16 64]
                                     [--old-source DIR]

Starts an embedded broker and two `algorail gateway` processes on one plan, one with
`--wal-dir` (a 202 means the request is fsync'd in the log) and one without (a 202 means
the broker acknowledged it); with `--old-source`, a third gateway runs algorail from that
checkout (e.g. one without group commit). For each concurrency the gateways are driven
in turn by `wrk` (Debian package `wrk`), and each gets one JSON line:
``{"gateway", "concurrency", "rps", "cpu_ms_per_request", "p50_ms", "p99_ms", ...}``;
a last line has the ratios of the log's gateway to the one without it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_latency import stop, wait_ready  # noqa: E402

PIPELINE = {
    "apiVersion": "algorail.io/v1",
    "kind": "Pipeline",
    "metadata": {"owner": "bench", "name": "wal", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [{"from": "api.in", "to": "result"}],
    },
}
POST = """wrk.method = "POST"
wrk.body = '{"text": "hello", "n": 1}'
wrk.headers["Content-Type"] = "application/json"
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, concurrency: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script),
         url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {p: re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out) for p in ("50", "99")}
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {"rps": rps, "requests": total, "errors": int(non_2xx.group(1)) if non_2xx else 0,
            **{f"p{p}_ms": round(float(m.group(1)) * scale[m.group(2)], 2)
               for p, m in latency.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole interleaved series this many times")
    parser.add_argument("--old-source", type=Path,
                        help="also run a gateway with algorail imported from this checkout")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    from algorail.plan import compile_plan
    from algorail.runtime.broker import EmbeddedBroker, free_port
    from algorail.runtime.kafka_io import ensure_topics
    from algorail.spec import validate_document

    work = Path(tempfile.mkdtemp(prefix="algorail-bench-"))
    plan = compile_plan(validate_document(PIPELINE))
    plan_file = work / "plan.json"
    plan_file.write_text(plan.to_json())
    script = work / "post.lua"
    script.write_text(POST)
    gateways: dict[str, tuple[subprocess.Popen, str]] = {}
    with EmbeddedBroker(log_path=str(work / "broker.log")) as broker:
        try:
            ensure_topics(broker.bootstrap_servers, plan.created_topics())
            variants = {"no-log": ([], {}), "log": (["--wal-dir", str(work / "wal")], {})}
            if args.old_source:
                variants["log-old"] = (["--wal-dir", str(work / "wal-old")],
                                       {"PYTHONPATH": str(args.old_source.resolve())})
            for name, (extra, env) in variants.items():
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "algorail.cli", "gateway", "--plan", str(plan_file),
                     "--bootstrap-servers", broker.bootstrap_servers, "--port", str(port),
                     *extra], stdout=(work / f"{name}.log").open("ab"),
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, env={**os.environ, **env},
                    cwd=work)  # not this checkout's folder, which would shadow --old-source
                gateways[name] = (proc, f"http://127.0.0.1:{port}")
            for _proc, base in gateways.values():
                wait_ready(f"{base}/healthz")
                run_wrk(base + plan.routes[0].url, script, 4, 2)  # warm up
            results: dict[tuple[str, int], list[dict]] = {}
            for _ in range(args.rounds):
                for concurrency in args.concurrency:
                    for name, (proc, base) in gateways.items():
                        before = cpu_seconds(proc.pid)
                        row = run_wrk(base + plan.routes[0].url, script, concurrency,
                                      args.seconds)
                        row["cpu_ms_per_request"] = round(
                            (cpu_seconds(proc.pid) - before) * 1000 / row["requests"], 3)
                        row.update(gateway=name, concurrency=concurrency,
                                   load_average=round(os.getloadavg()[0], 1))
                        results.setdefault((name, concurrency), []).append(row)
                        print(json.dumps(row), flush=True)
        finally:
            for proc, _ in gateways.values():
                stop(proc)

    def best(name: str, concurrency: int, key: str) -> float:
        rows = results[(name, concurrency)]
        values = sorted(r[key] for r in rows)
        return values[len(values) // 2]

    summary = {"logs": str(work)}
    for c in args.concurrency:
        for name in gateways:
            if name == "no-log":
                continue
            summary[f"c{c}_{name}_rps_ratio"] = round(
                best(name, c, "rps") / best("no-log", c, "rps"), 3)
            summary[f"c{c}_{name}_cpu_ratio"] = round(
                best(name, c, "cpu_ms_per_request") / best("no-log", c, "cpu_ms_per_request"), 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
