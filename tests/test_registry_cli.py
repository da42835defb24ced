"""The registry commands, end to end: keys in SQL, client commands over real HTTP."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from conftest import EXAMPLES

from algorail.cli import cli
from algorail.registry.api import BackgroundServer, open_registry


@pytest.fixture
def env(tmp_path):
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    runner = CliRunner()
    seldon = runner.invoke(cli, ["registry", "keys", "create", "--owner", "default",
                                 "--database-url", database])
    made = runner.invoke(cli, ["registry", "keys", "create", "--owner", "alice",
                               "--database-url", database])
    assert made.exit_code == 0, made.output
    server = BackgroundServer(open_registry(database, state_dir=tmp_path / "state")).start()
    yield runner, {"ALGORAIL_REGISTRY_URL": server.url, "ALGORAIL_API_KEY": made.output.strip(),
                   "SELDON_KEY": seldon.output.strip()}
    server.stop()


def run(env, *args: str, ok: bool = True):
    runner, variables = env
    result = runner.invoke(cli, list(args), env=variables)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_push_list_clone_show_and_blank(env, tmp_path):
    assert "ref: alice/hello:1.0.0" in run(env, "push", str(EXAMPLES / "hello.yaml"))
    duplicate = run(env, "push", str(EXAMPLES / "hello.yaml"), ok=False)
    assert "already exists" in duplicate and "Traceback" not in duplicate
    run(env, "pipelines", "clone", "alice/hello:1.0.0", "--to", "1.1.0")
    versions = json.loads(run(env, "pipelines", "versions", "hello", "--json"))
    assert [v["version"] for v in versions] == ["1.0.0", "1.1.0"]
    shown = yaml.safe_load(run(env, "pipelines", "show", "alice/hello:1.1.0", "--yaml"))
    assert shown["metadata"]["version"] == "1.1.0"
    run(env, "pipelines", "new", "scratch", "--blank", "--version", "0.1.0")
    listed = json.loads(run(env, "pipelines", "list", "--json"))
    assert {p["name"]: p["latest"] for p in listed} == {"hello": "1.1.0", "scratch": "0.1.0"}


def test_push_of_an_invalid_file_names_the_file(env, tmp_path):
    broken = tmp_path / "broken.yaml"
    doc = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    doc["spec"]["pipes"].append({"from": "ghost.out", "to": "result"})
    broken.write_text(yaml.safe_dump(doc))
    assert str(broken) in run(env, "push", str(broken), ok=False)


def test_push_a_seldon_manifest_with_bindings(env):
    seldon = EXAMPLES / "seldon"
    key = env[1]["SELDON_KEY"]
    stored = run(env, "push", str(seldon / "tfsimples.yaml"), "--bindings",
                 str(seldon / "bindings.yaml"), "--api-key", key)
    assert "ref: default/tfsimples:" in stored
    shown = yaml.safe_load(run(env, "pipelines", "show", stored.split("ref: ")[1].split()[0],
                               "--yaml", "--api-key", key))
    assert shown["apiVersion"] == "algorail.io/v1"
    assert {a["entrypoint"] for a in shown["spec"]["algos"]} == {"stubs:tfsimple"}


def test_algos_publish_list_versions(env):
    run(env, "algos", "publish", "alice/upper:1.0.0", "--runtime", "python",
        "--set", "entrypoint=hello_algos:upper")
    run(env, "algos", "publish", "alice/upper:1.1.0", "--runtime", "python", "--draft")
    versions = json.loads(run(env, "algos", "versions", "upper", "--json"))
    assert [(v["version"], v["published"]) for v in versions] == [("1.0.0", True),
                                                                  ("1.1.0", False)]
    assert versions[0]["settings"] == {"entrypoint": "hello_algos:upper"}
    assert "upper" in run(env, "algos", "list")


def test_deployments_commands_report_state(env, tmp_path):
    run(env, "push", str(EXAMPLES / "hello.yaml"))
    refused = run(env, "deploy", "alice/hello:1.0.0", "--name", "hello", "--target",
                  "kubernetes", "--set", "workdir=/nowhere", ok=False)
    assert "settings.workdir needs an admin API key" in refused and "HTTP 403" in refused
    failed = run(env, "deploy", "alice/hello:1.0.0", "--name", "hello", "--target",
                 "kubernetes", "--json")
    assert json.loads(failed)["state"] == "failed"  # waited for: no cluster is configured
    listed = json.loads(run(env, "deployments", "list", "--json"))
    assert [(d["name"], d["state"]) for d in listed] == [("hello", "failed")]
    assert "state: failed" in run(env, "deployments", "status", "hello")
    assert "state: terminated" in run(env, "deployments", "terminate", "alice/hello")
    assert "not found" in run(env, "deployments", "status", "nothing", ok=False)


def test_a_key_label_over_its_limit_is_one_line_naming_it(tmp_path):
    result = CliRunner().invoke(cli, ["registry", "keys", "create", "--owner", "alice",
                                      "--label", "l" * 300, "--database-url",
                                      f"sqlite:///{tmp_path / 'registry.db'}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "label is 300 characters long; the limit is 200" in result.output


def test_serve_refuses_an_allowed_namespace_kubernetes_would_refuse(tmp_path):
    result = CliRunner().invoke(cli, ["registry", "serve", "--allowed-namespace", "Team_A",
                                      "--database-url", f"sqlite:///{tmp_path / 'r.db'}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "'Team_A' is not a Kubernetes namespace name" in result.output


def test_client_commands_need_a_key():
    result = CliRunner().invoke(cli, ["pipelines", "list"], env={"ALGORAIL_API_KEY": ""})
    assert result.exit_code == 1 and "registry keys create" in result.output


def test_a_revoked_key_stops_working_at_once(tmp_path):
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    runner = CliRunner()
    key = runner.invoke(cli, ["registry", "keys", "create", "--owner", "alice",
                              "--database-url", database]).output.strip()
    server = BackgroundServer(open_registry(database, state_dir=tmp_path / "state")).start()
    try:
        variables = {"ALGORAIL_REGISTRY_URL": server.url, "ALGORAIL_API_KEY": key}
        assert runner.invoke(cli, ["pipelines", "list"], env=variables).exit_code == 0
        revoked = runner.invoke(cli, ["registry", "keys", "revoke", key[:12],
                                      "--database-url", database])
        assert revoked.exit_code == 0 and "owner alice" in revoked.output, revoked.output
        refused = runner.invoke(cli, ["pipelines", "list"], env=variables)
        assert refused.exit_code == 1 and "unknown API key" in refused.output, refused.output
        again = runner.invoke(cli, ["registry", "keys", "revoke", key[:12],
                                    "--database-url", database])
        assert again.exit_code == 1 and "no key with prefix" in again.output
    finally:
        server.stop()
