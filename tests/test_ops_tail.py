"""`algorail tail`: decoded messages of a pipe with their headers, read with no consumer
group; with --follow it sees a message sent after it started."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

from click.testing import CliRunner
from ops_support import ops_plan, send

from algorail.cli import cli
from algorail.runtime import testing


def test_tail_follow_sees_a_message_sent_after_it_started(tmp_path, module_broker):
    bs = module_broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    send(plan, bs, "before", "sent before tail started")
    proc = subprocess.Popen(
        [sys.executable, "-m", "algorail.cli", "tail", "api.in", "--plan", str(plan_file),
         "--bootstrap-servers", bs, "--follow", "-n", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        said = []
        for _ in range(20):  # warnings may come first
            said.append(proc.stderr.readline())
            if not said[-1] or said[-1].startswith("following "):
                break
        assert said[-1].startswith("following "), said  # assigned and positioned
        send(plan, bs, "after", "sent after tail started")
        message = json.loads(lines.get(timeout=20))
        assert message["run_id"] == "after"
        assert message["payload"] == {"text": "sent after tail started"}
        assert message["component"] == "api" and message["port"] == "in"
        assert message["headers"]["algorail-deployment"] == plan.deployment
    finally:
        proc.terminate()
        proc.wait(10)
    assert lines.empty(), "the message sent before tail started was shown"


def test_tail_prints_a_pipe_from_the_beginning_without_a_consumer_group(tmp_path,
                                                                          module_broker):
    bs = module_broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json(), encoding="utf-8")
    for n in range(3):
        send(plan, bs, f"run-{n}", f"text {n}")
    testing.produce(bs, plan.runner("route").outputs["short"], [("run-1", None)],
                    deployment=plan.deployment, source="route.short", skip=True)
    args = ["--plan", str(plan_file), "--bootstrap-servers", bs]
    everything = CliRunner().invoke(cli, ["tail", plan.routes[0].url, "route.short",
                                          "--from-beginning", *args])
    assert everything.exit_code == 0, everything.output
    shown = everything.stdout.splitlines()
    assert len(shown) == 4
    assert sum("api.in" in line and "run=run-" in line for line in shown) == 3
    assert any("route.short" in line and " SKIP " in line for line in shown)
    one_run = CliRunner().invoke(cli, ["tail", "api.in", "--from-beginning", "--run", "run-2",
                                       *args])
    assert one_run.stdout.count("\n") == 1 and '"text 2"' in one_run.stdout
    last = CliRunner().invoke(cli, ["tail", "api.in", "-n", "1", *args])
    assert "run=run-2" in last.stdout and last.stdout.count("\n") == 1
    wrong = CliRunner().invoke(cli, ["tail", "nope.out", *args])
    assert wrong.exit_code == 1 and "no pipe 'nope.out'" in wrong.output
