"""`algorail new`: the files each template generates, and the names it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from click.testing import CliRunner

from algorail.cli import cli
from algorail.scaffold import ScaffoldError, new_project, parse_settings, template_dir

# What each template generates; PACKAGE is the project's package, from its name.
EXPECTED_FILES = {
    "algo": {
        "Dockerfile", "README.md", "pipeline.yaml", "pyproject.toml",
        "PACKAGE/__init__.py", "PACKAGE/algo.py", "PACKAGE/plugin.py", "tests/test_PACKAGE.py",
    },
    "connector": {
        "README.md", "pipeline.yaml", "pyproject.toml",
        "PACKAGE/__init__.py", "PACKAGE/plugin.py", "tests/test_PACKAGE.py",
    },
    "hook": {
        "README.md", "pipeline.yaml", "pyproject.toml",
        "PACKAGE/__init__.py", "PACKAGE/plugin.py", "tests/test_PACKAGE.py",
    },
}
DEFAULT_NAMES = {"algo": "sentiment", "connector": "jsonl-sink", "hook": "audit-log"}


def unused_name() -> str:
    """A project name no installed distribution or package has: tests must not depend on
    what else is installed (a user may well have installed a project made with the
    defaults, which `algorail new` then rightly refuses to make again)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("kind", sorted(EXPECTED_FILES))
def test_each_template_generates_its_file_set(tmp_path, kind):
    name = unused_name()
    generated = new_project(kind, tmp_path, {"name": name})
    assert generated.path == tmp_path / f"algorail-{name}"
    files = {str(p.relative_to(generated.path)) for p in generated.path.rglob("*") if p.is_file()}
    assert files == {f.replace("PACKAGE", f"algorail_{name}") for f in EXPECTED_FILES[kind]}
    text = "".join(p.read_text() for p in generated.path.rglob("*") if p.is_file())
    assert "{{" not in text and "cookiecutter" not in text
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--line-length", "100",
         "--select", "E,F,W,I,B,UP", "."], capture_output=True, text=True, cwd=generated.path,
    )
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("kind", sorted(DEFAULT_NAMES))
def test_each_template_defaults_to_the_name_the_docs_use(kind):
    defaults = json.loads((template_dir(kind) / "cookiecutter.json").read_text())
    assert defaults["name"] == DEFAULT_NAMES[kind]
    assert defaults["distribution"] == "algorail-{{ cookiecutter.name }}"


def test_settings_flow_into_every_derived_name(tmp_path):
    generated = new_project("hook", tmp_path, {"name": "slack-notify", "owner": "acme"})
    assert generated.path == tmp_path / "algorail-slack-notify"
    plugin = (generated.path / "algorail_slack_notify" / "plugin.py").read_text()
    assert "class SlackNotifyHook(HookType):" in plugin
    assert 'name = "slack-notify"' in plugin
    pyproject = (generated.path / "pyproject.toml").read_text()
    assert 'slack-notify = "algorail_slack_notify.plugin"' in pyproject
    assert "owner: acme" in (generated.path / "pipeline.yaml").read_text()


@pytest.mark.parametrize("values, message", [
    ({"name": "Sentiment"}, "name 'Sentiment' is not usable"),
    ({"name": "2fast"}, "name '2fast' is not usable"),
    ({"name": "bad_name"}, "name 'bad_name' is not usable"),
    ({"name": "ok", "package": "class"}, "package 'class' is not a Python package name"),
    ({"name": "ok", "package": "json"}, "package 'json' already exists"),
    ({"name": "ok", "distribution": "pluggy"}, "distribution named 'pluggy' is already installed"),
    ({"name": "ok", "distribution": "Not Safe"}, "distribution 'Not Safe' is not a safe"),
    ({"name": "webhook"}, "already offers a hook type named 'webhook'"),
    ({"description": 'say "hi"'}, "description may not contain double quotes"),
    ({"owner": "Team A"}, "owner 'Team A' is not usable"),
    ({"version": "1.0"}, "version '1.0' is not a semantic version"),
    ({"class_name": "2Hook"}, "class_name '2Hook' is not a Python class name"),
])
def test_unusable_names_are_refused_before_anything_is_written(tmp_path, values, message):
    with pytest.raises(ScaffoldError, match=message):
        new_project("hook", tmp_path, values)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_kept_unless_forced(tmp_path):
    name = unused_name()
    generated = new_project("algo", tmp_path, {"name": name})
    mine = generated.path / f"algorail_{name}" / "algo.py"
    mine.write_text("# my own work\n")
    with pytest.raises(ScaffoldError, match="already exists.*--force"):
        new_project("algo", tmp_path, {"name": name})
    assert mine.read_text() == "# my own work\n"
    new_project("algo", tmp_path, {"name": name}, force=True)
    assert "def predict" in mine.read_text()


def test_unknown_settings_and_templates_are_refused(tmp_path):
    with pytest.raises(ScaffoldError, match="no setting 'colour'"):
        new_project("algo", tmp_path, {"colour": "red"})
    with pytest.raises(ScaffoldError, match="no template named 'model'"):
        new_project("model", tmp_path)
    with pytest.raises(ScaffoldError, match="KEY=VALUE"):
        parse_settings(["name"])


def test_new_command_reports_errors_without_a_traceback(tmp_path):
    runner = CliRunner()
    name = unused_name()
    args = ["new", "connector", "--no-input", "-o", str(tmp_path), "--set", f"name={name}"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"created {tmp_path / f'algorail-{name}'}" in result.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 1
    assert "already exists" in again.output and "Traceback" not in again.output
