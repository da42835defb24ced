"""`algorail validate`, `plan`, `graph` and `render` as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml
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


SELDON_HEAD = "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\n"


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("latin1.yaml", "apiVersion: algorail.io/v1\nkind: Pipeline # café\n".encode("latin-1"),
         ":2: [file] not UTF-8 text: byte 0xe9 at offset 47"),
        ("deep.yaml", b"[" * 20_000 + b"]" * 20_000,
         ":1: [syntax] YAML nested deeper than 100 levels"),
        ("deep-block.yaml", b"a:\n" + b"  - " * 20_000 + b"x\n",
         ":2: [syntax] YAML nested deeper than 100 levels"),
        ("deep.json", b"[" * 20_000 + b"]" * 20_000, "[syntax] JSON nested deeper than 100"),
        ("nan.json", b'{"apiVersion": NaN}', "[syntax] invalid JSON: NaN is not a JSON value"),
        ("meta.yaml", (SELDON_HEAD + "metadata: [x]\nspec: {steps: [{name: a}]}\n").encode(),
         "[schema] metadata: must be a mapping, not a list"),
        ("annotations.yaml",
         (SELDON_HEAD + "metadata: {name: p, annotations: {a: [1]}}\nspec: {steps: [{name: a}]}\n"
          ).encode(), "[schema] metadata.annotations.a: Input should be a valid string"),
        ("binary.yaml", b"apiVersion: !!binary aGk=\n",
         "[syntax] invalid YAML: tag:yaml.org,2002:binary is not a JSON value"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith(("yaml", "json")) else "",
)
@pytest.mark.parametrize("command", ["validate", "plan", "graph", "render"])
def test_bad_files_are_one_line_naming_the_file_and_exit_1(tmp_path, command, name, content,
                                                          says):
    bad = tmp_path / name
    bad.write_bytes(content)
    extra = ["-o", tmp_path / "out"] if command == "render" else []
    result = run(command, bad, *extra)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{bad}" in lines[0] and says in lines[0], result.output


@pytest.mark.parametrize(
    ("bindings", "says"),
    [
        ("bindings: [model1, model2]\n",
         "[bindings] bindings must be a mapping of algo or step names to settings, not a list"),
        ("bindings: {model1: python}\n",
         "[bindings] bindings: 'model1' must be a name bound to a mapping of settings"),
        ("- model1\n", "[syntax] expected a mapping"),
    ],
)
def test_bindings_that_are_not_a_mapping_are_one_line_and_exit_1(tmp_path, bindings, says):
    path = tmp_path / "bindings.yaml"
    path.write_text(bindings)
    for command in ("validate", "plan", "graph"):
        result = run(command, "--bindings", path, EXAMPLES / "seldon" / "conditional.yaml")
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"{path}" in lines[0] and says in lines[0], result.output


def test_bindings_annotation_that_is_not_a_mapping_is_an_error(tmp_path):
    manifest = tmp_path / "p.yaml"
    manifest.write_text(SELDON_HEAD + "metadata:\n  name: p\n  annotations:\n"
                        "    algorail.io/bindings: '[a, b]'\nspec: {steps: [{name: a}]}\n")
    result = run("validate", manifest)
    assert result.exit_code == 1
    assert ("[bindings] annotation algorail.io/bindings must be a mapping of algo or step "
            "names to settings, not a list") in result.output


def test_nesting_within_the_limit_still_loads(tmp_path):
    doc = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    config: dict = {}
    node = config
    for _ in range(90):  # metadata/spec/algos/0/config: 95 levels in all
        node["k"] = {}
        node = node["k"]
    doc["spec"]["algos"][0]["config"] = config
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps(doc))
    (tmp_path / "hello_algos.py").write_text((EXAMPLES / "hello_algos.py").read_text())
    assert run("validate", deep).exit_code == 0


SERVER_PORT_OPTIONS = [
    (["dev", EXAMPLES / "hello.yaml"], "--port"),
    (["gateway", "--plan", "{plan}", "--bootstrap-servers", "127.0.0.1:1"], "--port"),
    (["gateway", "--plan", "{plan}", "--bootstrap-servers", "127.0.0.1:1"], "--grpc-port"),
    (["hooks", "--plan", "{plan}", "--bootstrap-servers", "127.0.0.1:1"], "--metrics-port"),
    (["runner", "--plan", "{plan}", "--component", "upper", "--bootstrap-servers", "x:1"],
     "--metrics-port"),
    (["registry", "serve"], "--port"),
    (["deploy", "alice/hello:1.0.0", "--name", "d"], "--port"),
]


@pytest.fixture
def plan_file(tmp_path):
    path = tmp_path / "plan.json"
    assert run("plan", EXAMPLES / "hello.yaml", "-o", path).exit_code == 0
    return path


@pytest.mark.parametrize(("command", "option"), SERVER_PORT_OPTIONS,
                         ids=[f"{c[0]}-{o}" for c, o in SERVER_PORT_OPTIONS])
@pytest.mark.parametrize("value", ["99999", "65536", "-1", "0", "http", "8080.5", ""])
def test_a_port_that_is_not_a_port_is_one_error_line_and_exit_2(plan_file, command, option,
                                                                 value):
    if value == "0" and option == "--metrics-port":
        pytest.skip("--metrics-port 0 means off")
    args = [str(a).format(plan=plan_file) for a in command] + [option, value]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '{option}': " + (
        f"{value!r} is not a port number" if not value.lstrip("-").isdigit()
        else f"{value} is not a TCP port: use "
        + ("0 (off) or 1-65535" if option == "--metrics-port" else "1-65535"))], result.output
    assert "Traceback" not in result.output


@pytest.fixture
def busy_port():
    from algorail.runtime.broker import free_port

    with socket.socket() as listener:
        port = free_port()
        listener.bind(("127.0.0.1", port))
        listener.listen()
        yield port


@pytest.mark.parametrize(("command", "option"), SERVER_PORT_OPTIONS[:6],
                         ids=[f"{c[0]}-{o}" for c, o in SERVER_PORT_OPTIONS[:6]])
def test_a_port_in_use_is_said_before_anything_starts(plan_file, busy_port, command, option):
    args = [str(a).format(plan=plan_file) for a in command] + [option, str(busy_port)]
    started = time.monotonic()
    scratch = plan_file.parent  # where a registry would keep anything, were it to start
    env = {**os.environ, "ALGORAIL_REGISTRY_STATE_DIR": str(scratch / "state"),
           "ALGORAIL_REGISTRY_DATABASE_URL": f"sqlite:///{scratch / 'registry.db'}"}
    out = subprocess.run([sys.executable, "-m", "algorail.cli", *args], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"Error: port {busy_port} on 127.0.0.1 is already in use: stop what listens there or "
        f"choose another with {option}")
    assert "Traceback" not in out.stderr and "broker:" not in out.stdout + out.stderr
    assert time.monotonic() - started < 20
    assert not (scratch / "registry.db").exists()
