"""Deployments: `local` runs `algorail dev` supervised by PID (state survives a registry
restart, terminate stops every process); `kubernetes` values render with the real chart."""

from __future__ import annotations

import importlib.util
import os
import signal

import httpx
import pytest
import yaml
from conftest import EXAMPLES, wait_until

from algorail.registry.api import open_registry
from algorail.registry.auth import Principal
from algorail.registry.supervisor import KubernetesTarget, default_chart, process_tree

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
def registry_factory(tmp_path):
    """Open the same registry (database and state folder) again, as after a restart."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    return lambda: open_registry(url, state_dir=tmp_path / "state")


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if os.path.exists(f"/proc/{p}") and
            open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"}


@needs_dev
def test_local_deployment_serves_survives_restart_and_terminates_everything(registry_factory):
    registry = registry_factory()
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", "hello-local", "local",
                           {"workdir": str(EXAMPLES), "startTimeout": 90})
    assert made["state"] == "running", made["message"]
    runtime = made["runtime"]
    try:
        answer = httpx.post(f"{runtime['url']}/alice/hello-local/in?sync=true",
                            json={"text": "hi there"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "HI THERE" in answer.text
        started = wait_until(lambda: len(process_tree(runtime["pid"], runtime["pgid"])) > 1)
        assert started, "algorail dev should run its runners as child processes"
        tree = process_tree(runtime["pid"], runtime["pgid"])

        restarted = registry_factory()  # a new registry process knows only what SQL says
        assert restarted.reconcile() == {"alice/hello-local": "running"}
        assert restarted.deployment(ALICE, "alice", "hello-local")["state"] == "running"
        assert restarted.terminate(ALICE, "alice", "hello-local")["state"] == "terminated"
        assert wait_until(lambda: not _alive(tree), timeout=15), _alive(tree)
    finally:
        registry.supervisor.stop("local", runtime)


@needs_dev
def test_a_crashed_local_deployment_is_reported_failed(registry_factory):
    registry = registry_factory()
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", "crashy", "local",
                           {"workdir": str(EXAMPLES), "startTimeout": 90})
    assert made["state"] == "running", made["message"]
    os.killpg(made["runtime"]["pgid"], signal.SIGKILL)
    status = wait_until(lambda: registry.deployment(ALICE, "alice", "crashy")["state"] == "failed")
    assert status
    message = registry.deployment(ALICE, "alice", "crashy")["message"]
    assert "has exited" in message and "dev.log" in message
    # a failed deployment can be deployed again under the same name
    assert registry.reconcile() == {}


def test_local_deployment_with_a_missing_workdir_fails_with_a_reason(registry_factory, tmp_path):
    registry = registry_factory()
    registry.push(ALICE, HELLO)
    made = registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local",
                           {"workdir": str(tmp_path / "nope")})
    assert made["state"] == "failed"
    assert "not a directory" in made["message"]


def test_kubernetes_values_render_with_the_pipeline_chart(tmp_path):
    helm = pytest.importorskip("helm_python")
    if not default_chart().is_dir():
        pytest.skip("charts/algorail-pipeline is not in this tree")
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
