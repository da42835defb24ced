"""The registry API over real HTTP, against SQLite, PostgreSQL and MariaDB.

One registry (with its own fresh database) and one server per backend, shared by the
tests of this module; each test uses its own pipeline/algo names.
"""

from __future__ import annotations

import copy
import threading
import uuid

import httpx
import pytest
import yaml
from conftest import EXAMPLES
from kube_api import KubeApiThread, write_kubeconfig

from algorail.errors import AlgorailError
from algorail.registry.api import MAX_BODY_BYTES, BackgroundServer, open_registry
from algorail.registry.auth import create_key
from algorail.registry.client import RegistryClient, RegistryRequestError
from algorail.registry.policy import DeploymentPolicy

HELLO = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Kubernetes API serving Pipelines (kmock), the registry's kubeconfig on it."""
    pytest.importorskip("kmock", reason="kmock is in the test extra")
    pytest.importorskip("kopf", reason="kopf is in the operator extra")
    api = KubeApiThread(discovery_delay=1.0).start()
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", api.url,
                                  "algorail")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield api
    api.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def server(request, scratch_database, tmp_path_factory, cluster):
    policy = DeploymentPolicy(namespaces=("algorail", "team-a", "team-b"))
    registry = open_registry(scratch_database(request.param),
                             state_dir=tmp_path_factory.mktemp("state"), policy=policy)
    with registry.sessions() as session:
        keys = {
            "alice": create_key(session, "alice"),
            "bob": create_key(session, "bob"),
            "admin": create_key(session, "ops", admin=True),
        }
    live = BackgroundServer(registry).start()
    live.keys = keys
    live.registry = registry
    live.cluster = cluster
    yield live
    live.stop()
    registry.sessions.kw["bind"].dispose()


@pytest.fixture
def clients(server):
    made = {who: RegistryClient(server.url, key) for who, key in server.keys.items()}
    yield made
    for client in made.values():
        client.close()


def hello(name: str, version: str = "1.0.0", owner: str = "alice") -> dict:
    doc = copy.deepcopy(HELLO)
    doc["metadata"].update(name=name, version=version, owner=owner)
    return doc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_of(call) -> int:
    with pytest.raises(RegistryRequestError) as info:
        call()
    return info.value.status


def test_push_list_versions_show_in_semver_order(clients):
    alice, name = clients["alice"], unique("hello")
    for version in ("1.10.0", "1.2.0", "1.2.0-rc.1"):
        stored = alice.push(hello(name, version))
        assert stored["ref"] == f"alice/{name}:{version}"
    versions = [v["version"] for v in alice.pipeline_versions("alice", name)]
    assert versions == ["1.2.0-rc.1", "1.2.0", "1.10.0"]
    listed = {p["name"]: p for p in alice.pipelines()}
    assert listed[name]["latest"] == "1.10.0" and listed[name]["versions"] == 3
    shown = alice.pipeline_version("alice", name, "1.2.0")
    assert shown["document"]["spec"]["algos"][0]["name"] == "upper"
    assert shown["document"]["metadata"]["version"] == "1.2.0"


def test_invalid_spec_is_rejected_with_every_problem(clients):
    alice, name = clients["alice"], unique("broken")
    doc = hello(name)
    doc["spec"]["pipes"].append({"from": "nowhere.out", "to": "result"})
    doc["spec"]["algos"][0]["timeoutMs"] = -1
    with pytest.raises(RegistryRequestError) as info:
        alice.push(doc)
    assert info.value.status == 422
    assert len(info.value.problems) >= 1
    assert status_of(lambda: alice.pipeline_versions("alice", name)) == 404


def test_version_must_be_semver(clients):
    assert status_of(lambda: clients["alice"].push(hello(unique("v"), "1.0"))) == 422


def test_versions_are_immutable(clients):
    alice, name = clients["alice"], unique("immutable")
    first = alice.push(hello(name))
    changed = hello(name)
    changed["metadata"]["description"] = "something else"
    assert status_of(lambda: alice.push(changed)) == 409
    again = alice.pipeline_version("alice", name, "1.0.0")
    assert again["digest"] == first["digest"]
    assert again["description"] == HELLO["metadata"]["description"]


def race(server, call, count: int = 8) -> list[int]:
    """Run `call(client)` from `count` threads at once; the HTTP status of each."""
    results: list[int] = []
    barrier = threading.Barrier(count)

    def one():
        with RegistryClient(server.url, server.keys["alice"]) as client:
            barrier.wait(timeout=10)
            try:
                call(client)
                results.append(200)
            except RegistryRequestError as exc:
                results.append(exc.status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(results)


def test_concurrent_pushes_of_one_version_exactly_one_wins(server):
    name = unique("race")
    assert race(server, lambda client: client.push(hello(name, "2.0.0"))) == [200] + [409] * 7
    with RegistryClient(server.url, server.keys["alice"]) as client:
        assert [v["version"] for v in client.pipeline_versions("alice", name)] == ["2.0.0"]


def test_owner_isolation_is_404_not_403(clients):
    alice, bob, name = clients["alice"], clients["bob"], unique("private")
    alice.push(hello(name))
    missing = unique("missing")
    for call in (
        lambda: bob.pipeline_versions("alice", name),
        lambda: bob.pipeline_version("alice", name, "1.0.0"),
        lambda: bob.clone("alice", name, "1.0.0", "9.9.9"),
    ):
        with pytest.raises(RegistryRequestError) as hidden:
            call()
        assert hidden.value.status == 404
        assert "not found" in str(hidden.value)
    # an existing pipeline of another owner looks exactly like one that does not exist
    with pytest.raises(RegistryRequestError) as absent:
        bob.pipeline_versions("alice", missing)
    assert absent.value.status == 404
    assert name not in {p["name"] for p in bob.pipelines()}
    assert status_of(lambda: bob.push(hello(unique("x"), owner="alice"))) == 403
    assert status_of(lambda: bob.deployment("alice", name)) == 404
    assert status_of(lambda: bob.deploy(f"alice/{name}:1.0.0", "stolen", "kubernetes")) == 404
    assert status_of(lambda: bob.algo_versions("alice", name)) == 404


def test_an_admin_key_reads_every_owner_and_may_stop_any_deployment(clients):
    alice, bob, admin = clients["alice"], clients["bob"], clients["admin"]
    mine, theirs = unique("alices"), unique("bobs")
    alice.push(hello(mine))
    bob.push(hello(theirs, owner="bob"))
    listed = {(p["owner"], p["name"]) for p in admin.pipelines()}
    assert {("alice", mine), ("bob", theirs)} <= listed
    assert ("bob", theirs) not in {(p["owner"], p["name"]) for p in alice.pipelines()}
    assert admin.pipeline_version("bob", theirs, "1.0.0")["document"]["metadata"]["owner"] == "bob"
    assert len(admin.pipeline_versions("alice", mine)) == 1
    assert status_of(lambda: alice.pipeline_version("bob", theirs, "1.0.0")) == 404
    assert status_of(lambda: admin.push(hello(unique("x"), owner="bob"))) == 403  # pushes as ops
    bob.deploy(f"bob/{theirs}:1.0.0", theirs, "kubernetes", {"namespace": "team-b"})
    assert bob.wait("bob", theirs)["state"] == "running"
    assert ("bob", theirs) in {(d["owner"], d["name"]) for d in admin.deployments()}
    assert theirs not in {d["name"] for d in alice.deployments()}
    assert status_of(lambda: alice.deployment("bob", theirs)) == 404
    # an update stays on the deployment owner's pipelines, even for an admin
    assert status_of(lambda: admin.update("bob", theirs, f"alice/{mine}:1.0.0")) == 404
    assert admin.terminate("bob", theirs)["state"] == "terminated"
    history = bob.deployment("bob", theirs)["events"]
    assert [e["state"] for e in history] == ["starting", "running", "stopping", "terminated"]
    assert {e["pipeline"] for e in history} == {f"bob/{theirs}:1.0.0"}


def test_a_deployment_keeps_the_history_of_its_states_and_versions(server, clients):
    alice, name = clients["alice"], unique("history")
    alice.push(hello(name))
    alice.clone("alice", name, "1.0.0", "1.1.0")
    theirs = {"apiVersion": "algorail.io/v1", "kind": "Pipeline",  # refused: not the registry's
              "metadata": {"name": name, "namespace": "team-b"}, "spec": {}}
    assert httpx.post(f"{server.cluster.url}/apis/algorail.io/v1/namespaces/team-b/pipelines",
                      json=theirs, timeout=10).status_code < 300
    alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes", {"namespace": "team-b"})
    failed = alice.wait("alice", name)
    assert failed["state"] == "failed"
    alice.update("alice", name, f"alice/{name}:1.1.0", {"namespace": "team-a"})
    assert alice.wait("alice", name)["state"] == "running"
    history = alice.deployment("alice", name)["events"]
    assert [(e["state"], e["pipeline"].rsplit(":", 1)[1]) for e in history] == [
        ("starting", "1.0.0"), ("failed", "1.0.0"), ("starting", "1.1.0"), ("running", "1.1.0")]
    assert "belongs to no registry deployment" in history[1]["message"]
    assert history[0]["message"] is None
    assert all(e["at"] for e in history)
    alice.terminate("alice", name)


def test_clone_and_blank(clients):
    alice, name = clients["alice"], unique("cloned")
    alice.push(hello(name))
    cloned = alice.clone("alice", name, "1.0.0", "1.1.0")
    assert cloned["ref"] == f"alice/{name}:1.1.0"
    original = alice.pipeline_version("alice", name, "1.0.0")["document"]
    copy_ = alice.pipeline_version("alice", name, "1.1.0")["document"]
    assert copy_["spec"] == original["spec"]
    assert status_of(lambda: alice.clone("alice", name, "1.0.0", "1.1.0")) == 409
    blank = unique("blank")
    alice.new_blank(blank, "0.1.0")
    spec = alice.pipeline_version("alice", blank, "0.1.0")["document"]["spec"]
    assert not any(spec.get(k) for k in ("endpoints", "algos", "hooks", "pipes"))


def test_keys_are_required(server):
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/v1/pipelines").status_code == 401
        wrong = http.get("/v1/pipelines", headers={"authorization": "Bearer ark_nope"})
        assert wrong.status_code == 401
        assert "registry keys create" in wrong.json()["error"]
        assert http.get("/v1/whoami", headers={"x-api-key": server.keys["bob"]}).json() == {
            "owner": "bob", "admin": False}


def test_algo_repository(clients):
    alice, name = clients["alice"], unique("algo")
    alice.publish_algo("alice", name, "1.0.0", "python", {"entrypoint": "m:f"})
    alice.publish_algo("alice", name, "1.1.0", "python", published=False)
    versions = alice.algo_versions("alice", name)
    assert [(v["version"], v["published"]) for v in versions] == [("1.0.0", True),
                                                                  ("1.1.0", False)]
    listed = {a["name"]: a for a in alice.algos()}
    assert listed[name]["latestPublished"] == "1.0.0"
    assert status_of(lambda: alice.publish_algo("alice", name, "1.0.0", "python")) == 409
    assert status_of(lambda: alice.publish_algo("bob", name, "1.0.0", "python")) == 404


def test_event_flows_need_admin_and_published_versions(server, clients):
    alice, bob, admin = clients["alice"], clients["bob"], clients["admin"]
    algo, conn = unique("flow"), unique("kafka")
    alice.publish_algo("alice", algo, "1.0.0", "python")
    alice.publish_algo("alice", algo, "2.0.0", "python", published=False)
    body = {"name": conn, "bootstrapServers": "10.0.0.5:9092"}
    assert status_of(lambda: alice.request("POST", "/v1/admin/connections", body)) == 403
    admin.request("POST", "/v1/admin/connections", body)
    assert status_of(lambda: admin.request("POST", "/v1/admin/connections", body)) == 409

    def grant(version, direction="subscribe", who=admin):
        return who.request("POST", "/v1/admin/event-flows", {
            "algo": f"alice/{algo}:{version}", "connection": conn, "topic": "orders.v1",
            "direction": direction})

    grant("1.0.0")
    grant("1.0.0", "publish")
    assert status_of(lambda: grant("2.0.0")) == 409  # not published
    assert status_of(lambda: grant("1.0.0", who=alice)) == 403
    assert status_of(lambda: grant("1.0.0", "sideways")) == 422
    flows = alice.request("GET", "/v1/owners/alice/event-flows")
    mine = [(f["direction"], f["bootstrapServers"]) for f in flows
            if f["algo"] == f"alice/{algo}:1.0.0"]
    assert sorted(mine) == [("publish", "10.0.0.5:9092"), ("subscribe", "10.0.0.5:9092")]
    assert len(admin.request("GET", "/v1/owners/alice/event-flows")) == len(flows)
    assert status_of(lambda: bob.request("GET", "/v1/owners/alice/event-flows")) == 404


def test_openapi_documents_every_route(server):
    with httpx.Client(base_url=server.url) as http:
        schema = http.get("/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/v1/pipelines"])
    assert {"get", "patch", "delete"} <= set(paths["/v1/deployments/{owner}/{name}"])
    assert "/v1/owners/{owner}/event-flows" in paths
    for methods in paths.values():
        for operation in methods.values():
            assert operation.get("summary") and operation.get("responses")


def pipeline_resource(server, namespace: str, name: str) -> dict | None:
    """The Pipeline resource `name` in the cluster, or None."""
    response = httpx.get(f"{server.cluster.url}/apis/algorail.io/v1/namespaces/{namespace}"
                         f"/pipelines/{name}", timeout=10)
    return response.json() if response.status_code == 200 else None


def test_kubernetes_deployment_creates_updates_and_deletes_a_pipeline_resource(server,
                                                                               clients):
    alice, bob, name = clients["alice"], clients["bob"], unique("hello")
    alice.push(hello(name))
    alice.clone("alice", name, "1.0.0", "1.1.0")
    assert alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes",
                        {"namespace": "team-a"})["state"] == "starting"
    made = alice.wait("alice", name)
    assert made["state"] == "running", made["message"]
    assert made["runtime"]["release"] == f"alice-{name}"
    resource = pipeline_resource(server, "team-a", name)
    assert (resource["spec"]["owner"], resource["spec"]["version"]) == ("alice", "1.0.0")
    assert [a["name"] for a in resource["spec"]["algos"]] == ["upper"]

    assert status_of(lambda: alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes")) == 409
    assert status_of(lambda: bob.terminate("alice", name)) == 404
    alice.update("alice", name, f"alice/{name}:1.1.0")
    updated = alice.wait("alice", name)
    assert updated["pipeline"] == f"alice/{name}:1.1.0" and updated["state"] == "running"
    assert pipeline_resource(server, "team-a", name)["spec"]["version"] == "1.1.0"

    assert [d["name"] for d in alice.deployments()].count(name) == 1
    assert alice.terminate("alice", name)["state"] == "terminated"
    assert pipeline_resource(server, "team-a", name) is None
    assert alice.deployment("alice", name)["state"] == "terminated"


def test_a_refused_pipeline_resource_is_recorded_with_the_reason(server, clients):
    """Another owner's deployment of the same name holds the namespace's resource."""
    alice, bob, name = clients["alice"], clients["bob"], unique("hello")
    bob.push(hello(name, owner="bob"))
    bob.deploy(f"bob/{name}:1.0.0", name, "kubernetes", {"namespace": "team-b"})
    assert bob.wait("bob", name)["state"] == "running"
    alice.push(hello(name))
    alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes", {"namespace": "team-b"})
    made = alice.wait("alice", name)
    assert made["state"] == "failed"
    assert f"belongs to deployment bob/{name}" in made["message"]
    assert pipeline_resource(server, "team-b", name)["spec"]["owner"] == "bob"
    alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes", {"namespace": "team-a"})
    assert alice.wait("alice", name)["state"] == "running"
    alice.terminate("alice", name)
    bob.terminate("bob", name)


@pytest.mark.slow
def test_concurrent_changes_to_one_deployment_exactly_one_goes_ahead(server, clients):
    alice, name = clients["alice"], unique("slow")
    alice.push(hello(name))
    ref = f"alice/{name}:1.0.0"
    assert race(server, lambda c: c.deploy(ref, name, "kubernetes"), 6) == [200] + [409] * 5
    assert alice.wait("alice", name)["state"] == "running"
    assert race(server, lambda c: c.update("alice", name, ref), 6) == [200] + [409] * 5
    assert alice.wait("alice", name)["state"] == "running"
    assert race(server, lambda c: c.terminate("alice", name), 6).count(200) >= 1
    assert alice.wait("alice", name)["state"] == "terminated"
    assert race(server, lambda c: c.deploy(ref, name, "kubernetes"), 6) == [200] + [409] * 5
    assert alice.wait("alice", name)["state"] == "running"
    assert pipeline_resource(server, "algorail", name)["spec"]["owner"] == "alice"
    alice.terminate("alice", name)


def test_kubernetes_target_keeps_non_admin_keys_to_the_namespaces_and_settings(server,
                                                                              clients):
    alice, admin, name = clients["alice"], clients["admin"], unique("policy")
    alice.push(hello(name))
    ref = f"alice/{name}:1.0.0"
    refused = {
        "namespace 'kube-system' is not allowed": {"namespace": "kube-system"},
        "settings.deployment.image needs an admin API key": {
            "deployment": {"image": {"repository": "evil/shell"}}},
        "settings.deployment.kafka needs an admin API key": {
            "deployment": {"kafka": {"bootstrapServers": "evil:9092"}}},
        "settings.workdir needs an admin API key": {"workdir": "/"},  # host files, packed
    }
    for expected, settings in refused.items():
        with pytest.raises(RegistryRequestError) as info:
            alice.deploy(ref, name, "kubernetes", settings)
        assert info.value.status == 403 and expected in str(info.value), settings
    for expected, settings in {
            "settings.values is not a setting": {"values": {"runner": {}}},
            "code is packed from workdir": {"deployment": {"code": {"a.py": ""}}},
            "settings.deployment.resources": {"deployment": {"resources": "lots"}}}.items():
        with pytest.raises(RegistryRequestError) as info:
            alice.deploy(ref, name, "kubernetes", settings)
        assert info.value.status == 422 and expected in str(info.value), settings
    assert status_of(lambda: alice.deployment("alice", name)) == 404
    assert pipeline_resource(server, "team-b", name) is None  # nothing was created
    # the allowed settings are passed on, in an allowed namespace
    alice.deploy(ref, name, "kubernetes", {"namespace": "team-b", "deployment": {
        "resources": {"limits": {"cpu": "2"}}, "autoscaling": {"enabled": True}}})
    assert alice.wait("alice", name)["state"] == "running"
    deployment = pipeline_resource(server, "team-b", name)["spec"]["deployment"]
    assert deployment == {"resources": {"limits": {"cpu": "2"}}, "autoscaling": {"enabled": True}}
    assert alice.terminate("alice", name)["state"] == "terminated"
    # an admin may set the image (for its own owner's pipelines) and any namespace
    admin.push(hello(name, owner="ops"))
    admin.deploy(f"ops/{name}:1.0.0", name, "kubernetes",
                 {"namespace": "kube-tools", "deployment": {"image": {"tag": "1.2.3"}}})
    assert admin.wait("ops", name)["state"] == "running"
    assert pipeline_resource(server, "kube-tools", name)["spec"]["deployment"]["image"] == {
        "tag": "1.2.3"}
    admin.terminate("ops", name)


def test_over_long_strings_answer_422_naming_the_field_and_its_limit(server, clients):
    alice, admin, name = clients["alice"], clients["admin"], unique("long")
    too_long = [
        ("runtime", "100", lambda: alice.publish_algo("alice", name, "1.0.0", "r" * 200)),
        ("version", "64", lambda: alice.push(hello(name, "1.0." + "1" * 5000))),
        ("version", "64", lambda: alice.publish_algo("alice", name, "1." + "2" * 80 + ".0",
                                                     "python")),
        ("bootstrapServers", "500", lambda: admin.request(
            "POST", "/v1/admin/connections", {"name": name, "bootstrapServers": "h" * 1000})),
    ]
    for field, limit, call in too_long:
        with pytest.raises(RegistryRequestError) as info:
            call()
        assert info.value.status == 422, str(info.value)
        assert field in str(info.value) and limit in str(info.value), str(info.value)
    alice.push(hello(name))
    assert status_of(lambda: alice.clone("alice", name, "1.0.0", "9.9." + "9" * 70)) == 422
    with server.registry.sessions() as session, pytest.raises(AlgorailError) as info:
        create_key(session, "alice", label="l" * 300)
    assert "label" in str(info.value) and "200" in str(info.value)
    # a long text that fits (MariaDB's TEXT would stop at 64 KiB) is stored on every backend
    described = hello(unique("described"))
    described["metadata"]["description"] = "d" * 100_000
    stored = alice.push(described)
    assert len(alice.pipeline_version("alice", stored["name"], "1.0.0")["description"]) == 100_000


def test_bodies_over_the_limit_answer_413_before_they_are_parsed(server):
    headers = {"authorization": f"Bearer {server.keys['alice']}",
               "content-type": "application/json"}
    oversized = b'{"document": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for start in range(0, len(oversized), 65536):
            yield oversized[start:start + 65536]

    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for body in (oversized, chunks()):
            answer = http.post("/v1/pipelines", content=body)
            assert answer.status_code == 413, answer.text
            assert str(MAX_BODY_BYTES) in answer.json()["error"]
        assert http.post("/v1/pipelines", content=b"[]").status_code == 422  # still parsed


def test_openapi_lists_every_status_including_401(server):
    with httpx.Client(base_url=server.url) as http:
        paths = http.get("/v1/openapi.json").json()["paths"]
        assert http.get("/v1/whoami").status_code == 401
    for methods in paths.values():
        for method, operation in methods.items():
            assert "401" in operation["responses"], (method, operation["summary"])
            if "requestBody" in operation:
                assert {"413", "422"} <= set(operation["responses"]), operation["summary"]
    assert {"403", "404", "409"} <= set(paths["/v1/deployments"]["post"]["responses"])
    assert "502" in paths["/v1/deployments/{owner}/{name}"]["delete"]["responses"]


def test_a_release_name_another_owner_holds_is_refused(server, clients):
    alice, suffix = clients["alice"], uuid.uuid4().hex[:8]
    with server.registry.sessions() as session:
        key = create_key(session, "alice-x")  # alice-x + SUFFIX = alice + x-SUFFIX
    alice.push(hello(f"x-{suffix}"))
    alice.deploy(f"alice/x-{suffix}:1.0.0", f"x-{suffix}", "kubernetes")
    assert alice.wait("alice", f"x-{suffix}")["state"] == "running"
    with RegistryClient(server.url, key) as other:
        other.push(hello(suffix, owner="alice-x"))
        other.deploy(f"alice-x/{suffix}:1.0.0", suffix, "kubernetes")
        made = other.wait("alice-x", suffix)
    assert made["state"] == "failed"
    assert f"'alice-x-{suffix}' in namespace 'algorail' belongs to another deployment" in (
        made["message"])
    # nothing was created for it: the operator's objects would be named like alice's
    assert pipeline_resource(server, "algorail", suffix) is None
    alice.terminate("alice", f"x-{suffix}")


def test_validate_answers_the_push_rules_for_a_document_yaml_or_a_seldon_manifest(server):
    headers = {"authorization": f"Bearer {server.keys['alice']}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        good = http.post("/v1/validate", json={"document": hello("checked")}).json()
        assert good == {"valid": True, "document": hello("checked"), "problems": []}
        text = yaml.safe_dump(hello("checked")).replace("application/json", "text/csv")
        bad = http.post("/v1/validate", json={"yaml": text}).json()
        assert not bad["valid"] and bad["document"]["metadata"]["name"] == "checked"
        csv = next(p for p in bad["problems"] if p["rule"] == "content-type")
        assert csv["component"] == "algo 'upper'" and csv["line"] is not None
        seldon = http.post("/v1/validate", json={"yaml": (
            "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: s\n"
            "  annotations: {algorail.io/model-url: 'http://m/{name}'}\n"
            "spec:\n  steps: [{name: one}]\n  output: {steps: [one]}\n")}).json()
        assert seldon["document"]["apiVersion"] == "algorail.io/v1"
        assert [a["name"] for a in seldon["document"]["spec"]["algos"]] == ["one"]
        assert http.post("/v1/validate", json={}).status_code == 422
        assert http.post("/v1/validate", json={"yaml": "a: ["}).json()["problems"][0][
            "rule"] == "syntax"
        plugins = http.get("/v1/plugins").json()
    jdbc = next(c for c in plugins["connectors"] if c["name"] == "jdbc")
    assert jdbc["kinds"] == ["sink"] and "table" in jdbc["configSchema"]["properties"]
    assert "response" in [t["name"] for t in plugins["hookTypes"]]


def test_runs_requests_and_metrics_of_a_deployment_without_broker_or_gateway_say_why(
        server, clients):
    alice, name = clients["alice"], unique("hello")
    alice.push(hello(name))
    alice.deploy(f"alice/{name}:1.0.0", name, "kubernetes", {"namespace": "team-a"})
    assert alice.wait("alice", name)["state"] == "running"
    headers = {"authorization": f"Bearer {server.keys['alice']}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        base = f"/v1/deployments/alice/{name}"
        runs = http.get(f"{base}/runs")
        assert runs.status_code == 409 and "Kubernetes deployment" in runs.json()["error"]
        assert http.get(f"{base}/runs/some-run").status_code == 409
        sent = http.post(f"{base}/requests", json={"path": "in", "body": "{}"})
        assert sent.status_code == 409
        metrics = http.get(f"{base}/metrics")
        assert metrics.status_code == 409 and "gateway URL" in metrics.json()["error"]
        assert http.get(f"/v1/deployments/bob/{name}/runs").status_code == 404
    alice.terminate("alice", name)
