"""`algorail validate` reports a python entrypoint whose module or function cannot be
found next to the pipeline or on the path, without running the module's code."""

from __future__ import annotations

import json

from click.testing import CliRunner

from algorail.cli import cli


def pipeline(entrypoint: str, **algo: str) -> str:
    return json.dumps({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "t", "name": "p", "version": "1.0.0"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "algos": [{"name": "a", "runtime": "python", "entrypoint": entrypoint,
                       "inputs": [{"name": "in"}], "outputs": [{"name": "out"}], **algo}],
            "hooks": [{"name": "r", "type": "response"}],
            "pipes": [{"from": "api.in", "to": "a.in"}, {"from": "a.out", "to": "r"}],
        },
    })


def validate(tmp_path, entrypoint: str, **algo: str):
    file = tmp_path / "p.json"
    file.write_text(pipeline(entrypoint, **algo))
    return CliRunner().invoke(cli, ["validate", str(file)]), file


def test_a_missing_module_or_function_is_reported(tmp_path):
    result, file = validate(tmp_path, "no_such_module_q:f")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"{file}: algo 'a': [entrypoint] no module 'no_such_module_q' next to the pipeline "
        f"({tmp_path}) or on the Python path")
    (tmp_path / "algos.py").write_text("def other(p):\n    return p\n")
    result, file = validate(tmp_path, "algos:nope")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"{file}: algo 'a': [entrypoint] module 'algos' has no function 'nope'")
    result, _ = validate(tmp_path, "json:no_such_function")  # on the path, not beside it
    assert "module 'json' has no function 'no_such_function'" in result.output


def test_functions_are_found_without_running_the_module(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "algos.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from json import dumps as encode\n"
        "double = lambda p: p * 2\n"
        "if True:\n    def conditional(p):\n        return p\n"
        "class Model:\n    def predict(self, p):\n        return p\n"
        "def upper(p):\n    return p\n")
    for name in ("upper", "encode", "double", "conditional", "Model.predict"):
        result, file = validate(tmp_path, f"algos:{name}")
        assert result.output.strip() == f"{file}: ok (t/p:1.0.0)", (name, result.output)
    assert not marker.exists()


def test_code_in_an_image_is_not_looked_for_here(tmp_path):
    result, file = validate(tmp_path, "in_the_image:f", image="registry.example/algo:1")
    assert result.output.strip() == f"{file}: ok (t/p:1.0.0)", result.output
