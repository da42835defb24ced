"""Checks the connector's config, its Kafka Connect config, and its dev-mode writer."""

import json
import time
from pathlib import Path

import pytest
from algorail.errors import PipelineError
from algorail.loader import load_pipeline
from algorail.plugin_manager import get_registry
from algorail.runtime.codec import Envelope
from algorail.runtime.connect import SinkRecord
from algorail.testing import connector_plan, kafka_connect_config

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline.yaml"


def test_plugin_is_registered():
    registry = get_registry()
    assert "{{ cookiecutter.name }}" in registry.connectors
    assert registry.plugins["{{ cookiecutter.distribution }}"].status == "ok"


def test_renders_its_kafka_connect_config():
    config = kafka_connect_config("{{ cookiecutter.name }}", {"file": "/data/out.jsonl", "tasksMax": 2})
    assert config["connector.class"] == "org.apache.kafka.connect.file.FileStreamSinkConnector"
    assert config["file"] == "/data/out.jsonl"
    assert config["tasks.max"] == "2"
    assert config["topics"] == "test.data-sink.in"


@pytest.mark.parametrize("config, problem", [
    ({}, "'file' is a required property"),
    ({"file": "x", "colour": "red"}, "colour"),
])
def test_bad_config_is_rejected(config, problem):
    with pytest.raises(PipelineError, match=problem):
        kafka_connect_config("{{ cookiecutter.name }}", config)


def test_cannot_be_a_source():
    with pytest.raises(PipelineError, match="cannot be a data source"):
        connector_plan("{{ cookiecutter.name }}", {"file": "x"}, kind="source")


def test_dev_writer_appends_records(tmp_path):
    plan = connector_plan("{{ cookiecutter.name }}", {"file": str(tmp_path / "out.jsonl")})
    writer = get_registry().connectors["{{ cookiecutter.name }}"].open_dev(plan)
    writer.check()
    records = [
        SinkRecord("t", 0, n, "in", {"n": n}, Envelope(run_id=f"run-{n}")) for n in range(3)
    ]
    writer.write(records[:2])
    writer.write(records[2:])
    writer.close()
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_the_example_pipeline_is_valid():
    assert [s.connector for s in load_pipeline(PIPELINE).spec.data_sinks] == ["{{ cookiecutter.name }}"]


def test_the_pipeline_runs_in_dev_mode(algorail_dev, tmp_path):
    target = tmp_path / "records.jsonl"
    document = PIPELINE.read_text().replace("file: records.jsonl", f"file: {target}")
    (tmp_path / "pipeline.yaml").write_text(document)
    dev = algorail_dev(tmp_path / "pipeline.yaml")
    assert dev.post("in", {"text": "hello"}, sync=False).status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (target.exists() and target.read_text()):
        time.sleep(0.2)
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"text": "hello"}]
