"""`algorail dev` tells the truth: a table of its components when it is ready, one
/metrics with the gateway's, every runner's (labelled by component) and the hooks', and
`GET /v1/dev`, from which the ops commands' `--dev URL` find its pipeline and broker."""

from __future__ import annotations

import copy
import json
import re
import shutil

import httpx
import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_secrets import DOCUMENT, plan_of

from algorail.cli import cli
from algorail.ops.devview import dev_info
from algorail.plan import Plan
from algorail.runtime.broker import free_port
from algorail.testing import DevPipeline


@pytest.mark.slow
def test_dev_prints_its_components_and_serves_all_their_metrics():
    with DevPipeline(EXAMPLES / "hello.yaml") as dev:
        output = dev.output()
        table = output[output.index("components of alice/hello:1.0.0\n"):]
        upper = next(line for line in table.splitlines() if line.strip().startswith("upper"))
        assert re.search(r"upper\s+algo\s+running\s+\d+\s+http://127\.0\.0\.1:\d+/metrics",
                         upper), upper
        assert re.search(rf"api\s+endpoint /alice/hello/in\s+running\s+\d+\s+{dev.url}/metrics",
                         table), table
        assert re.search(r"result\s+hook \(response\)\s+running", table), table

        reply = dev.post("in", {"text": "hi"}, timeout=20).json()
        assert reply["results"]["result"] == {"text": "HI"}

        def scrape():
            text = httpx.get(f"{dev.url}/metrics", timeout=10).text
            return text, {f.name: f for f in text_string_to_metric_families(text)}

        # a runner hands its message counts to its metrics on its loop's next tick
        assert wait_until(lambda: value(scrape()[1], "algorail_runner_messages_in",
                                        component="upper", input="text") >= 1, timeout=10)
        text, families = scrape()
    assert len(re.findall(r"^# TYPE ", text, re.M)) == len(families)  # merged, no repeats

    assert value(families, "algorail_runner_messages_in", component="upper",
                 input="text") == 1
    assert value(families, "algorail_runner_messages_out", component="upper", port="result",
                 kind="data") == 1
    assert value(families, "algorail_hook_outcomes", hook="result", state="delivered") == 1
    assert value(families, "algorail_gateway_requests", status="200") == 1


def value(families, family, **labels):
    """The sum of a counter family's samples with `labels`."""
    return sum(s.value for s in families[family].samples
               if s.name.endswith("_total") and labels.items() <= s.labels.items())


@pytest.mark.slow
def test_ops_commands_find_a_dev_pipeline_from_its_url(tmp_path):
    pipeline = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    pipeline["spec"]["algos"][0]["env"] = {"API_TOKEN": "tk-inline-4f2a"}  # dev mode allows it
    (tmp_path / "hello.yaml").write_text(yaml.safe_dump(pipeline))
    shutil.copy(EXAMPLES / "hello_algos.py", tmp_path)
    with DevPipeline(tmp_path / "hello.yaml") as dev:
        run_id = dev.post("in", {"text": "hi"}, timeout=20).json()["runId"]
        served = httpx.get(f"{dev.url}/v1/dev", timeout=10)
        status = CliRunner().invoke(cli, ["status", "--dev", dev.url, "--json",
                                          "--interval", "0.2"])
        inspected = CliRunner().invoke(cli, ["inspect", run_id, "--dev", dev.url + "/",
                                             "--json", "--since", "5m"])
        wrong_path = CliRunner().invoke(cli, ["status", "--dev", f"{dev.url}/alice"])
        output = dev.output()
    assert "tk-inline-4f2a" not in served.text
    info = served.json()
    assert info["plan"]["runners"][0]["env"] == {"API_TOKEN": "<redacted>"}
    assert f"broker: {info['bootstrapServers']} (embedded" in output
    assert info["workFolder"] == str(dev.work_dir.resolve())
    assert f"GET  {dev.url}/v1/dev  (for `algorail status --dev {dev.url}`" in output

    assert status.exit_code == 0, status.output
    states = {c["name"]: c["state"] for c in json.loads(status.stdout)["components"]}
    assert set(states) == {"upper", "result"}
    assert states["upper"] in ("running", "up to date"), states

    assert inspected.exit_code == 0, inspected.output
    report = json.loads(inspected.stdout)
    assert report["status"] == "complete"  # the gateway's view: its URL came from --dev
    pipes = [f"{hop['component']}.{hop['port']}" for hop in report["hops"]]
    assert pipes[:2] == ["api.in", "upper.result"], pipes

    assert wrong_path.exit_code == 1
    assert wrong_path.output.strip().splitlines() == [
        f"Error: {dev.url}/alice is not an `algorail dev` gateway this algorail can read "
        "(GET /v1/dev answered 404); give the URL `algorail dev` printed"]


def test_a_dev_url_nothing_listens_on_is_one_error_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["tail", "api.in", "--dev", url])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: cannot reach algorail dev at {url}: "), line


def test_the_plan_dev_mode_serves_has_no_inline_secret():
    document = copy.deepcopy(DOCUMENT)
    score, chat = document["spec"]["algos"]
    score["env"]["DB_PASSWORD"] = "pw-inline-1"
    chat["config"]["headers"]["Authorization"] = "Bearer inline-2"
    hook = document["spec"]["hooks"][0]["config"]
    hook["secret"], hook["headers"]["Authorization"] = "hmac-inline-3", "Bearer inline-4"
    plan = plan_of(document)
    served = dev_info(plan, "127.0.0.1:9092", "/tmp/work")
    text = json.dumps(served)
    for secret in ("pw-inline-1", "inline-2", "hmac-inline-3", "inline-4"):
        assert secret not in text
    runners = {r["component"]: r for r in served["plan"]["runners"]}
    assert runners["score"]["env"] == {"DB_PASSWORD": "<redacted>", "MODEL": "small",
                                       "TOKENIZER_PATH": "/models/tok"}
    assert runners["chat"]["config"]["headers"] == {"X-Model": "chat",
                                                    "Authorization": "<redacted>"}
    assert runners["chat"]["env"] == {"OPENAI_API_KEY": "${secrets:shop/openai:key}"}
    [notify] = served["plan"]["hooks"]
    assert notify["config"]["secret"] == "<redacted>"
    assert notify["config"]["headers"] == {"Authorization": "<redacted>", "X-Team": "search"}
    assert "source_file" not in served["plan"]
    assert Plan.model_validate(served["plan"]).topic_names() == plan.topic_names()
    assert plan.runner("score").env["DB_PASSWORD"] == "pw-inline-1"  # the plan is untouched
