"""`algorail replay`: a dead letter sent back after its algo is fixed produces the output,
and replaying again without --force sends nothing (real broker, runners in threads)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from ops_support import LONG_TEXT, break_check, ops_plan, send

from algorail.cli import cli
from algorail.runtime import testing


@pytest.fixture
def failed_run(tmp_path, broker):
    """A run whose `check` step failed once, its runners still going."""
    bs = broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    (tmp_path / "plan.json").write_text(plan.to_json(), encoding="utf-8")
    break_check(tmp_path)
    runners = testing.start_runners(plan, bs)
    try:
        send(plan, bs, "run-1", LONG_TEXT)
        testing.read_topic(bs, plan.runner("check").dead_letter_topic, count=1)
        yield plan, bs, tmp_path
    finally:
        for runner in runners:
            runner.stop()


def replay(directory, bs, *args, input=None):
    return CliRunner().invoke(cli, ["replay", "--plan", str(directory / "plan.json"),
                                    "--bootstrap-servers", bs, *args], input=input)


@pytest.mark.slow
def test_a_replayed_dead_letter_gets_through_once_the_algo_is_fixed(failed_run):
    plan, bs, directory = failed_run
    output = plan.runner("check").outputs["result"]
    asked = replay(directory, bs, "--dead-letters", "check", input="n\n")
    assert asked.exit_code == 1 and "send run run-1 ->" in asked.output
    assert "send 1 message(s)?" in asked.output
    assert testing.read_topic(bs, output, timeout=1) == []

    break_check(directory, broken=False)
    first = replay(directory, bs, "--dead-letters", "check", "--yes")
    assert first.exit_code == 0, first.output
    assert "attempt 2" in first.output and "sent 1 message(s)" in first.output
    results = testing.read_topic(bs, output, count=1)
    assert [(r["run_id"], r["value"]["checked"]) for r in results] == [("run-1", True)]

    second = replay(directory, bs, "--dead-letters", "check", "--yes")
    assert second.exit_code == 0, second.output
    assert "already wrote output for this run" in second.output
    assert "nothing to send" in second.output
    results = testing.read_topic(bs, output, count=2, timeout=3)
    assert len(results) == 1, "the second replay sent the run again"
    forced = replay(directory, bs, "--dead-letters", "check", "--yes", "--force")
    assert forced.exit_code == 0 and "sent 1 message(s)" in forced.output
    assert len(testing.read_topic(bs, output, count=2)) == 2


@pytest.mark.slow
def test_a_run_sent_again_as_new_gets_a_new_run_id(failed_run):
    plan, bs, directory = failed_run
    break_check(directory, broken=False)
    result = replay(directory, bs, "--run", "run-1", "--as-new", "--yes")
    assert result.exit_code == 0, result.output
    output = plan.runner("check").outputs["result"]
    records = testing.read_topic(bs, output, count=1)
    assert len(records) == 1 and records[0]["run_id"] != "run-1"
    assert records[0]["value"] == {"text": LONG_TEXT.strip().lower(), "checked": True}
    endpoint = testing.read_topic(bs, plan.routes[0].topic, count=2)
    assert endpoint[1]["headers"]["algorail-replay-of"] == "run-1"
    assert json.loads(json.dumps(endpoint[1]["value"])) == endpoint[0]["value"]


def test_hooks_and_unknown_components_are_refused_with_one_line(tmp_path, module_broker):
    bs = module_broker.bootstrap_servers
    plan = ops_plan(tmp_path, bs)
    (tmp_path / "plan.json").write_text(plan.to_json(), encoding="utf-8")
    hook = replay(tmp_path, bs, "--dead-letters", "long-reply", "--yes")
    assert hook.exit_code == 1 and "is a hook" in hook.output
    unknown = replay(tmp_path, bs, "--dead-letters", "nope", "--yes")
    assert unknown.exit_code == 1 and "no algo or data sink named 'nope'" in unknown.output
    nothing = replay(tmp_path, bs, "--dead-letters", "check", "--yes")
    assert nothing.exit_code == 0 and "nothing to replay" in nothing.output
