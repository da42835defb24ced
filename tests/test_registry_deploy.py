"""Deployments: `local` runs `algorail dev` supervised by PID (state survives a registry
restart, terminate stops every process); `kubernetes` values render with the real chart."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from conftest import EXAMPLES, wait_until
from kube_api import KubeApiThread, write_kubeconfig

from algorail.registry.api import BackgroundServer, open_registry
from algorail.registry.auth import Principal, create_key
from algorail.registry.client import RegistryClient, RegistryRequestError
from algorail.registry.errors import Invalid
from algorail.registry.policy import DeploymentPolicy
from algorail.registry.supervisor import LocalTarget, deployment_processes
from algorail.runtime.broker import free_port, wait_for_port

HELLO = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
ALICE = Principal("alice", admin=True)  # local deployments need an admin key
LOCAL = DeploymentPolicy(allow_local=True, deployments_dir=EXAMPLES)


def _has_dev() -> bool:
    try:
        return importlib.util.find_spec("algorail.commands.runtime") is not None
    except ModuleNotFoundError:
        return False


needs_dev = pytest.mark.skipif(not _has_dev(), reason="`algorail dev` (runtime team) is not "
                               "installed in this tree yet")


@pytest.fixture
def registry(tmp_path):
    made = open_registry(f"sqlite:///{tmp_path / 'registry.db'}", state_dir=tmp_path / "state",
                         policy=LOCAL)
    yield made
    made.close()


def settle(registry, name: str, owner: str = "alice", timeout: float = 120) -> dict:
    """The deployment once its start or stop in the background is over."""
    return wait_until(lambda: (d := registry.deployment(ALICE, owner, name))["state"]
                      not in ("starting", "stopping") and d, timeout=timeout)


def deploy_hello(registry, name: str) -> dict:
    registry.push(ALICE, HELLO)
    registry.deploy(ALICE, "alice/hello:1.0.0", name, "local",
                    {"workdir": str(EXAMPLES), "startTimeout": 90})
    made = settle(registry, name)
    assert made["state"] == "running", made["message"]
    return made["runtime"]


def children() -> set[int]:
    """PIDs of this test process's live descendants."""
    return {p.pid for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE}


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if psutil.pid_exists(p) and
            psutil.Process(p).status() != psutil.STATUS_ZOMBIE}


class RegistryProcess:
    """`algorail registry serve` as its own process, so a restart is a real one."""

    def __init__(self, database: str, state_dir: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "algorail.cli", "registry", "serve", "--database-url",
                 database, "--state-dir", str(state_dir), "--port", str(self.port),
                 "--allow-local-deployments", "--deployments-dir", str(EXAMPLES)],
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
@pytest.mark.slow
def test_local_deployment_serves_survives_restart_and_terminates_everything(tmp_path):
    database, state, log = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "state", tmp_path / "log"
    with open_registry(database, state_dir=state).sessions() as session:
        key = create_key(session, "alice", admin=True)
    first = RegistryProcess(database, state, log)
    runtime = None
    try:
        with RegistryClient(first.url, key) as client:
            client.push(HELLO)
            client.deploy("alice/hello:1.0.0", "hello-local", "local", {"workdir": "."})
            made = client.wait("alice", "hello-local")
        assert made["state"] == "running", made["message"]
        runtime = made["runtime"]
        answer = httpx.post(f"{runtime['url']}/alice/hello-local/in?sync=true",
                            json={"text": "hi there"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "HI THERE" in answer.text
        # dev keeps its work folder (locked, with its write-ahead log) in the registry's state
        # folder, so two registries deploying one owner/name never share one
        assert (state / "local" / "alice" / "hello-local" / "work" / "wal").is_dir()
        started = wait_until(lambda: len(deployment_processes(runtime)) > 1)
        assert started, "algorail dev should run its runners as child processes"
        tree = {p.pid for p in deployment_processes(runtime)}

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
@pytest.mark.slow
def test_a_crashed_local_deployment_is_reported_failed(registry):
    os.killpg(deploy_hello(registry, "crashy")["pgid"], signal.SIGKILL)
    status = wait_until(lambda: registry.deployment(ALICE, "alice", "crashy")["state"] == "failed")
    assert status
    message = registry.deployment(ALICE, "alice", "crashy")["message"]
    assert "has exited" in message and "dev.log" in message
    assert "upper: running" in message  # the last lines of its output
    # after a restart there is nothing left to adopt
    assert registry.reconcile() == {}


def test_local_deployment_with_a_missing_workdir_is_refused_with_a_reason(registry):
    registry.push(ALICE, HELLO)
    with pytest.raises(Invalid, match="does not exist in the deployments folder"):
        registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local", {"workdir": "nope"})


def pipeline_path(namespace: str, name: str) -> str:
    return f"/apis/algorail.io/v1/namespaces/{namespace}/pipelines/{name}"


def ops_hello(version: str = "1.0.0") -> dict:
    document = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    document["metadata"].update(owner="ops", version=version)
    return document


def test_a_kubernetes_deployment_is_a_pipeline_resource_reporting_its_real_status(
        cluster, kube_registry):
    """Deploy through the registry's API: the Pipeline resource appears (the object
    `render --resource` makes, modules packed from the workdir); the status the operator
    writes on it is the deployment's status; update patches it, terminate deletes it."""
    from algorail.compiler import compile_plan
    from algorail.operator.resource import deployment_resource
    from algorail.spec import parse_pipeline

    ops = kube_registry["ops"]
    ops.push(ops_hello())
    ops.push(ops_hello("1.1.0"))
    settings = {"namespace": "team-a", "workdir": str(EXAMPLES),
                "deployment": {"resources": {"limits": {"cpu": "2"}}}}
    ops.deploy("ops/hello:1.0.0", "hello", "kubernetes", settings)
    made = ops.wait("ops", "hello")
    assert made["state"] == "running", made["message"]
    assert made["runtime"] == {"apiVersion": "algorail.io/v1", "kind": "Pipeline",
                               "namespace": "team-a", "name": "hello", "release": "ops-hello"}
    path = pipeline_path("team-a", "hello")
    with httpx.Client(base_url=cluster.url, timeout=10) as kube:
        resource = kube.get(path).json()
        plan = compile_plan(parse_pipeline(ops_hello()), deployment="hello")
        expected = deployment_resource(ops_hello(), plan.model_copy(
            update={"base_dir": str(EXAMPLES)}), "team-a")
        assert resource["spec"] == {**expected["spec"], "deployment": {
            **expected["spec"]["deployment"], "resources": {"limits": {"cpu": "2"}}}}
        assert "hello_algos.py" in resource["spec"]["deployment"]["code"]
        assert resource["metadata"]["annotations"]["algorail.io/registry-deployment"] == (
            "ops/hello")

        # No operator has written a status yet: the deployment says so.
        status = ops.deployment("ops", "hello")["status"]
        assert (status["ready"], status["reconciled"]) == (False, False)
        assert "has not reconciled" in status["message"] and "team-a" in status["message"]

        # The operator reports a failing runner: the registry shows it, and keeps running.
        failing = "pods \"ops-hello-upper\" is forbidden: exceeded quota"
        kube.patch(path, json={"metadata": {"generation": 1}},
                   headers={"Content-Type": "application/merge-patch+json"})
        written = kube.patch(f"{path}/status", headers={
            "Content-Type": "application/merge-patch+json"}, json={"status": {
                "observedGeneration": 1, "planVersion": "1.0.0", "endpoints": ["/ops/hello/in"],
                "components": {"upper": {"kind": "algo", "desiredReplicas": 1,
                                         "readyReplicas": 0, "lastError": failing}},
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "RunnersNotReady",
                     "message": "waiting for ready runners: upper"},
                    {"type": "Degraded", "status": "True", "reason": "RunnerFailing",
                     "message": f"upper: {failing}"}]}})
        assert written.status_code < 300, written.text
        shown = ops.deployment("ops", "hello")
        assert shown["state"] == "running"
        status = shown["status"]
        assert (status["ready"], status["degraded"], status["reconciled"]) == (False, True, True)
        assert status["message"] == f"upper: {failing}"
        assert status["components"]["upper"]["lastError"] == failing
        assert status["endpoints"] == ["/ops/hello/in"]
        assert [d["status"] for d in ops.deployments()] == [status]

        kube.patch(f"{path}/status", headers={"Content-Type": "application/merge-patch+json"},
                   json={"status": {"components": {"upper": {"readyReplicas": 1,
                                                             "lastError": None}},
                                    "conditions": [
                       {"type": "Ready", "status": "True", "reason": "Ready",
                        "message": "1 components ready"},
                       {"type": "Degraded", "status": "False", "reason": "Healthy"}]}})
        status = ops.deployment("ops", "hello")["status"]
        assert (status["ready"], status["degraded"]) == (True, False)
        assert status["message"] == "1 components ready"

        # update: the same resource, patched to the new version
        ops.update("ops", "hello", "ops/hello:1.1.0")
        assert ops.wait("ops", "hello")["state"] == "running"
        assert kube.get(path).json()["spec"]["version"] == "1.1.0"

        # terminate: the resource is deleted (the operator deletes what it owns)
        assert ops.terminate("ops", "hello")["state"] == "terminated"
        assert kube.get(path).status_code == 404

        # a resource deleted behind the registry's back: the deployment is failed
        ops.deploy("ops/hello:1.0.0", "hello", "kubernetes", {"namespace": "team-a"})
        assert ops.wait("ops", "hello")["state"] == "running"
        assert kube.delete(path).status_code < 300
        gone = ops.deployment("ops", "hello")
        assert gone["state"] == "failed" and "gone from the cluster" in gone["message"]


def test_a_pipeline_resource_the_registry_did_not_make_is_never_overwritten(cluster,
                                                                           kube_registry):
    ops = kube_registry["ops"]
    ops.push(ops_hello())
    theirs = {"apiVersion": "algorail.io/v1", "kind": "Pipeline",
              "metadata": {"name": "hello", "namespace": "algorail"}, "spec": {"owner": "x"}}
    with httpx.Client(base_url=cluster.url, timeout=10) as kube:
        assert kube.post("/apis/algorail.io/v1/namespaces/algorail/pipelines",
                         json=theirs).status_code < 300
        ops.deploy("ops/hello:1.0.0", "hello", "kubernetes")
        made = ops.wait("ops", "hello")
        assert made["state"] == "failed"
        assert "belongs to no registry deployment" in made["message"]
        assert kube.get(pipeline_path("algorail", "hello")).json()["spec"] == {"owner": "x"}


def test_a_cluster_without_the_operator_or_credentials_fails_saying_what_to_do(
        tmp_path, monkeypatch):
    pytest.importorskip("kmock", reason="kmock is in the test extra")
    pytest.importorskip("kopf", reason="kopf is in the operator extra")
    api = KubeApiThread({"v1/configmaps": "ConfigMap"}).start()  # no Pipeline CRD
    try:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig",
                                                              api.url, "algorail")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        registry = open_registry(f"sqlite:///{tmp_path / 'r.db'}",
                                 state_dir=tmp_path / "state")
        registry.push(ALICE, HELLO)
        registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "kubernetes")
        made = settle(registry, "hello")
        assert made["state"] == "failed"
        assert "install the CRD and the operator" in made["message"]
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
        monkeypatch.setenv("HOME", str(tmp_path))
        registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "kubernetes")
        made = settle(registry, "hello")
        assert made["state"] == "failed" and "KUBECONFIG" in made["message"]
        registry.close()
    finally:
        api.stop()


def marker_pipeline(folder: Path) -> tuple[dict, Path]:
    """hello, whose algo is the command `id`, run by an exec algo: each call leaves a
    marker file on the host it runs on."""
    marker = folder / "ran-on-the-host"
    document = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    algo = document["spec"]["algos"][0]
    del algo["entrypoint"]
    algo.update(runtime="exec", command=["sh", "-c", f"id > {marker} && cat"])
    return document, marker


@needs_dev
@pytest.mark.slow
def test_local_deployments_need_the_flag_an_admin_key_and_a_workdir_inside(tmp_path):
    allowed, outside = tmp_path / "deployments", tmp_path / "elsewhere"
    (allowed / "team").mkdir(parents=True)
    outside.mkdir()
    (allowed / "escape").symlink_to(outside)
    document, marker = marker_pipeline(tmp_path)
    database, state = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "state"
    on = DeploymentPolicy(allow_local=True, deployments_dir=allowed)
    with open_registry(database, state_dir=state).sessions() as session:
        user_key = create_key(session, "alice")
    before = children()

    def over_http(policy) -> tuple[int, str]:
        registry = open_registry(database, state_dir=state, policy=policy)
        server = BackgroundServer(registry).start()
        try:
            with RegistryClient(server.url, user_key) as client:
                if not client.pipelines():
                    client.push(document)
                with pytest.raises(RegistryRequestError) as info:
                    client.deploy("alice/hello:1.0.0", "hello", "local", {"workdir": "/"})
            return info.value.status, str(info.value)
        finally:
            server.stop()
            registry.close()

    status, message = over_http(DeploymentPolicy())
    assert status == 403 and "--allow-local-deployments" in message
    status, message = over_http(on)
    assert status == 403 and "admin API key" in message

    def as_admin(policy, settings):
        registry = open_registry(database, state_dir=state, policy=policy)
        try:
            registry.deploy(admin, "alice/hello:1.0.0", "hello", "local", settings)
        finally:
            registry.close()

    admin = Principal("alice", admin=True)
    for workdir in ("/", str(outside), "../elsewhere", "team/../../elsewhere", "escape"):
        with pytest.raises(Invalid, match="inside the deployments folder"):
            as_admin(on, {"workdir": workdir})
    with pytest.raises(Invalid, match="no deployments folder"):
        as_admin(DeploymentPolicy(allow_local=True), {"workdir": str(outside)})
    time.sleep(1)
    assert not marker.exists() and children() == before  # nothing ran
    assert open_registry(database, state_dir=state).list_deployments(admin) == []

    # the same pipeline, from a workdir inside the folder, by an admin, runs (so the marker
    # above would have shown any execution), and DELETE leaves no process behind
    registry = open_registry(database, state_dir=state, policy=on)
    try:
        registry.deploy(admin, "alice/hello:1.0.0", "hello", "local",
                        {"workdir": "team", "startTimeout": 90})
        made = settle(registry, "hello")
        assert made["state"] == "running", made["message"]
        answer = httpx.post(f"{made['runtime']['url']}/alice/hello/in?sync=true",
                            json={"text": "hi"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert marker.read_text().startswith("uid=")
        assert children() > before
        assert registry.terminate(admin, "alice", "hello")["state"] == "terminated"
        assert wait_until(lambda: children() == before, timeout=10), children() - before
    finally:
        registry.close()


def test_start_timeout_is_a_bounded_number_and_a_refused_deploy_starts_nothing(registry):
    registry.push(ALICE, HELLO)
    before = children()
    for timeout in ("x", 301, 0, -5, True, [], {"s": 1}):
        with pytest.raises(Invalid, match="startTimeout") as info:
            registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local",
                            {"workdir": ".", "startTimeout": timeout})
        assert "300" in str(info.value)
    with pytest.raises(Invalid, match=r"settings\.port"):
        registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local", {"port": "80; id"})
    with pytest.raises(Invalid, match="not a setting of the local target"):
        registry.deploy(ALICE, "alice/hello:1.0.0", "hello", "local", {"chart": "x"})
    assert children() == before
    assert registry.list_deployments(ALICE) == []


@needs_dev
def test_a_deploy_answers_at_once_and_never_holds_up_another_owners_requests(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'r.db'}", state_dir=tmp_path / "state",
                             policy=LOCAL)
    with registry.sessions() as session:
        alice_key, bob_key = create_key(session, "alice", admin=True), create_key(session, "bob")
    server = BackgroundServer(registry).start()
    before = children()
    try:
        with RegistryClient(server.url, alice_key) as alice, \
                RegistryClient(server.url, bob_key) as bob:
            alice.push(HELLO)
            began = time.monotonic()
            made = alice.deploy("alice/hello:1.0.0", "stuck", "local", {
                "workdir": ".", "startTimeout": 60,
                "bootstrapServers": f"127.0.0.1:{free_port()}"})  # nothing listens there
            answered = time.monotonic() - began
            assert made["state"] == "starting" and answered < 1.0, answered
            slowest = 0.0
            for _ in range(5):
                began = time.monotonic()
                assert bob.whoami()["owner"] == "bob"
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.2)
            assert slowest < 1.0, slowest
            assert alice.deployment("alice", "stuck")["state"] == "starting"
            assert wait_until(lambda: children() > before, timeout=10)
            # a deployment still starting can be terminated, and leaves nothing behind
            assert alice.terminate("alice", "stuck")["state"] in ("stopping", "terminated")
            assert alice.wait("alice", "stuck", timeout=30)["state"] == "terminated"
            assert wait_until(lambda: children() == before, timeout=10), children() - before
    finally:
        server.stop()
        registry.close()


@needs_dev
@pytest.mark.slow
def test_a_deployment_whose_dev_exits_at_start_fails_with_its_output(registry):
    registry.push(ALICE, HELLO)
    before = children()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        registry.deploy(ALICE, "alice/hello:1.0.0", "taken", "local",
                        {"workdir": ".", "port": taken.getsockname()[1], "startTimeout": 90})
        made = settle(registry, "taken")
    assert made["state"] == "failed"
    assert "exited with status" in made["message"]
    assert "is already in use" in made["message"]  # from the last lines of its output
    assert wait_until(lambda: children() == before, timeout=10), children() - before


def test_a_reused_pid_is_never_taken_for_a_deployment(tmp_path):
    """A deployment recorded long ago whose PID (and so process group number) now belongs
    to another process group: stopping it kills nothing, checking it reports it exited."""
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        runtime = {"pid": other.pid, "pgid": other.pid, "log": str(tmp_path / "dev.log"),
                   "createTime": psutil.Process(other.pid).create_time() - 100}
        target = LocalTarget(tmp_path)
        assert "has exited" in target.check(runtime)
        target.stop(runtime)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
