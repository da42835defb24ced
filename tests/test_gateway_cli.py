"""`algorail gateway` and `algorail hooks` as processes, configured through the
environment variables the charts set (ALGORAIL_BOOTSTRAP_SERVERS, ALGORAIL_RESULTS_URL,
ALGORAIL_API_KEYS_FILE, ALGORAIL_PORT), against a real broker and the machine's Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import httpx
from click.testing import CliRunner
from conftest import EXAMPLES, wait_until

from algorail.cli import cli
from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.runtime import codec
from algorail.runtime.broker import free_port
from algorail.runtime.kafka_io import ensure_topics, make_producer
from algorail.runtime.results import RedisResultsStore, run_view


def play_upper(bootstrap_servers: str, plan, run_id: str, value: dict) -> None:
    """Play the runner of `upper`: produce its output for a run, as the runner would."""
    producer = make_producer(bootstrap_servers)
    headers = codec.Envelope(run_id=run_id, deployment=plan.deployment,
                             source="upper.result").to_headers()
    producer.send(plan.runner("upper").outputs["result"], value=json.dumps(value).encode(),
                  headers=headers).get(timeout=10)
    producer.close()

def start(args: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "algorail.cli", *args],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()


def test_a_file_that_is_not_a_plan_is_a_clear_error(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"owner": "x"}')
    result = CliRunner().invoke(cli, ["gateway", "--plan", str(bad),
                                      "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert "is not a plan written by `algorail plan -o`" in result.output
    assert "Traceback" not in result.output


def test_gateway_and_hooks_processes_configured_by_environment(broker, redis_url, tmp_path):
    plan = compile_plan(load_pipeline(EXAMPLES / "hello.yaml"), deployment="cli-hello")
    ensure_topics(broker.bootstrap_servers, plan.created_topics())
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    keys = tmp_path / "keys"
    keys.write_text("k-123\n")
    prefix = "algorail:"  # the commands' own prefix; run ids below are fresh uuids
    port, metrics_port = free_port(), free_port()
    env = {"ALGORAIL_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "ALGORAIL_RESULTS_URL": redis_url, "ALGORAIL_API_KEYS_FILE": str(keys),
           "ALGORAIL_PORT": str(port)}
    with open(tmp_path / "log", "ab") as log:
        hooks = start(["hooks", "--plan", str(plan_file), "--metrics-port", str(metrics_port)],
                      env, log)
        gateway = start(["gateway", "--plan", str(plan_file)], env, log)
        store = RedisResultsStore(redis_url, prefix=prefix)
        run_id = uuid.uuid4().hex
        try:
            base = f"http://127.0.0.1:{port}"

            def healthy():
                try:
                    return httpx.get(f"{base}/healthz").status_code == 200
                except httpx.HTTPError:
                    return False

            assert wait_until(healthy, timeout=30), (tmp_path / "log").read_text()
            assert httpx.post(f"{base}/alice/cli-hello/in", json={"text": "x"}).status_code == 401
            # play the runner of `upper`: its output reaches the `hooks` process, which
            # records it in Redis, where the `gateway` process reads it
            play_upper(broker.bootstrap_servers, plan, run_id, {"text": "FROM RUNNER"})
            assert wait_until(lambda: store.get(run_id), timeout=30)
            answer = httpx.get(f"{base}/alice/cli-hello/runs/{run_id}",
                               headers={"authorization": "Bearer k-123"})
            assert answer.status_code == 200
            assert answer.json()["results"] == {"result": {"text": "FROM RUNNER"}}
            assert run_view(run_id, store.get(run_id))["status"] == "complete"
            hook_metrics = f"http://127.0.0.1:{metrics_port}"
            assert httpx.get(f"{hook_metrics}/healthz").status_code == 200
            assert ('algorail_hook_outcomes_total{hook="result",state="delivered"} 1.0'
                    in httpx.get(f"{hook_metrics}/metrics").text)
        finally:
            store.redis.delete(f"{prefix}run:{run_id}")
            store.close()
            statuses = [stop(gateway), stop(hooks)]
    assert statuses == [0, 0]  # both shut down cleanly on SIGTERM


def test_plans_sources_are_one_of_three(tmp_path):
    result = CliRunner().invoke(cli, ["hooks", "--plans-dir", str(tmp_path),
                                      "--plans-from-cluster", "--bootstrap-servers", "x:1"])
    assert result.exit_code == 2
    assert "give one of --plan, --plans-dir and --plans-from-cluster" in result.output
    result = CliRunner().invoke(cli, ["gateway", "--bootstrap-servers", "x:1"])
    assert result.exit_code == 2 and "give one of --plan" in result.output


def test_gateway_and_hooks_processes_follow_a_plans_folder(broker, redis_url, tmp_path):
    """`--plans-dir` as the chart mounts a plan ConfigMap: the two processes start on an
    empty folder, serve a plan once it is written, and drop it once it is removed."""
    plans = tmp_path / "plans"
    plans.mkdir()
    plan = compile_plan(load_pipeline(EXAMPLES / "hello.yaml"), deployment="dir-hello")
    ensure_topics(broker.bootstrap_servers, plan.created_topics())
    port = free_port()
    env = {"ALGORAIL_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
           "ALGORAIL_RESULTS_URL": redis_url, "ALGORAIL_PORT": str(port),
           "ALGORAIL_PLANS_DIR": str(plans), "ALGORAIL_PLANS_INTERVAL": "0.2"}
    base = f"http://127.0.0.1:{port}"
    store = RedisResultsStore(redis_url)
    run_id = uuid.uuid4().hex

    def pipelines():
        try:
            return httpx.get(f"{base}/healthz").json()["pipelines"]
        except httpx.HTTPError:
            return None

    with open(tmp_path / "log", "ab") as log:
        hooks = start(["hooks"], env, log)
        gateway = start(["gateway"], env, log)
        try:
            assert wait_until(lambda: pipelines() == [], timeout=30), (tmp_path / "log").read_text()
            (plans / "hello.json").write_text(plan.to_json())
            assert wait_until(lambda: pipelines() == ["alice/dir-hello"], timeout=10)
            # play the runner of `upper`: the hooks process must have picked the plan up
            play_upper(broker.bootstrap_servers, plan, run_id, {"text": "LIVE"})
            assert wait_until(lambda: store.get(run_id), timeout=30), (tmp_path / "log").read_text()
            answer = httpx.get(f"{base}/alice/dir-hello/runs/{run_id}")
            assert answer.json()["results"] == {"result": {"text": "LIVE"}}
            (plans / "hello.json").unlink()
            assert wait_until(lambda: pipelines() == [], timeout=10)
            assert httpx.get(f"{base}/alice/dir-hello/runs/{run_id}").status_code == 404
        finally:
            store.redis.delete(f"algorail:run:{run_id}")
            store.close()
            statuses = [stop(gateway), stop(hooks)]
    assert statuses == [0, 0]
