"""Runs the algo through algorail's own runtime, as a runner would."""

from pathlib import Path

import pytest
from algorail.loader import load_pipeline
from algorail.plugin_manager import get_registry
from algorail.testing import run_algo

from {{ cookiecutter.package }}.plugin import ENTRYPOINT

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline.yaml"


def test_plugin_is_registered():
    registry = get_registry()
    assert registry.algos["{{ cookiecutter.name }}"].entrypoint == ENTRYPOINT
    assert registry.plugins["{{ cookiecutter.distribution }}"].status == "ok"


def test_scores_text_through_the_python_runtime():
    result = run_algo("{{ cookiecutter.name }}", {"text": "A great day, I love it"})
    assert result == {"text": "A great day, I love it", "score": 2, "label": "positive"}
    assert run_algo(ENTRYPOINT, {"text": "awful"})["label"] == "negative"


def test_a_bad_payload_is_an_error():
    with pytest.raises(ValueError, match="text"):
        run_algo("{{ cookiecutter.name }}", {"words": 3})


def test_the_example_pipeline_is_valid():
    pipeline = load_pipeline(PIPELINE)
    assert [a.entrypoint for a in pipeline.spec.algos] == [ENTRYPOINT]


def test_the_pipeline_runs_in_dev_mode(algorail_dev):
    dev = algorail_dev(PIPELINE)
    response = dev.post("in", {"text": "good news"})
    assert response.status_code == 200, response.text
    assert "positive" in response.text
