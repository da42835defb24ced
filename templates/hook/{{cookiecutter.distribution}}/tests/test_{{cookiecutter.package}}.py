"""Delivers through algorail's own hook plumbing: config validation, then `deliver`."""

import json
from pathlib import Path

import pytest
from algorail.errors import PipelineError
from algorail.extensions import DeliveryFailed
from algorail.loader import load_pipeline
from algorail.plugin_manager import get_registry
from algorail.testing import deliver_hook

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline.yaml"


def test_plugin_is_registered():
    registry = get_registry()
    assert "{{ cookiecutter.name }}" in registry.hook_types
    assert registry.plugins["{{ cookiecutter.distribution }}"].status == "ok"


def test_delivers_one_line_per_result(tmp_path):
    target = tmp_path / "out" / "audit.jsonl"
    for run in ("run-1", "run-2"):
        result = deliver_hook("{{ cookiecutter.name }}", {"n": run}, {"path": str(target)}, run_id=run)
        assert result == {"path": str(target)}
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(line["runId"], line["payload"]) for line in lines] == [
        ("run-1", {"n": "run-1"}), ("run-2", {"n": "run-2"}),
    ]


def test_config_without_path_is_rejected():
    with pytest.raises(PipelineError, match="config.path"):
        deliver_hook("{{ cookiecutter.name }}", {}, {})


def test_unwritable_path_asks_for_a_retry(tmp_path):
    with pytest.raises(DeliveryFailed, match="cannot append"):
        deliver_hook("{{ cookiecutter.name }}", {}, {"path": str(tmp_path)})


def test_the_example_pipeline_is_valid():
    assert [h.type for h in load_pipeline(PIPELINE).spec.hooks] == ["{{ cookiecutter.name }}"]


def test_the_pipeline_runs_in_dev_mode(algorail_dev, tmp_path):
    target = tmp_path / "audit.jsonl"
    document = PIPELINE.read_text().replace("path: audit.jsonl", f"path: {target}")
    (tmp_path / "pipeline.yaml").write_text(document)
    dev = algorail_dev(tmp_path / "pipeline.yaml")
    response = dev.post("in", {"text": "hello"})
    assert response.status_code == 200, response.text
    lines = target.read_text().splitlines()
    assert [json.loads(line)["payload"] for line in lines] == [{"text": "hello"}]
