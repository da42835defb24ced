"""`algorail dev` tells the truth: a table of its components when it is ready, and one
/metrics with the gateway's, every runner's (labelled by component) and the hooks'."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import EXAMPLES
from prometheus_client.parser import text_string_to_metric_families

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
        text = httpx.get(f"{dev.url}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(re.findall(r"^# TYPE ", text, re.M)) == len(families)  # merged, no repeats

    def value(family, **labels):
        return sum(s.value for s in families[family].samples
                   if s.name.endswith("_total") and labels.items() <= s.labels.items())

    assert value("algorail_runner_messages_in", component="upper", input="text") == 1
    assert value("algorail_runner_messages_out", component="upper", port="result",
                 kind="data") == 1
    assert value("algorail_hook_outcomes", hook="result", state="delivered") == 1
    assert value("algorail_gateway_requests", status="200") == 1
