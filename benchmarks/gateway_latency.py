"""Sync round trip latency: gateway -> one pass-through algo -> response hook, on loopback.

    python benchmarks/gateway_latency.py [--requests 2000] [--concurrency 16]
                                         [--runner-fetch-wait-ms 10]

Starts an embedded broker, `algorail gateway --with-hooks` and one runner (each its own
process), and a bare uvicorn echo endpoint as the baseline; drives both with the same
16 concurrent HTTP clients, and ends with one JSON line:
``{"baseline_rps", "algorail_rps", "ratio", "p50_ms", "p99_ms", ...}``
(ratio = algorail_rps / baseline_rps; p50/p99 are the algorail sync round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = {
    "apiVersion": "algorail.io/v1",
    "kind": "Pipeline",
    "metadata": {"owner": "bench", "name": "echo", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
        # copy.copy is a pass-through: it returns (a shallow copy of) what it is given
        "algos": [{"name": "echo", "runtime": "python", "entrypoint": "copy:copy",
                   "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]}],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [{"from": "api.in", "to": "echo.in"}, {"from": "echo.out", "to": "result"}],
    },
}

# The runner as `algorail runner` runs it; with a third argument, its consumers' fetch
# wait (ms) is set first: the broker holds a fetch that long when no record is waiting.
RUNNER = ("import sys; from algorail.plan import Plan; from algorail.runtime import kafka_io; "
          "from algorail.runtime.runner import run_runner; "
          "sys.argv[3:] and kafka_io.CONSUMER_DEFAULTS.update(fetch_max_wait_ms=int(sys.argv[3]));"
          " run_runner(Plan.from_file(sys.argv[1]), 'echo', sys.argv[2])")


async def echo_app(scope, receive, send):
    """The baseline: a bare ASGI endpoint that answers with the body it got."""
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def drive(url: str, requests: int, concurrency: int, check) -> tuple[float, list[float]]:
    """`requests` POSTs from `concurrency` clients; returns (requests/s, latencies in s)."""
    import httpx

    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            body = {"text": "hello", "i": i}
            started = time.perf_counter()
            answer = await http.post(url, json=body)
            latencies.append(time.perf_counter() - started)
            check(answer, body)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, latencies


def check_echo(answer, body) -> None:
    if answer.status_code != 200 or answer.json() != body:
        raise SystemExit(f"baseline answered {answer.status_code}: {answer.text[:200]}")


def check_sync(answer, body) -> None:
    if answer.status_code != 200 or answer.json()["results"].get("result") != body:
        raise SystemExit(f"gateway answered {answer.status_code}: {answer.text[:300]}")


def wait_ready(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runner-fetch-wait-ms", type=int,
                        help="set the runner's consumer fetch_max_wait_ms (default: as shipped)")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        import uvicorn

        uvicorn.run(echo_app, host="127.0.0.1", port=args.serve_echo, log_level="warning")
        return

    from algorail.plan import compile_plan
    from algorail.runtime.broker import EmbeddedBroker, free_port
    from algorail.runtime.kafka_io import ensure_topics
    from algorail.spec import validate_document

    work = Path(tempfile.mkdtemp(prefix="algorail-bench-"))
    plan = compile_plan(validate_document(PIPELINE))
    plan_file = work / "plan.json"
    plan_file.write_text(plan.to_json())
    procs: list[subprocess.Popen] = []
    with EmbeddedBroker(log_path=str(work / "broker.log")) as broker:
        try:
            ensure_topics(broker.bootstrap_servers, plan.created_topics())
            echo_port, gateway_port = free_port(), free_port()
            procs.append(spawn([sys.executable, __file__, "--serve-echo", str(echo_port)],
                               work / "echo.log"))
            wait = [str(args.runner_fetch_wait_ms)] if args.runner_fetch_wait_ms else []
            procs.append(spawn([sys.executable, "-c", RUNNER, str(plan_file),
                                broker.bootstrap_servers, *wait], work / "runner.log"))
            procs.append(spawn([sys.executable, "-m", "algorail.cli", "gateway", "--plan",
                                str(plan_file), "--bootstrap-servers",
                                broker.bootstrap_servers, "--port", str(gateway_port),
                                "--with-hooks", "--dev"], work / "gateway.log"))
            wait_ready(f"http://127.0.0.1:{echo_port}/")
            wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
            sync_url = f"http://127.0.0.1:{gateway_port}/bench/echo/in?sync=true&timeout=20"
            # warm up until runner and hook consumers joined their groups (bounded)
            asyncio.run(drive(sync_url, 1, 1, check_sync))
            asyncio.run(drive(sync_url, 50, args.concurrency, check_sync))
            baseline_rps, _ = asyncio.run(drive(f"http://127.0.0.1:{echo_port}/",
                                                args.requests, args.concurrency, check_echo))
            algorail_rps, latencies = asyncio.run(drive(sync_url, args.requests,
                                                        args.concurrency, check_sync))
        finally:
            for proc in reversed(procs):
                stop(proc)
    cuts = statistics.quantiles(latencies, n=100)
    print(json.dumps({
        "baseline_rps": round(baseline_rps, 1),
        "algorail_rps": round(algorail_rps, 1),
        "ratio": round(algorail_rps / baseline_rps, 4),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "runner_fetch_wait_ms": args.runner_fetch_wait_ms,
        "logs": str(work),
    }))


if __name__ == "__main__":
    main()
