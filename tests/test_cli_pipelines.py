"""`algorail validate`, `plan` and `graph` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner
from conftest import EXAMPLES

from algorail.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_validate_ok():
    result = run("validate", EXAMPLES / "hello.yaml", EXAMPLES / "reviews.yaml")
    assert result.exit_code == 0, result.output
    assert "hello.yaml: ok (alice/hello:1.0.0)" in result.output


def test_every_example_validates():
    examples = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert len(examples) >= 3
    result = run("validate", *examples)
    assert result.exit_code == 0, result.output


def test_validate_reports_every_problem_and_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (EXAMPLES / "hello.yaml").read_text()
    bad.write_text(text.replace("runtime: python", "runtime: cobol").replace("1.0.0\n", "one\n", 1))
    result = run("validate", bad, EXAMPLES / "hello.yaml")
    assert result.exit_code == 1
    line = text.splitlines().index("    - name: upper") + 1
    assert f"{bad}:{line}: algo 'upper': [unknown-runtime] no runtime named 'cobol'" in (
        result.output
    )
    assert "[version]" in result.output
    assert "hello.yaml: ok" in result.output
    assert "Traceback" not in result.output


def test_validate_missing_file_is_an_error_not_a_traceback(tmp_path):
    result = run("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 1
    assert "[file] cannot read" in result.output


def test_plan_json_is_the_compiled_plan():
    result = run("plan", EXAMPLES / "hello.yaml", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["api_version"] == "algorail.io/plan/v1"
    assert plan["routes"][0]["url"] == "/alice/hello/in"
    assert plan["runners"][0]["outputs"] == {"result": "alice.hello.upper.result"}


def test_plan_writes_a_file_and_prints_tables(tmp_path):
    out = tmp_path / "plan.json"
    result = run("plan", EXAMPLES / "reviews.yaml", "-o", out)
    assert result.exit_code == 0
    assert json.loads(out.read_text())["deployment"] == "reviews"
    result = run("plan", EXAMPLES / "reviews.yaml")
    assert "Routes" in result.output and "alice.reviews.errors" in result.output


def test_plan_of_invalid_pipeline_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: algorail.io/v1\nkind: Pipeline\nmetadata: {owner: a, name: b}\n"
        "spec: {pipes: [{from: x, to: y}]}\n"
    )
    result = run("plan", bad)
    assert result.exit_code == 1
    assert "[unknown-component]" in result.output


def test_graph_formats():
    mermaid = run("graph", EXAMPLES / "reviews.yaml")
    assert mermaid.output.startswith("flowchart LR\n")
    assert 'n_router -->|"long → in"| n_long_reviews' in mermaid.output
    dot = run("graph", EXAMPLES / "seldon" / "joincheck.yaml", "--format", "dot",
              "--bindings", EXAMPLES / "seldon" / "bindings.yaml")
    assert dot.output.startswith('digraph "default/joincheck" {')
    assert "n_check -> n_tfsimple3" in dot.output and "style=dashed" in dot.output


def test_seldon_with_bindings_file():
    seldon = EXAMPLES / "seldon"
    result = run("validate", "--bindings", seldon / "bindings.yaml", seldon / "conditional.yaml")
    assert result.exit_code == 0, result.output


def test_help_imports_nothing_heavy():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['algorail', '--help']\n"
        "try:\n"
        "    from algorail.cli import cli; cli(prog_name='algorail')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('pulumi', 'pulumi_kubernetes', 'kubernetes', 'kubernetes_validate',"
        " 'helm_python', 'kafka', 'boto3', 'sqlalchemy', 'uvicorn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    assert "validate" in out.stdout and "plan" in out.stdout
