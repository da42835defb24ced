"""Requests through `algorail dev`, load from `wrk`: sync latency by chain length and
concurrency, and async (202) throughput against a bare Starlette app producing to Kafka.

    python benchmarks/gateway_latency.py [--steps 1 2 4 8] [--concurrency 1 16 64]
                                         [--seconds 10] [--floor-seconds 10]
                                         [--rounds 3] [--async-rounds 3]

Sync: for each chain of pass-through algos (`copy:copy`) ending in a response hook,
`algorail dev` runs the pipeline (embedded broker, write-ahead log on) and `wrk` posts
``?sync=true`` at each concurrency; a row has p50/p99, req/s and CPU ms per request of
each process (gateway, runners, broker, by psutil).

Floor: on the same broker, taking turns with the chain at c=1, the same number of hops
with nothing of algorail in them: as many bare confluent-kafka relays as the chain has steps
(`runner_throughput.BARE_LOOP`, JSON decoded and encoded again, the consumer settings dev
mode gives), a producer before the first and a consumer after the last, one record in
flight at a time as wrk keeps one request at c=1. What a further step costs there is
what the broker alone costs a hop, the part of a step no runner can save. At c=1 the
chain and its floor take turns for ``--rounds`` rounds; the round with the median p50 of
each is reported, and ``p50_added_over_floor_ms_N_steps`` is the median over the rounds of
the chain's p50 less its floor's in the same round (the broker slows as it fills, both
alike).

Async: on the one-step pipeline, in interleaved rounds, `wrk` posts without ``sync`` to
the dev gateway (a 202 once the request is fsync'd in its log), to `algorail gateway`
without a log (a 202 once the broker acknowledged it), and to a bare Starlette app that
produces the same body with confluent-kafka to the same topic and answers 202 once the
broker acknowledged it; the pipeline's runner and hooks consume all of it alike.

Progress rows go to stderr; stdout gets one JSON line with the rows, the ratios and which
targets are met. `wrk` is Debian's package `wrk`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

POST = """wrk.method = "POST"
wrk.body = '{"text": "hello", "n": 1}'
wrk.headers["Content-Type"] = "application/json"
"""
BODY = {"text": "hello", "n": 1}


def chain(steps: int) -> dict:
    """An endpoint, `steps` pass-through algos one after the other, a response hook."""
    algos = [{"name": f"step{i}", "runtime": "python", "entrypoint": "copy:copy",
              "inputs": [{"name": "in"}], "outputs": [{"name": "out"}]} for i in range(steps)]
    pipes = [{"from": "api.in", "to": "step0.in"}]
    pipes += [{"from": f"step{i}.out", "to": f"step{i + 1}.in"} for i in range(steps - 1)]
    pipes.append({"from": f"step{steps - 1}.out", "to": "result"})
    return {"apiVersion": "algorail.io/v1", "kind": "Pipeline",
            "metadata": {"owner": "bench", "name": f"chain{steps}", "version": "1.0.0"},
            "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
                     "algos": algos, "hooks": [{"name": "result", "type": "response"}],
                     "pipes": pipes}}


# -- processes -----------------------------------------------------------------------------


def spawn(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_ready(url: str, timeout: float = 90, check=None) -> None:
    """Until a GET of `url` answers 200 (with `check`: a POST's answer passes it), within
    `timeout` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url, json=BODY, timeout=20) if check else httpx.get(url, timeout=1)
            if check(answer) if check else answer.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def roles(root: int) -> dict[str, list[psutil.Process]]:
    """The processes of `algorail dev` (PID `root`) by role: gateway, runners, broker."""
    parent = psutil.Process(root)
    found: dict[str, list[psutil.Process]] = {"gateway": [parent], "runners": [], "broker": []}
    for child in parent.children(recursive=True):
        line = " ".join(child.cmdline())
        role = "broker" if "tansu" in line else "runners" if " runner " in line else None
        if role:
            found[role].append(child)
    return found


def cpu(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    return {role: sum(sum(p.cpu_times()[:2]) for p in procs) for role, procs in processes.items()}


# -- load ------------------------------------------------------------------------------------


def run_wrk(url: str, script: Path, concurrency: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
         "--timeout", "30s", "-s", str(script), url],
        capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    row = {"rps": round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), 1),
           "requests": total, "errors": int(non_2xx.group(1)) if non_2xx else 0}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        row[f"p{p}_ms"] = round(float(m.group(1)) * scale[m.group(2)], 2)
    return row


def measured(url: str, script: Path, concurrency: int, seconds: int,
             processes: dict[str, list[psutil.Process]]) -> dict:
    """One wrk run with the CPU ms per request each role spent meanwhile."""
    before = cpu(processes)
    row = run_wrk(url, script, concurrency, seconds)
    after = cpu(processes)
    row["cpu_ms_per_request"] = {role: round((after[role] - before[role]) * 1000
                                             / max(row["requests"], 1), 3) for role in after}
    row["load_average"] = round(os.getloadavg()[0], 1)
    return row


def note(row: dict) -> None:
    print(json.dumps(row), file=sys.stderr, flush=True)


# -- the contenders ------------------------------------------------------------------------


class Dev:
    """`algorail dev` on one chain, in a work folder of its own."""

    def __init__(self, steps: int, work: Path):
        from algorail.runtime.broker import free_port

        self.work = work / f"chain{steps}"
        self.work.mkdir()
        pipeline = self.work / "pipeline.json"
        pipeline.write_text(json.dumps(chain(steps)))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/bench/chain{steps}/in"
        self.proc = spawn([sys.executable, "-m", "algorail.cli", "dev", str(pipeline),
                           "--port", str(self.port), "--work-dir", str(self.work / "state")],
                          self.work / "dev.log")

    def ready(self) -> Dev:
        wait_ready(f"{self.url}?sync=true&timeout=15",
                   check=lambda a: a.status_code == 200
                   and a.json()["results"].get("result") == BODY)
        self.processes = roles(self.proc.pid)
        return self

    @property
    def bootstrap_servers(self) -> str:
        import httpx

        return httpx.get(f"{self.base}/v1/dev").json()["bootstrapServers"]


BARE_APP = '''
import asyncio, sys, threading, uuid
from confluent_kafka import Producer
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from algorail.runtime import codec
import uvicorn

port, bootstrap, topic, source = sys.argv[1:5]
producer = Producer({"bootstrap.servers": bootstrap})  # librdkafka's defaults
threading.Thread(target=lambda: [producer.poll(0.1) for _ in iter(int, 1)], daemon=True).start()

async def post(request):
    body, loop = await request.body(), asyncio.get_running_loop()
    done, run_id = loop.create_future(), uuid.uuid4().hex
    def acked(error, message):
        loop.call_soon_threadsafe(
            lambda: done.done() or (done.set_exception(Exception(str(error))) if error
                                    else done.set_result(None)))
    headers = codec.Envelope(run_id=run_id, source=source).to_headers()
    producer.produce(topic, body, headers=headers, on_delivery=acked)
    await done
    return JSONResponse({"runId": run_id, "status": "pending"}, status_code=202)

uvicorn.run(Starlette(routes=[Route("/in", post, methods=["POST"])]),
            host="127.0.0.1", port=int(port), log_level="warning")
'''


class RelayFloor:
    """`steps` bare relays on `bootstrap` (see the module's docstring), a producer before
    the first and a consumer after the last."""

    def __init__(self, bootstrap: str, steps: int, work: Path):
        import confluent_kafka as ck
        from runner_throughput import BARE_LOOP

        from algorail.runtime import kafka_io
        from algorail.runtime.broker import CONFLUENT_CONSUMER_SETTINGS

        self.steps = steps
        self.topics = [f"bench.floor{steps}.t{i}" for i in range(steps + 1)]
        kafka_io.ensure_topics(bootstrap, self.topics)
        settings = json.dumps(CONFLUENT_CONSUMER_SETTINGS)
        self.relays = [
            spawn([sys.executable, "-c", BARE_LOOP, bootstrap, source, target,
                   f"bench-floor{steps}-{i}", settings, "json"], work / f"floor{steps}.log")
            for i, (source, target) in enumerate(zip(self.topics, self.topics[1:],
                                                     strict=False))]
        self.consumer = ck.Consumer({"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                                     "group.id": f"bench-floor{steps}",
                                     **CONFLUENT_CONSUMER_SETTINGS})
        self.consumer.assign([ck.TopicPartition(self.topics[-1], 0, ck.OFFSET_END)])
        self.producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.sent = 0
        warm = time.monotonic() + 90  # each relay joins its group first
        while self.through(2.0) is None:
            if time.monotonic() > warm:
                self.close()
                raise SystemExit(f"the {steps} floor relays passed nothing on within 90 s")

    def through(self, timeout: float) -> float | None:
        """Milliseconds for the next record to come out, None if it did not in `timeout`."""
        self.sent += 1
        started = time.perf_counter()
        self.producer.produce(self.topics[0], json.dumps({**BODY, "n": self.sent}).encode())
        self.producer.poll(0)
        while (left := timeout - (time.perf_counter() - started)) > 0:
            message = self.consumer.poll(left)
            if message is not None and message.error() is None \
                    and json.loads(message.value())["n"] == self.sent:
                return (time.perf_counter() - started) * 1000
        return None

    def record_through(self) -> None:
        """One record through, or TimeoutError after 5 s."""
        if self.through(5.0) is None:
            raise TimeoutError(f"a record did not come through {self.steps} relays in 5 s")

    def measure(self, seconds: float) -> dict:
        """One record at a time, sent again as soon as it came out, for `seconds`."""
        latencies, lost = [], 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(latencies) + lost < 100_000:
            took = self.through(5.0)
            if took is None:
                lost += 1
            else:
                latencies.append(took)
        from runner_throughput import percentile

        return {"floor": True, "steps": self.steps, "requests": len(latencies),
                "errors": lost, "rps": round(len(latencies) / seconds, 1),
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2)}

    def close(self) -> None:
        self.producer.flush(5)
        self.producer.close()
        self.consumer.close()
        for relay in self.relays:
            stop(relay)


def middle(rows: list[dict]) -> dict:
    """The round whose p50 is the median one (the lower middle of an even count)."""
    return sorted(rows, key=lambda r: r["p50_ms"])[(len(rows) - 1) // 2]


def async_contenders(dev: Dev, work: Path) -> dict[str, tuple[str, dict, subprocess.Popen]]:
    """name -> (URL, processes to count, process to stop or None)."""
    from algorail.plan import Plan
    from algorail.runtime.broker import free_port

    plan_file = dev.work / "state" / "plan.json"
    route = Plan.from_file(plan_file).routes[0]
    bootstrap = dev.bootstrap_servers
    bare_port, plain_port = free_port(), free_port()
    bare = spawn([sys.executable, "-c", BARE_APP, str(bare_port), bootstrap, route.topic,
                  route.source], work / "bare.log")
    plain = spawn([sys.executable, "-m", "algorail.cli", "gateway", "--plan", str(plan_file),
                   "--bootstrap-servers", bootstrap, "--port", str(plain_port)],
                  work / "gateway-no-log.log")
    wait_ready(f"http://127.0.0.1:{plain_port}/healthz")
    wait_ready(f"http://127.0.0.1:{bare_port}/in", check=lambda a: a.status_code == 202)
    return {"dev": (dev.url, {"gateway": dev.processes["gateway"]}, None),
            "gateway-no-log": (f"http://127.0.0.1:{plain_port}{route.url}",
                               {"gateway": [psutil.Process(plain.pid)]}, plain),
            "bare-starlette": (f"http://127.0.0.1:{bare_port}/in",
                               {"gateway": [psutil.Process(bare.pid)]}, bare)}


# -- the run ---------------------------------------------------------------------------------


def median(rows: list[dict], key: str) -> float:
    values = [r[key] if key != "cpu" else r["cpu_ms_per_request"]["gateway"] for r in rows]
    return statistics.median(values)


def per_step(rows: list[dict]) -> float | None:
    """What each step past the first added to the p50 at c=1, from the shortest chain to
    the longest (None: fewer than two chains)."""
    p50 = {r["steps"]: r["p50_ms"] for r in rows if r.get("concurrency", 1) == 1}
    if len(p50) < 2:
        return None
    shortest, longest = min(p50), max(p50)
    return round((p50[longest] - p50[shortest]) / (longest - shortest), 2)


def floor_ratios(sync: list[dict], floor: list[dict]) -> dict:
    """A step's cost in the chain against the same hop with nothing of algorail in it."""
    if not floor:
        return {}
    ratios = {"further_step_floor_p50_ms": per_step(floor)}
    chain = per_step(sync)
    if chain is not None and ratios["further_step_floor_p50_ms"] is not None:
        ratios["further_step_added_over_floor_ms"] = round(
            chain - ratios["further_step_floor_p50_ms"], 2)
    for row in floor:
        ratios[f"p50_added_over_floor_ms_{row['steps']}_steps"] = row["chain_added_p50_ms"]
    return ratios


def targets(sync: list[dict], ratios: dict) -> dict:
    """The issue's targets, met or not, from what was measured (None: not measured)."""
    ones = [r for r in sync if r["steps"] == 1 and r["concurrency"] == 1]
    one = ones[0]["p50_ms"] if ones else None
    further = per_step(sync) if one is not None else None
    c64 = [r for r in sync if r["steps"] == 1 and r["concurrency"] == 64]
    return {
        "one_step_p50_c1_le_10ms": None if one is None else one <= 10,
        "further_step_p50_le_3ms": None if further is None else further <= 3,
        "further_step_p50_ms": further,
        "c64_ge_1500_rps_p99_le_50ms": (c64[0]["rps"] >= 1500 and c64[0]["p99_ms"] <= 50)
        if c64 else None,
        "async_ge_0.8x_bare": (ratios["async_rps_dev_vs_bare"] >= 0.8)
        if "async_rps_dev_vs_bare" in ratios else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--floor-seconds", type=float, default=10,
                        help="seconds of the bare relay floor per round (0: skip it)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of a chain and its floor at c=1; the "
                             "round with the median p50 of each is reported")
    parser.add_argument("--async-concurrency", type=int, default=64)
    parser.add_argument("--async-rounds", type=int, default=3,
                        help="interleaved rounds of the async contenders (0: skip them)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk as its load generator (a Python client "
                         "caps at ~150 requests/s): apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="algorail-bench-"))
    script = work / "post.lua"
    script.write_text(POST)
    sync, floor, async_rows = [], [], []
    for steps in sorted(set(args.steps) | ({1} if args.async_rounds else set())):
        dev = Dev(steps, work)
        started: list[subprocess.Popen] = []
        try:
            dev.ready()
            if steps in args.steps:
                relays = (RelayFloor(dev.bootstrap_servers, steps, work)
                          if args.floor_seconds and 1 in args.concurrency else None)
                try:
                    for concurrency in args.concurrency:
                        rows, floors = [], []
                        for _ in range(args.rounds if concurrency == 1 else 1):
                            row = measured(f"{dev.url}?sync=true&timeout=20", script,
                                           concurrency, args.seconds, dev.processes)
                            row.update(steps=steps, concurrency=concurrency)
                            note(row)
                            rows.append(row)
                            if concurrency == 1 and relays is not None:
                                floors.append(relays.measure(args.floor_seconds))
                                note(floors[-1])
                        sync.append(middle(rows))
                        if floors:  # paired by round: the broker slows alike as it fills
                            floor.append({**middle(floors), "chain_added_p50_ms": round(
                                statistics.median(r["p50_ms"] - f["p50_ms"]
                                                  for r, f in zip(rows, floors, strict=True)),
                                2)})
                finally:
                    if relays is not None:
                        relays.close()
            if steps == 1 and args.async_rounds:
                contenders = async_contenders(dev, work)
                started = [proc for _, _, proc in contenders.values() if proc is not None]
                for url, _, _ in contenders.values():
                    run_wrk(url, script, 4, 2)  # warm up
                for round_ in range(args.async_rounds):
                    for name, (url, processes, _) in contenders.items():
                        row = measured(url, script, args.async_concurrency,
                                       args.seconds, processes)
                        row.update(contender=name, round=round_,
                                   concurrency=args.async_concurrency)
                        note(row)
                        async_rows.append(row)
        finally:
            for proc in started:
                stop(proc)
            stop(dev.proc)
    ratios = floor_ratios(sync, floor)
    if async_rows:
        by = {name: [r for r in async_rows if r["contender"] == name]
              for name in ("dev", "gateway-no-log", "bare-starlette")}
        for name in ("dev", "gateway-no-log"):
            short = name.replace("gateway-", "")
            ratios[f"async_rps_{short}_vs_bare"] = round(
                median(by[name], "rps") / median(by["bare-starlette"], "rps"), 3)
            ratios[f"async_cpu_{short}_vs_bare"] = round(
                median(by[name], "cpu") / median(by["bare-starlette"], "cpu"), 3)
        ratios["async_cpu_dev_vs_no_log"] = round(
            median(by["dev"], "cpu") / median(by["gateway-no-log"], "cpu"), 3)
    print(json.dumps({"ratios": ratios, "targets": targets(sync, ratios), "sync": sync,
                      "floor": floor, "async": async_rows, "cpus": os.cpu_count(),
                      "logs": str(work)}))


if __name__ == "__main__":
    main()
