"""Latency algorail adds to V2 inference: Seldon pipelines on MLServer, driven by tritonclient.

    python benchmarks/v2_latency.py [--requests 200] [--rounds 5] [--protocol grpc]
                                    [--interval-ms 20]

Starts an embedded broker, MLServer with the models of examples/seldon/mlserver (from
`.venv-mlserver`, which .ci/run makes), one `algorail runner` per step and an `algorail
gateway --with-hooks` per pipeline (each its own process), for a one-step (tfsimple) and a
three-step (tfsimples-join: two steps, then a join step) Seldon pipeline. Each request is
`tritonclient.http` with INT32 [1, 16] tensors as JSON (with `--protocol grpc`:
`tritonclient.grpc` with raw tensor contents, to the gateway's `--grpc-port` and MLServer's
gRPC port, and the steps call MLServer over gRPC too), either to the pipeline at the gateway
or straight to MLServer (the same models, called one after another by the client: tfsimple1;
or tfsimple1, tfsimple2, tfsimple3). Direct and algorail runs are interleaved in rounds, at
concurrency 1 and 16. At concurrency 1 both sides start a request every `--interval-ms` (20,
jittered), so MLServer has idled alike before each: after 10 ms idle it answered a call in
about 2.5 ms here, back to back in 0.7 ms, so back-to-back direct calls against algorail's
(which come one pipeline's latency apart) put MLServer's own wake-up on algorail's side of
the ledger. Ends with one JSON line: per pipeline and concurrency the p50/p99 of both and
what algorail adds (`added_p50_ms`, `added_p99_ms`), `ratio` = algorail p50 / direct p50,
`algorail_cpu_ms` = CPU time (user + system) the gateway and runners of that pipeline spent
per algorail request (their polling during the requests included), and `idle_cpu_ms_per_s` =
what they spend per second with no request (measured for 3 s before): on a loaded machine
latency mostly measures the others' load, CPU time much less so. Failed requests (say a join
window that closed on an overloaded machine) are counted in `errors` and left out of the
latencies. `load` is the 1-minute load average at the start and the end.

At concurrency 1 each round also times the broker's part alone (`gateway_latency.RelayFloor`):
as many hops as the pipeline's longest path, through bare confluent-kafka relays on the same
broker, one record at a time at the requests' pace. `hops_floor_p50_ms` is the median of the
rounds' p50, and `added_over_floor_p50_ms` what algorail adds beyond the models' time and
the broker's hops.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the MLServer launcher the tests use
sys.path.insert(0, str(ROOT / "benchmarks"))

from gateway_latency import RelayFloor, spawn, stop, wait_ready  # noqa: E402

# label -> (Seldon manifest, its steps, broker hops on its longest path: gateway -> steps
# -> the gateway's hook dispatcher)
PIPELINES = {"one-step": ("tfsimple", ["tfsimple1"], 2),
             "three-step": ("tfsimples-join", ["tfsimple1", "tfsimple2", "tfsimple3"], 3)}


def inputs(triton, np, protocol: str):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    out = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        t = triton.InferInput(name, [1, 16], "INT32")
        if protocol == "http":
            t.set_data_from_numpy(value, binary_data=False)  # MLServer reads JSON only
        else:
            t.set_data_from_numpy(value)
        out.append(t)
    return out


def measure(call, requests: int, concurrency: int, interval: float = 0.0
            ) -> tuple[list[float], list[str]]:
    """`requests` calls from `concurrency` threads, each with its own client: the latencies
    of those that succeeded, and the errors of the others. With `interval` (seconds, at
    concurrency 1) the calls start 0.5-1.5 times that far apart, at random (the same
    draws for every side), or at once after a slower one: at a fixed spacing every request
    met the consumers' fetches at the same point of their wait."""
    draws = random.Random(requests)
    starts = list(itertools.accumulate(interval * draws.uniform(0.5, 1.5)
                                       for _ in range(requests)))
    first = time.perf_counter()

    def one(n):
        if interval:
            time.sleep(max(0.0, first + starts[n] - time.perf_counter()))
        started = time.perf_counter()
        try:
            call()
        except Exception as exc:  # counted and reported: one slow run must not end the run
            return None, f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - started, None

    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(requests)))
    return [t for t, _ in outcomes if t is not None], [e for _, e in outcomes if e]


def quantiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--protocol", choices=["http", "grpc"], default="http",
                        help="how tritonclient calls the gateway and MLServer")
    parser.add_argument("--interval-ms", type=float, default=20.0,
                        help="at concurrency 1, start requests this far apart on both sides "
                             "(0: back to back)")
    args = parser.parse_args()

    import threading

    import numpy as np
    import psutil
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from mlserver_peer import MLServer, mlserver_missing

    from algorail.compiler import compile_plan
    from algorail.loader import load_pipeline
    from algorail.runtime.broker import EmbeddedBroker, free_port
    from algorail.runtime.kafka_io import ensure_topics

    if mlserver_missing():
        raise SystemExit(mlserver_missing())
    work = Path(tempfile.mkdtemp(prefix="algorail-v2-bench-"))
    procs: list[subprocess.Popen] = []
    mlserver = MLServer(work / "mlserver.log").start()
    local = threading.local()

    def client(url: str):
        clients = local.__dict__.setdefault("clients", {})
        if url not in clients:
            clients[url] = (httpclient.InferenceServerClient(url, network_timeout=30)
                            if args.protocol == "http" else
                            grpcclient.InferenceServerClient(url))
        return clients[url]

    results: dict = {}
    load_start = os.getloadavg()[0]
    pipeline_procs: dict[str, list[subprocess.Popen]] = {}

    def cpu_seconds(label: str) -> float:
        times = [psutil.Process(p.pid).cpu_times() for p in pipeline_procs[label]]
        return sum(t.user + t.system for t in times)

    # the steps call MLServer the way the client does
    step_binding = ({"url": mlserver.model_url()} if args.protocol == "http" else
                    {"runtime": "grpc", "url": mlserver.grpc, "config": {"model": "{name}"}})
    try:
        with EmbeddedBroker(log_path=str(work / "broker.log")) as broker:
            gateways = {}
            for label, (manifest, steps, _) in PIPELINES.items():
                plan = compile_plan(load_pipeline(
                    ROOT / "examples" / "seldon" / f"{manifest}.yaml",
                    bindings={"*": step_binding}))
                plan_file = work / f"{manifest}.json"
                plan_file.write_text(plan.to_json())
                ensure_topics(broker.bootstrap_servers, plan.created_topics())
                first = len(procs)
                for step in steps:
                    procs.append(spawn([sys.executable, "-m", "algorail.cli", "runner",
                                        "--plan", str(plan_file), "--component", step,
                                        "--bootstrap-servers", broker.bootstrap_servers],
                                       work / f"{manifest}-{step}.log"))
                port, grpc_port = free_port(), free_port()
                procs.append(spawn([sys.executable, "-m", "algorail.cli", "gateway", "--plan",
                                    str(plan_file), "--bootstrap-servers",
                                    broker.bootstrap_servers, "--port", str(port),
                                    "--grpc-port", str(grpc_port), "--with-hooks", "--dev"],
                                   work / f"{manifest}-gw.log"))
                pipeline_procs[label] = procs[first:]
                gateways[label] = (f"127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", plan.pipeline)
            for address, _, _ in gateways.values():
                wait_ready(f"http://{address}/v2/health/ready")
            grpc = args.protocol == "grpc"
            direct = mlserver.grpc if grpc else mlserver.http.removeprefix("http://")
            tensors = inputs(grpcclient if grpc else httpclient, np, args.protocol)

            def via_algorail(label):
                address, grpc_address, pipeline = gateways[label]
                return lambda: client(grpc_address if grpc else address).infer(pipeline, tensors)

            def straight(label):
                steps = PIPELINES[label][1]
                return lambda: [client(direct).infer(step, tensors) for step in steps]

            for label in PIPELINES:  # warm up: consumers joined, connections open (bounded)
                measure(via_algorail(label), 20, 4)
                measure(straight(label), 20, 4)
            idle = {}  # CPU seconds per second the pipeline's processes spend waiting
            for label in PIPELINES:
                before, started = cpu_seconds(label), time.perf_counter()
                time.sleep(3)
                idle[label] = (cpu_seconds(label) - before) / (time.perf_counter() - started)
            for label, (_, _, hops) in PIPELINES.items():
                floor = RelayFloor(broker.bootstrap_servers, hops - 1, work)
                procs += floor.relays  # stopped below too if a measurement fails
                floor_p50s: list[float] = []
                for concurrency in (1, 16):
                    runs = {"direct": [], "algorail": []}
                    errors = {"direct": [], "algorail": []}
                    cpu = 0.0
                    for _ in range(args.rounds):
                        if concurrency == 1:
                            hops_alone, _ = measure(floor.record_through, args.requests, 1,
                                                    args.interval_ms / 1000)
                            floor_p50s.append(quantiles(hops_alone)[0])
                        for side, call in (("direct", straight), ("algorail", via_algorail)):
                            before = cpu_seconds(label)
                            latencies, failed = measure(
                                call(label), args.requests, concurrency,
                                args.interval_ms / 1000 if concurrency == 1 else 0.0)
                            if side == "algorail":
                                cpu += cpu_seconds(label) - before
                            runs[side] += latencies
                            errors[side] += failed
                    d50, d99 = quantiles(runs["direct"])
                    a50, a99 = quantiles(runs["algorail"])
                    results[f"{label}_c{concurrency}"] = {
                        "direct_p50_ms": round(d50, 2), "direct_p99_ms": round(d99, 2),
                        "algorail_p50_ms": round(a50, 2), "algorail_p99_ms": round(a99, 2),
                        "added_p50_ms": round(a50 - d50, 2), "added_p99_ms": round(a99 - d99, 2),
                        "ratio": round(a50 / d50, 3),
                        "algorail_cpu_ms": round(cpu * 1000 / args.requests / args.rounds, 2),
                        "idle_cpu_ms_per_s": round(idle[label] * 1000, 1),
                        "errors": {side: len(e) for side, e in errors.items()},
                        "first_errors": sorted({e for es in errors.values() for e in es})[:3]}
                    if concurrency == 1:
                        hops_p50 = statistics.median(floor_p50s)
                        results[f"{label}_c1"].update(
                            hops=hops, hops_floor_p50_ms=round(hops_p50, 2),
                            added_over_floor_p50_ms=round(a50 - d50 - hops_p50, 2))
                floor.close()
    finally:
        for proc in reversed(procs):
            stop(proc)
        mlserver.stop()
    print(json.dumps({**results, "protocol": args.protocol,
                      "requests_per_round": args.requests, "rounds": args.rounds,
                      "load": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                      "logs": str(work)}))


if __name__ == "__main__":
    main()
