"""`--deployment NAME` alone: the ops commands take the pipeline, Kafka and gateway of a
registry deployment (a local one, running `algorail dev` on a given broker)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES, AsgiServer

from algorail.cli import cli
from algorail.registry.api import create_app, open_registry
from algorail.registry.auth import create_key
from algorail.registry.client import RegistryClient
from algorail.registry.policy import DeploymentPolicy


@pytest.mark.slow
def test_status_and_inspect_of_a_registry_deployment(tmp_path, broker):
    import yaml

    registry = open_registry(f"sqlite:///{tmp_path / 'r.db'}", state_dir=tmp_path / "state",
                             policy=DeploymentPolicy(allow_local=True, deployments_dir=EXAMPLES))
    with registry.sessions() as session:
        key = create_key(session, "alice", admin=True)  # local deployments need an admin key
    with AsgiServer(create_app(registry)) as server, RegistryClient(server.url, key) as client:
        client.push(yaml.safe_load((EXAMPLES / "hello.yaml").read_text()))
        client.deploy("alice/hello:1.0.0", "hello-ops", "local", {
            "workdir": str(EXAMPLES), "bootstrapServers": broker.bootstrap_servers,
            "startTimeout": 90})
        made = client.wait("alice", "hello-ops")
        assert made["state"] == "running", made["message"]
        try:
            reply = httpx.post(f"{made['runtime']['url']}/alice/hello-ops/in?sync=true",
                               json={"text": "hi"}, timeout=60).json()
            assert reply["status"] == "complete", reply
            args = ["--deployment", "hello-ops", "--registry", server.url, "--api-key", key]
            # the runner commits its input on a 1 s interval after the reply: lag 1 until then
            deadline = time.monotonic() + 20
            while True:
                status = CliRunner().invoke(cli, ["status", *args, "--json", "--interval", "0.2"])
                assert status.exit_code == 0, status.output
                shown = {c["name"]: c for c in json.loads(status.stdout)["components"]}
                assert set(shown) == {"upper", "result"}
                if shown["upper"]["lag"] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert shown["upper"]["lag"] == 0, shown
            inspected = CliRunner().invoke(cli, ["inspect", reply["runId"], *args, "--json"])
            assert inspected.exit_code == 0, inspected.output
            report = json.loads(inspected.stdout)
            assert report["status"] == "complete" and report["hooks"] == {"result": "delivered"}
            assert [h["component"] for h in report["hops"]][:2] == ["api", "upper"]
            missing = CliRunner().invoke(cli, ["status", "--deployment", "nope", "--registry",
                                               server.url, "--api-key", key])
            assert missing.exit_code == 1 and "no deployment 'nope'" in missing.output
        finally:
            client.terminate("alice", "hello-ops")
