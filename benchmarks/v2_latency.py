"""Latency algorail adds to V2 inference: Seldon pipelines on MLServer, driven by tritonclient.

    python benchmarks/v2_latency.py [--requests 200] [--rounds 5]

Starts an embedded broker, MLServer with the models of examples/seldon/mlserver (from
`.venv-mlserver`, which .ci/run makes), one `algorail runner` per step and an
`algorail gateway --with-hooks` per pipeline (each its own process), for a one-step
(tfsimple) and a three-step (tfsimples-join: two steps, then a join step) Seldon pipeline.
Each request is `tritonclient.http` with INT32 [1, 16] tensors as JSON, either to the pipeline at
the gateway or straight to MLServer (the same models, called one after another by the
client: tfsimple1; or tfsimple1, tfsimple2, tfsimple3). Direct and algorail runs are
interleaved in rounds, at concurrency 1 and 16. Ends with one JSON line: per pipeline and
concurrency the p50/p99 of both and what algorail adds (`added_p50_ms`, `added_p99_ms`),
and `ratio` = algorail p50 / direct p50.
"""

from __future__ import annotations

import argparse
import json
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

from gateway_latency import spawn, stop, wait_ready  # noqa: E402

PIPELINES = {"one-step": ("tfsimple", ["tfsimple1"]),
             "three-step": ("tfsimples-join", ["tfsimple1", "tfsimple2", "tfsimple3"])}


def inputs(httpclient, np):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    out = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        t = httpclient.InferInput(name, [1, 16], "INT32")
        t.set_data_from_numpy(value, binary_data=False)  # MLServer reads JSON only
        out.append(t)
    return out


def measure(call, requests: int, concurrency: int) -> list[float]:
    """`requests` calls from `concurrency` threads, each with its own client."""
    def one(_):
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(requests)))


def quantiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import threading

    import numpy as np
    import tritonclient.http as httpclient
    from mlserver_peer import MLServer, mlserver_missing

    from algorail.plan import compile_plan
    from algorail.runtime.broker import EmbeddedBroker, free_port
    from algorail.runtime.kafka_io import ensure_topics
    from algorail.spec import load_pipeline

    if mlserver_missing():
        raise SystemExit(mlserver_missing())
    work = Path(tempfile.mkdtemp(prefix="algorail-v2-bench-"))
    procs: list[subprocess.Popen] = []
    mlserver = MLServer(work / "mlserver.log").start()
    local = threading.local()

    def client(url: str):
        clients = local.__dict__.setdefault("clients", {})
        if url not in clients:
            clients[url] = httpclient.InferenceServerClient(url, network_timeout=30)
        return clients[url]

    results: dict = {}
    try:
        with EmbeddedBroker(log_path=str(work / "broker.log")) as broker:
            gateways = {}
            for label, (manifest, steps) in PIPELINES.items():
                plan = compile_plan(load_pipeline(
                    ROOT / "examples" / "seldon" / f"{manifest}.yaml",
                    bindings={"*": {"url": mlserver.model_url()}}))
                plan_file = work / f"{manifest}.json"
                plan_file.write_text(plan.to_json())
                ensure_topics(broker.bootstrap_servers, plan.created_topics())
                for step in steps:
                    procs.append(spawn([sys.executable, "-m", "algorail.cli", "runner",
                                        "--plan", str(plan_file), "--component", step,
                                        "--bootstrap-servers", broker.bootstrap_servers],
                                       work / f"{manifest}-{step}.log"))
                port = free_port()
                procs.append(spawn([sys.executable, "-m", "algorail.cli", "gateway", "--plan",
                                    str(plan_file), "--bootstrap-servers",
                                    broker.bootstrap_servers, "--port", str(port),
                                    "--with-hooks", "--dev"], work / f"{manifest}-gw.log"))
                gateways[label] = (f"127.0.0.1:{port}", plan.pipeline)
            for address, _ in gateways.values():
                wait_ready(f"http://{address}/v2/health/ready")
            direct = mlserver.http.removeprefix("http://")
            tensors = inputs(httpclient, np)

            def via_algorail(label):
                address, pipeline = gateways[label]
                return lambda: client(address).infer(pipeline, tensors)

            def straight(label):
                steps = PIPELINES[label][1]
                return lambda: [client(direct).infer(step, tensors) for step in steps]

            for label in PIPELINES:  # warm up: consumers joined, connections open (bounded)
                measure(via_algorail(label), 20, 4)
                measure(straight(label), 20, 4)
            for label in PIPELINES:
                for concurrency in (1, 16):
                    runs = {"direct": [], "algorail": []}
                    for _ in range(args.rounds):
                        runs["direct"] += measure(straight(label), args.requests, concurrency)
                        runs["algorail"] += measure(via_algorail(label), args.requests,
                                                    concurrency)
                    d50, d99 = quantiles(runs["direct"])
                    a50, a99 = quantiles(runs["algorail"])
                    results[f"{label}_c{concurrency}"] = {
                        "direct_p50_ms": round(d50, 2), "direct_p99_ms": round(d99, 2),
                        "algorail_p50_ms": round(a50, 2), "algorail_p99_ms": round(a99, 2),
                        "added_p50_ms": round(a50 - d50, 2), "added_p99_ms": round(a99 - d99, 2),
                        "ratio": round(a50 / d50, 3)}
    finally:
        for proc in reversed(procs):
            stop(proc)
        mlserver.stop()
    print(json.dumps({**results, "requests_per_round": args.requests, "rounds": args.rounds,
                      "logs": str(work)}))


if __name__ == "__main__":
    main()
