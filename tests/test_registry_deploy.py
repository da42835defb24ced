"""Deployments: `local` runs `algorail dev` supervised by PID (state survives a registry
restart, terminate stops every process); `kubernetes` values render with the real chart."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import EXAMPLES, wait_until

from algorail.registry.api import open_registry
from algorail.registry.auth import Principal, create_key
from algorail.registry.client import RegistryClient
from algorail.registry.supervisor import KubernetesTarget, LocalTarget, process_tree
from algorail.runtime.broker import free_port, wait_for_port

HELLO = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
ALICE = Principal("alice")


def _has_dev() -> bool:
    try:
        return importlib.util.find_spec("algorail.commands.runtime") is not None
    except ModuleNotFoundError:
        return False


needs_dev = pytest.mark.skipif(not _has_dev(), reason="`algorail dev` (runtime team) is not "
                               "installed in this tree yet")


@pytest.fixture
def registry(tmp_path):
    return open_registry(f"sqlite:///{tmp_path / 'registry.db'}", state_dir=tmp_path / "state")


def deploy_hello(registry, name: str) -> dict:
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", name, "local",
                           {"workdir": str(EXAMPLES), "startTimeout": 90})
    assert made["state"] == "running", made["message"]
    return made["runtime"]


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if os.path.exists(f"/proc/{p}") and
            open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"}


class RegistryProcess:
    """`algorail registry serve` as its own process, so a restart is a real one."""

    def __init__(self, database: str, state_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "algorail.cli", "registry", "serve", "--database-url",
                 database, "--state-dir", str(state_dir), "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        assert wait_for_port("127.0.0.1", self.port, 30), log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@needs_dev
def test_local_deployment_serves_survives_restart_and_terminates_everything(tmp_path):
    database, state, log = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "state", tmp_path / "log"
    with open_registry(database, state_dir=state).sessions() as session:
        key = create_key(session, "alice")
    first = RegistryProcess(database, state, log)
    runtime = None
    try:
        with RegistryClient(first.url, key) as client:
            client.push(HELLO)
            made = client.deploy("alice/hello:1.0.0", "hello-local", "local",
                                 {"workdir": str(EXAMPLES)})
        assert made["state"] == "running", made["message"]
        runtime = made["runtime"]
        answer = httpx.post(f"{runtime['url']}/alice/hello-local/in?sync=true",
                            json={"text": "hi there"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "HI THERE" in answer.text
        started = wait_until(lambda: len(process_tree(runtime["pid"], runtime["pgid"])) > 1)
        assert started, "algorail dev should run its runners as child processes"
        tree = process_tree(runtime["pid"], runtime["pgid"])

        first.stop()  # the deployment keeps running without the registry ...
        assert _alive(tree) == tree
        second = RegistryProcess(database, state, log)  # ... and the new one adopts it
        try:
            assert "alice/hello-local: running" in log.read_text()
            with RegistryClient(second.url, key) as client:
                assert client.deployment("alice", "hello-local")["state"] == "running"
                assert client.terminate("alice", "hello-local")["state"] == "terminated"
            assert wait_until(lambda: not _alive(tree), timeout=15), _alive(tree)
        finally:
            second.stop()
    finally:
        first.stop()
        if runtime:
            LocalTarget(state).stop(runtime)


@needs_dev
def test_a_crashed_local_deployment_is_reported_failed(registry):
    os.killpg(deploy_hello(registry, "crashy")["pgid"], signal.SIGKILL)
    status = wait_until(lambda: registry.deployment(ALICE, "alice", "crashy")["state"] == "failed")
    assert status
    message = registry.deployment(ALICE, "alice", "crashy")["message"]
    assert "has exited" in message and "dev.log" in message
    # after a restart there is nothing left to adopt
    assert registry.reconcile() == {}


def test_local_deployment_with_a_missing_workdir_fails_with_a_reason(registry, tmp_path):
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local",
                           {"workdir": str(tmp_path / "nope")})
    assert made["state"] == "failed"
    assert "not a directory" in made["message"]


def test_kubernetes_values_render_with_the_pipeline_chart(tmp_path):
    helm = pytest.importorskip("helm_python")
    release = KubernetesTarget(tmp_path).release("alice", "hello", HELLO, {"namespace": "ml"})
    assert (release["release"], release["namespace"]) == ("alice-hello", "ml")
    chart = helm.Chart.load(release["chart"])
    rendered = chart.render(values=release["values"], name=release["release"],
                            namespace=release["namespace"], is_install=True)
    objects = [doc for path, text in rendered.items() if path.endswith(".yaml")
               for doc in yaml.safe_load_all(text) if doc]
    topics = {o["spec"].get("topicName", o["metadata"]["name"]) for o in objects
              if o.get("kind") == "KafkaTopic"}
    assert "alice.hello.upper.result" in topics
    assert any(o.get("kind") == "Deployment" for o in objects)


def test_kubernetes_target_without_helm_says_how_to_fix_it(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'r.db'}", state_dir=tmp_path / "state",
                             helm=str(tmp_path / "no-helm-here"))
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "kubernetes")
    assert made["state"] == "failed"
    assert "ALGORAIL_HELM" in made["message"]
