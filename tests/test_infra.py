"""The Pulumi program (infra/) run under Pulumi's mocks: no CLI, no cluster.

Each `deploy(config)` runs the real program once with a stack config, records every
resource the engine was asked to create (type, name, inputs) and the dependencies it was
registered with, and resolves the stack outputs with their secretness. Tests then assert
what a user would see after `pulumi up`: which services exist with which chart, version
and values, how they are wired, what is secret, and in which order they are created.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from crd_schemas import MISSING, SCHEMAS, crd_validator
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key
from pulumi.runtime.sync_await import _sync_await

from algorail import render
from algorail.compiler import compile_plan
from algorail.errors import AlgorailError, PipelineError
from algorail.loader import load_pipeline
from algorail.spec import load_bindings

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
sys.path.insert(0, str(INFRA))

from algorail_infra import versions  # noqa: E402
from algorail_infra.config import InfraConfigError, load_settings  # noqa: E402
from algorail_infra.stack import build  # noqa: E402

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
STRIMZI_V1 = "kubernetes:kafka.strimzi.io/v1"
STRIMZI_V1BETA2 = "kubernetes:kafka.strimzi.io/v1beta2"
STRIMZI_CRDS = {"Kafka": "040-Crd-kafka.yaml", "KafkaConnect": "041-Crd-kafkaconnect.yaml",
                "KafkaNodePool": "045-Crd-kafkanodepool.yaml"}
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
HOST = "kubernetes:getambassador.io/v3alpha1:Host"
MAPPING = "kubernetes:getambassador.io/v3alpha1:Mapping"
CRDS = "kubernetes:yaml/v2:ConfigFile"
PIPELINE = "kubernetes:algorail.io/v1:Pipeline"
SERVICES = "algorail"  # the release of charts/algorail: operator, gateway, hook dispatcher
LB_IP = "203.0.113.10"
SECRET_MARK = "GENERATED-SECRET-"  # every generated password starts with this

PIPELINES = [
    {"file": "../examples/hello.yaml"},
    {"file": "../examples/reviews.yaml", "deployment": "reviews-prod"},
    {"file": "../examples/seldon/tfsimple.yaml", "bindings": "../examples/seldon/bindings.yaml"},
]


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers like a cluster would: random passwords, release status, an LB address."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == PASSWORD:
            state["result"] = f"{SECRET_MARK}{args.name}"
        elif args.typ == RELEASE:
            state["status"] = {"name": args.inputs["name"],
                               "namespace": args.inputs["namespace"], "status": "deployed"}
        elif args.typ == "kubernetes:core/v1:Service" and args.resource_id:
            state["status"] = {"loadBalancer": {"ingress": [{"ip": LB_IP}]}}
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(MockMonitor):
    """Keeps what MockResourceArgs leaves out: each resource's dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.inputs: dict[tuple[str, str], dict] = {}
        self.dependencies: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def RegisterResource(self, request):
        key = (request.type, request.name)
        self.dependencies[key] = {_key(urn) for urn in request.dependencies}
        return super().RegisterResource(request)

    def ReadResource(self, request):
        self.dependencies[(request.type, request.name)] = {
            _key(urn) for urn in request.dependencies
        }
        return super().ReadResource(request)


def _key(urn: str) -> tuple[str, str]:
    qualified, name = urn.split("::")[2], urn.split("::")[3]
    return qualified.split("$")[-1], name


@dataclass
class Deployed:
    resources: dict[tuple[str, str], dict[str, Any]]
    dependencies: dict[tuple[str, str], set[tuple[str, str]]]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        return {name: inputs for (t, name), inputs in self.resources.items() if t == typ}

    def release(self, name: str) -> dict[str, Any]:
        releases = self.of_type(RELEASE)
        assert name in releases, f"no Helm release {name!r}; releases: {sorted(releases)}"
        return releases[name]

    def depends(self, resource: tuple[str, str], on: tuple[str, str]) -> bool:
        return on in self.dependencies.get(resource, set())

    def pipeline(self, name: str) -> dict[str, Any]:
        """The Pipeline resource Pulumi named `name` (the plan's release name)."""
        pipelines = self.of_type(PIPELINE)
        assert name in pipelines, f"no Pipeline {name!r}; pipelines: {sorted(pipelines)}"
        return pipelines[name]

    @property
    def services(self) -> dict[str, Any]:
        """The values of the one `algorail` release."""
        return self.release(SERVICES)["values"]

    @property
    def pipeline_values(self) -> dict[str, Any]:
        """What the operator puts under every Pipeline's chart values."""
        return self.services["operator"]["pipelineValues"]


def deploy(config: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
           stack: str = "test", preview: bool = False) -> Deployed:
    """Run the program once under mocks with this stack config (keys without `algorail:`)."""
    # Pulumi's mocks run on the thread's current event loop; an async test before this one
    # (pytest-asyncio) leaves none set, so give the program one of its own
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="algorail", stack=stack, preview=preview,
                             monitor=monitor)
    settings_config = {**(config or {}), **(secrets or {})}
    pulumi.runtime.set_all_config(
        {f"algorail:{k}": v if isinstance(v, str) else json.dumps(v)
         for k, v in settings_config.items()},
        secret_keys=[f"algorail:{k}" for k in secrets or {}],
    )
    built = {}

    @pulumi.runtime.test
    def program():
        built["stack"] = build(load_settings(pulumi.Config("algorail"), base_dir=INFRA))
        return pulumi.Output.all(*[pulumi.Output.from_input(v)
                                   for v in built["stack"].outputs.values()])

    program()
    deployed = Deployed(
        resources={k: r.state for k, r in _by_key(monitor).items()},
        dependencies=monitor.dependencies,
    )
    for key, value in built["stack"].outputs.items():
        output = pulumi.Output.from_input(value)
        deployed.outputs[key] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            deployed.secret_outputs.add(key)
    return deployed


def secret_value(value: Any) -> Any:
    """The value inside a secret as the engine received it; fails if it is not secret."""
    assert isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig, (
        f"not a secret: {value!r}")
    return value["value"]


def validate_cr(resource: dict[str, Any], crd_file: str) -> None:
    """Validate a custom resource as the engine received it against the upstream CRD of its
    API version in ../shared/schemas, unknown fields being errors (kubectl --validate=strict)."""
    if SCHEMAS is None:
        pytest.skip(MISSING)
    validator = crd_validator(SCHEMAS / crd_file, resource["apiVersion"], resource["kind"])
    body = {k: v for k, v in resource.items() if k not in ("metadata", "status")}
    validator.validate(body)


def _by_key(monitor: MockMonitor) -> dict[tuple[str, str], Any]:
    return {_key(urn): registration for urn, registration in monitor.resources.items()}


@pytest.fixture(scope="module")
def full() -> Deployed:
    """Every service enabled (the defaults) and three pipelines."""
    return deploy({"pipelines": PIPELINES})


# -- every service, with its pinned chart or image and its values ---------------------------


@pytest.mark.parametrize("release,service", [
    ("emissary-ingress", "ambassador"), ("monitoring", "prometheus"), ("cnpg", "cloudnative-pg"),
])
def test_each_upstream_chart_is_installed_at_its_pinned_version(full, release, service):
    inputs = full.release(release)
    pinned = versions.CHARTS[service]
    assert (inputs["chart"], inputs["version"]) == (pinned.chart, pinned.version)
    assert inputs.get("repositoryOpts", {}).get("repo") == pinned.repo
    assert inputs["name"] == release  # predictable Service names for the wiring


def test_ambassador_installs_its_crd_chart_then_a_load_balanced_ingress(full):
    crds = full.release("emissary-crds")
    emissary = versions.CHARTS["ambassador"]
    assert (crds["chart"], crds["version"]) == (versions.EMISSARY_CRDS_CHART, emissary.version)
    assert crds["values"]["enableLegacyVersions"] is False
    assert full.depends((RELEASE, "emissary-ingress"), (RELEASE, "emissary-crds"))
    values = full.release("emissary-ingress")["values"]
    assert values["service"]["type"] == "LoadBalancer"
    assert values["createDefaultListeners"] is True
    assert full.release("emissary-ingress")["createNamespace"] is True


def test_emissary_runs_without_the_cloud_agent_and_serves_every_namespaces_mappings(full):
    """Emissary's 8.x chart (Emissary 3) installed the Ambassador Cloud agent by default;
    the 4.x chart has none, and no value turns one on. Nothing may hide the charts'
    Mappings (/v2/..., /{owner}/..., /algorail/...) from Emissary: no ambassador_id, no
    single-namespace scope, a Host that routes cleartext (with no Host at all Emissary
    redirects every HTTP request to HTTPS)."""
    release = full.release("emissary-ingress")
    assert int(release["version"].split(".")[0]) >= 4
    values = release["values"]
    assert "agent" not in values
    assert not [n for (t, n) in full.resources if t == RELEASE and "agent" in n]
    assert "AMBASSADOR_ID" not in values.get("env", {})
    assert not values.get("scope", {}).get("singleNamespace")
    (host,) = full.of_type(HOST).values()
    assert host["spec"] == {"hostname": "*", "requestPolicy": {"insecure": {"action": "Route"}}}
    assert "ambassador_id" not in host["spec"]
    validate_cr(host, "emissary/3.9.1-crds.yaml")  # v3alpha1 Host, unchanged in 4.x
    for mapping in full.of_type(MAPPING).values():
        assert mapping["spec"]["prefix"] not in ("/", "/v2/")  # the program claims no gateway path
        validate_cr(mapping, "emissary/4.1.0-mappings.yaml")
    custom = deploy({"ingressHost": "algorail.example.com"})
    assert [h["spec"]["hostname"] for h in custom.of_type(HOST).values()] == [
        "algorail.example.com"]


def test_strimzi_1x_is_the_default_and_the_program_applies_its_crds(full):
    """Helm never upgrades a chart's crds/: the program applies Strimzi's CRDs itself and
    installs the chart without them, so changing the pinned version upgrades them."""
    strimzi = versions.STRIMZI["kafka.strimzi.io/v1"]
    assert versions.STRIMZI_DEFAULT_API == "kafka.strimzi.io/v1"
    assert full.of_type(CRDS)["strimzi-crds"]["file"] == strimzi.crds_url
    assert f"/{strimzi.version}/strimzi-crds-{strimzi.version}.yaml" in strimzi.crds_url
    release = full.release("strimzi")
    assert (release["chart"], release["version"]) == (strimzi.chart.chart, strimzi.version)
    assert release["skipCrds"] is True
    assert full.depends((RELEASE, "strimzi"), (CRDS, "strimzi-crds"))
    for kind in ("Kafka", "KafkaNodePool", "KafkaConnect"):
        assert full.of_type(f"{STRIMZI_V1}:{kind}"), f"no {kind} in kafka.strimzi.io/v1"
    assert not [t for t, _ in full.resources if t.startswith(STRIMZI_V1BETA2)]
    values = full.pipeline_values
    assert values["topics"]["apiVersion"] == values["connect"]["apiVersion"] == (
        "kafka.strimzi.io/v1")


def test_strimzi_crs_are_valid_against_the_crds_of_their_strimzi_version(full):
    for kind, file in STRIMZI_CRDS.items():
        for cr in full.of_type(f"{STRIMZI_V1}:{kind}").values():
            validate_cr(cr, f"strimzi-1.2.0/{file}")
    connect = full.of_type(f"{STRIMZI_V1}:KafkaConnect")["algorail-connect-cluster"]["spec"]
    assert connect["groupId"] == "algorail-connect-cluster"
    assert {"offsetStorageTopic", "configStorageTopic", "statusStorageTopic"} <= set(connect)
    assert "group.id" not in connect["config"]  # v1 refuses it in config


def test_the_older_strimzi_api_is_selectable():
    d = deploy({"strimzi": {"apiVersion": "kafka.strimzi.io/v1beta2"},
                "pipelines": PIPELINES[:1]})
    older = versions.STRIMZI["kafka.strimzi.io/v1beta2"]
    assert d.release("strimzi")["version"] == older.version
    assert d.of_type(CRDS)["strimzi-crds"]["file"] == older.crds_url
    assert not [t for t, _ in d.resources if t.startswith(f"{STRIMZI_V1}:")]
    for kind, file in STRIMZI_CRDS.items():
        (cr,) = d.of_type(f"{STRIMZI_V1BETA2}:{kind}").values()
        assert cr["spec"].get("version", older.kafka_version) == older.kafka_version
        validate_cr(cr, f"strimzi-0.48.0/{file}")
    connect = d.of_type(f"{STRIMZI_V1BETA2}:KafkaConnect")["algorail-connect-cluster"]["spec"]
    assert connect["config"]["group.id"] == "algorail-connect-cluster"
    assert d.pipeline_values["topics"]["apiVersion"] == "kafka.strimzi.io/v1beta2"


def test_kafka_is_kraft_with_a_dual_role_node_pool(full):
    pool = full.of_type(f"{STRIMZI_V1}:KafkaNodePool")["kafka-node-pool"]
    kafka = full.of_type(f"{STRIMZI_V1}:Kafka")["kafka-cluster"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["replicas"] == 3
    assert pool["spec"]["storage"]["volumes"][0]["kraftMetadata"] == "shared"
    strimzi = versions.STRIMZI["kafka.strimzi.io/v1"]
    assert kafka["spec"]["kafka"]["version"] == strimzi.kafka_version
    assert "zookeeper" not in kafka["spec"]
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert full.outputs["kafkaBootstrapServers"] == "algorail-kafka-bootstrap.algorail.svc:9092"


def test_kafka_connect_builds_the_connector_plugins_and_reads_only_stack_secrets(full):
    from algorail.kafka_connect import kafka_connect_build, worker_config

    connect = full.of_type(f"{STRIMZI_V1}:KafkaConnect")["algorail-connect-cluster"]
    spec = connect["spec"]
    assert spec["build"] == kafka_connect_build("ttl.sh/algorail-connect-test:24h")
    assert spec["build"]["plugins"], "no connector plugin artifacts to build into Connect"
    assert worker_config().items() <= spec["config"].items()
    assert spec["bootstrapServers"] == full.outputs["kafkaBootstrapServers"]
    assert spec["config"]["config.providers.secrets.class"].endswith("SecretConfigProvider")
    assert connect["metadata"]["annotations"]["strimzi.io/use-connector-resources"] == "true"
    role = full.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")["algorail-connect-secrets"]
    (rule,) = role["rules"]
    assert rule["verbs"] == ["get"]
    assert set(rule["resourceNames"]) == {
        "algorail-connections", "sql-auth", "redis-auth", "object-store-credentials"
    }


def test_the_object_store_is_seaweedfs_with_one_s3_identity_from_a_secret(full):
    seaweedfs = full.of_type(STATEFULSET)["seaweedfs"]
    (container,) = seaweedfs["spec"]["template"]["spec"]["containers"]
    assert container["image"] == versions.IMAGES["seaweedfs"].ref
    assert "-s3" in container["args"]
    config = json.loads(secret_value(
        full.resources[(SECRET, "object-store-credentials")]["stringData"])["s3.json"])
    (identity,) = config["identities"]
    assert identity["credentials"] == [{"accessKey": "algorail",
                                        "secretKey": f"{SECRET_MARK}object-store-app-key"}]
    assert "Admin" in identity["actions"]  # algorail creates its bucket on first use
    assert full.outputs["s3Endpoint"] == "http://seaweedfs.algorail.svc:8333"
    assert full.outputs["s3Bucket"] == "algorail"


def test_prometheus_finds_algorail_monitors_and_dashboard(full):
    values = full.release("monitoring")["values"]
    prometheus_spec = values["prometheus"]["prometheusSpec"]
    assert prometheus_spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")
    assert values["grafana"]["admin"]["existingSecret"] == "prometheus-grafana-admin"
    dashboards = full.of_type("kubernetes:core/v1:ConfigMap")["algorail-dashboards"]
    assert dashboards["metadata"]["labels"] == {"grafana_dashboard": "1"}
    shipped = sorted(p.name for p in (ROOT / "charts/algorail/dashboards").glob("*.json"))
    assert shipped and sorted(dashboards["data"]) == shipped
    for text in dashboards["data"].values():
        json.loads(text)
    mapping = full.of_type(MAPPING)["grafana-mapping"]
    assert mapping["spec"]["prefix"] == "/grafana/"
    assert mapping["spec"]["service"] == "monitoring-grafana.algorail.svc:80"
    assert full.outputs["grafanaUrl"] == f"http://{LB_IP}/grafana/"


def test_valkey_and_postgresql_use_generated_passwords_from_kubernetes_secrets(full):
    valkey = full.of_type(STATEFULSET)["valkey"]["spec"]["template"]["spec"]["containers"][0]
    assert valkey["image"] == versions.IMAGES["valkey"].ref
    assert valkey["env"] == [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "redis-auth", "key": "redis-password"}}}]
    assert "$(PASSWORD)" in valkey["args"]
    cluster = full.of_type(CNPG_CLUSTER)["sql-cluster"]
    assert cluster["spec"]["imageName"] == versions.IMAGES["postgresql"].ref
    assert cluster["spec"]["bootstrap"]["initdb"] == {
        "database": "algorail", "owner": "algorail", "secret": {"name": "sql-auth"}}
    assert full.depends((CNPG_CLUSTER, "sql-cluster"), (RELEASE, "cnpg"))
    auth = full.resources[(SECRET, "sql-auth")]
    assert auth["type"] == "kubernetes.io/basic-auth"
    assert secret_value(auth["stringData"])["password"] == f"{SECRET_MARK}sql-user-password"
    assert full.outputs["sqlDsn"] == (
        f"postgresql://algorail:{SECRET_MARK}sql-user-password"
        "@postgresql-rw.algorail.svc:5432/algorail")


# -- images: every one pinned, from the documented source -------------------------------------


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_spec.get("initContainers", []) + pod_spec.get("containers", [])


def _program_images(deployed: Deployed) -> set[str]:
    """Every image the Pulumi program names: its own StatefulSets', the PostgreSQL
    Cluster's and Emissary's; the operators' charts are pinned by version."""
    images = {c["image"] for s in deployed.of_type(STATEFULSET).values()
              for c in _containers(s["spec"]["template"]["spec"])}
    images |= {c["spec"]["imageName"] for c in deployed.of_type(CNPG_CLUSTER).values()}
    emissary = deployed.release("emissary-ingress")["values"]["image"]
    return images | {f"{emissary['repository']}:{emissary['tag']}"}


def _chart_images() -> set[str]:
    """Every image algorail's two charts pull with their default values."""
    pytest.importorskip("helm_python")
    plan = compile_plan(load_pipeline(ROOT / "examples/hello.yaml"))
    values = render.helm_values(plan)
    images = set()
    for chart, release, chart_values in (
            (render.PIPELINE_CHART, values.release, values.pipeline),
            (render.SERVICES_CHART, values.services_release, values.services)):
        rendered = render.render_chart(chart, chart_values, release=release, engine="sdk")
        for obj in render.manifests(rendered):
            template = (obj.get("spec") or {}).get("template")
            if template:
                images |= {c["image"] for c in _containers(template["spec"])}
    return images


# A release tag names one build: a full version number, three parts (PostgreSQL and
# SeaweedFS number their releases with two).
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?$")
TWO_PART_RELEASES = {"postgresql", "seaweedfs"}
FLOATING = {"latest", "stable", "main", "master", "edge", "nightly"}


def test_every_image_pulled_by_default_is_pinned_from_its_documented_source(full):
    documented = (ROOT / "docs/deploy.md").read_text(encoding="utf-8")
    for name, image in versions.IMAGES.items():
        assert PINNED_TAG.match(image.tag) and image.tag not in FLOATING, (name, image.tag)
        assert image.tag.count(".") == (1 if name in TWO_PART_RELEASES else 2), (name, image.tag)
        assert f"`{image.ref}`" in documented, f"docs/deploy.md does not list {image.ref}"
    known = {image.ref for image in versions.IMAGES.values()}
    program = _program_images(full) | _program_images(deploy({"sql": {"engine": "mariadb"}}))
    assert program == known, "the program pulls images not in versions.IMAGES (or misses some)"
    charts = _chart_images()
    assert charts, "the charts rendered no workload"
    for ref in charts:
        repository, _, tag = ref.rpartition(":")
        assert PINNED_TAG.match(tag) and tag not in FLOATING, ref
        assert f"`{ref}`" in documented, f"docs/deploy.md does not list {ref}"
    for source in [*versions.CHARTS.values(), *(s.chart for s in versions.STRIMZI.values())]:
        assert PINNED_TAG.match(source.version), source
        assert f"`{source.version}`" in documented, f"docs/deploy.md does not list {source}"


def test_an_image_can_be_pointed_at_a_mirror():
    mirror = "registry.example.com/mirror/valkey:9.1.1"
    d = deploy({"images": {"valkey": mirror}})
    (container,) = d.of_type(STATEFULSET)["valkey"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == mirror


# -- pipelines ---------------------------------------------------------------------------------


def _plan(entry: dict[str, str]) -> dict[str, Any]:
    bindings = load_bindings(INFRA / entry["bindings"]) if "bindings" in entry else None
    pipeline = load_pipeline(INFRA / entry["file"], bindings=bindings)
    return compile_plan(pipeline, deployment=entry.get("deployment")).to_cluster_dict()


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _rendered_resource(entry: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """What `algorail render FILE --resource` writes for `entry`."""
    import yaml
    from click.testing import CliRunner

    from algorail.cli import cli

    args = ["render", str(INFRA / entry["file"]), "-o", str(tmp_path), "--resource",
            "-n", "algorail"]
    args += ["--deployment", entry["deployment"]] if "deployment" in entry else []
    args += ["--bindings", str(INFRA / entry["bindings"])] if "bindings" in entry else []
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return yaml.safe_load((tmp_path / "pipeline.yaml").read_text())


@pytest.mark.parametrize("entry", PIPELINES, ids=lambda e: Path(e["file"]).stem)
def test_each_pipeline_is_the_pipeline_resource_render_writes(full, entry, tmp_path):
    """One Pipeline resource per pipeline, the object `algorail render --resource` writes
    (modules packed in), which the operator compiles into exactly the plan compiled here."""
    from algorail.operator.reconcile import compile_resource

    plan = _plan(entry)
    name, deployment = f"{plan['owner']}-{plan['deployment']}".lower(), plan["deployment"]
    pipeline = full.pipeline(name)
    rendered = _rendered_resource(entry, tmp_path)
    assert (pipeline["apiVersion"], pipeline["kind"]) == ("algorail.io/v1", "Pipeline")
    assert pipeline["metadata"]["name"] == rendered["metadata"]["name"] == deployment
    assert pipeline["metadata"]["namespace"] == "algorail"
    # Pulumi drops null-valued keys on the way to the engine
    assert pipeline["spec"] == _without_nulls(rendered["spec"])
    resource = {**pipeline, "metadata": {**pipeline["metadata"], "uid": "uid"}}
    compiled = compile_resource(resource).to_cluster_dict()
    # a resource's name is its pipeline's name: deployed as reviews-prod, it is that
    assert compiled.pop("pipeline") == plan.pop("deployment") == compiled.pop("deployment")
    plan.pop("pipeline")
    assert compiled == plan
    assert full.outputs["pipelines"][name] == {
        "gateway": "algorail-gateway.algorail.svc",
        "routes": [r["url"] for r in plan["routes"]]}


def test_python_algos_without_an_image_carry_their_modules(full):
    code = full.pipeline("alice-hello")["spec"]["deployment"]["code"]
    assert code["hello_algos.py"] == (ROOT / "examples/hello_algos.py").read_text()
    # the Seldon steps bound to python entrypoints in examples/seldon/stubs.py
    code = full.pipeline("default-tfsimple")["spec"]["deployment"]["code"]
    assert code == {"stubs.py": (ROOT / "examples/seldon/stubs.py").read_text()}


def test_the_operator_and_its_crd_are_installed_with_least_privilege_rbac(full):
    """The CRD applied by the program (Helm never upgrades crds/), then one release of
    charts/algorail with the operator watching the stack's namespace (a Role there, no
    ClusterRole) and one gateway and hook dispatcher following every plan of it."""
    crds = full.of_type(CRDS)["algorail-crds"]
    assert Path(crds["file"]) == INFRA / "../charts/algorail/crds/pipelines.algorail.io.yaml"
    release = full.release(SERVICES)
    assert Path(release["chart"]) == INFRA / "../charts/algorail"
    assert release["skipCrds"] is True
    assert full.depends((RELEASE, SERVICES), (CRDS, "algorail-crds"))
    values = full.services
    assert values["operator"]["enabled"] is True
    assert values["operator"]["watchNamespaces"] == ["algorail"]
    assert values["plan"]["fromCluster"] is True
    objects = _render(release)
    deployment = objects["Deployment"]["algorail-operator"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][:1] == ["operator"]
    assert container["args"][container["args"].index("--namespace") + 1] == "algorail"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "algorail-operator"
    assert "ClusterRole" not in objects
    role = objects["Role"]["algorail-operator"]
    assert role["metadata"]["namespace"] == "algorail"
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"]}
    assert {("algorail.io", "pipelines"), ("algorail.io", "pipelines/status"),
            ("apps", "deployments"), ("kafka.strimzi.io", "kafkatopics")} <= granted
    assert ("", "secrets") not in granted
    binding = objects["RoleBinding"]["algorail-operator"]
    assert binding["subjects"][0]["name"] == "algorail-operator"
    assert "algorail-gateway" in objects["Service"]
    assert "algorail-hooks" in objects["Deployment"]


def _render(release: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """A release of one of algorail's charts rendered with the values it got: kind ->
    name -> object."""
    pytest.importorskip("helm_python")
    rendered = render.render_chart(Path(release["chart"]), release["values"],
                                   release=release["name"], namespace="algorail", engine="sdk")
    for text in rendered.values():
        assert SECRET_MARK not in text
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in render.manifests(rendered):
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    return by_kind


def test_pipeline_values_wire_every_pipeline_to_the_stack(full):
    values = full.pipeline_values
    assert values["kafka"] == {"bootstrapServers": "algorail-kafka-bootstrap.algorail.svc:9092",
                               "clusterName": "algorail"}
    assert values["topics"]["create"] is True
    assert values["connect"] == {"enabled": True, "clusterName": "algorail-connect",
                                 "apiVersion": "kafka.strimzi.io/v1"}
    assert values["mappings"]["enabled"] is True
    assert "gatewayService" not in values["mappings"]  # the operator's default: algorail-gateway
    env = {e["name"]: e for e in values["runner"]["extraEnv"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "algorail-connections")
    services = full.services
    assert services["results"]["existingSecret"] == "algorail-connections"
    assert services["objectStore"]["url"] == (
        "s3://algorail?endpoint=http://seaweedfs.algorail.svc:8333&region=us-east-1")
    assert services["auth"]["existingSecret"] == "algorail-api-keys"
    assert full.outputs["gatewayUrlPattern"] == f"http://{LB_IP}/{{owner}}/{{deployment}}/{{path}}"


def test_a_pipelines_settings_go_in_its_resource_and_values_are_refused():
    settings = {"resources": {"limits": {"cpu": "2"}}, "autoscaling": {"enabled": True}}
    d = deploy({"pipelines": [{"file": "../examples/hello.yaml", "settings": settings}]})
    deployment = d.pipeline("alice-hello")["spec"]["deployment"]
    assert deployment["resources"] == settings["resources"]
    assert deployment["autoscaling"] == {"enabled": True}
    assert "hello_algos.py" in deployment["code"]
    with pytest.raises(InfraConfigError, match="values is gone.*settings"):
        deploy({"pipelines": [{"file": "../examples/hello.yaml", "values": {"x": 1}}]})
    with pytest.raises(InfraConfigError,
                       match="settings.replicas: Extra inputs.*autoscaling, image"):
        deploy({"pipelines": [{"file": "../examples/hello.yaml",
                               "settings": {"replicas": 3}}]})


def test_a_pipeline_that_breaks_a_rule_stops_the_program_naming_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    text = (ROOT / "examples/hello.yaml").read_text().replace("to: upper.text", "to: upper.nope")
    broken.write_text(text)
    with pytest.raises(PipelineError, match="broken.yaml"):
        deploy({"pipelines": [str(broken)]})


# -- secrets -----------------------------------------------------------------------------------


def test_generated_secrets_live_only_in_kubernetes_secrets_and_secret_outputs(full):
    """No password reaches a Helm value, a ConfigMap, a CR or a clear stack output."""
    for (typ, name), inputs in full.resources.items():
        if typ in (SECRET, PASSWORD):
            continue
        assert SECRET_MARK not in json.dumps(inputs, default=str), f"{typ}::{name} holds a secret"
    for key, value in full.outputs.items():
        if SECRET_MARK in json.dumps(value):
            assert key in full.secret_outputs, f"stack output {key} is not secret"
    assert {"sqlDsn", "apiKey"} <= full.secret_outputs


def test_every_secret_value_is_a_pulumi_secret():
    """Inspect the Output objects themselves, before they reach the engine."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="algorail", stack="test", preview=False)
    pulumi.runtime.set_all_config({})
    found = {}

    @pulumi.runtime.test
    def program():
        stack = build(load_settings(pulumi.Config("algorail"), base_dir=INFRA))
        found["secrets"] = [stack.redis.secret, stack.sql.secret, stack.object_store.secret,
                            stack.prometheus.secret, stack.platform.secret,
                            stack.platform.api_keys]
        found["urls"] = [stack.redis.url, stack.sql.dsn, stack.platform.api_key]
        return stack.outputs["sqlDsn"]

    program()
    for secret in found["secrets"]:
        assert _sync_await(secret.string_data.is_secret())
    for url in found["urls"]:
        assert _sync_await(url.is_secret())


# -- disabling or replacing services rewires the rest -----------------------------------------


def test_external_kafka_replaces_strimzi_kafka_and_is_used_everywhere():
    bootstrap = "b-1.msk.example.com:9092"
    d = deploy({"kafka": {"enabled": False, "bootstrapServers": bootstrap},
                "pipelines": PIPELINES[:1]})
    assert not d.of_type(f"{STRIMZI_V1}:Kafka")
    assert not d.of_type(f"{STRIMZI_V1}:KafkaNodePool")
    assert d.outputs["kafkaBootstrapServers"] == bootstrap
    values = d.pipeline_values
    assert values["kafka"]["bootstrapServers"] == bootstrap
    assert values["topics"]["create"] is False  # no Strimzi topic operator for that cluster
    assert d.services["kafka"]["bootstrapServers"] == bootstrap
    connect = d.of_type(f"{STRIMZI_V1}:KafkaConnect")["algorail-connect-cluster"]
    assert connect["spec"]["bootstrapServers"] == bootstrap
    assert "strimzi" in d.of_type(RELEASE)  # the operator still runs Kafka Connect


def test_without_kafka_or_connect_there_is_no_strimzi_at_all():
    d = deploy({"kafka": {"enabled": False, "bootstrapServers": "kafka:9092"},
                "kafkaConnect": {"enabled": False}, "pipelines": PIPELINES[:1]})
    assert "strimzi" not in d.of_type(RELEASE)
    assert not [t for t, _ in d.resources if t.startswith("kubernetes:kafka.strimzi.io/")]
    assert d.pipeline_values["connect"]["enabled"] is False


def test_external_s3_redis_and_sql_replace_the_object_store_valkey_and_the_database():
    d = deploy(
        {"objectStore": {"enabled": False, "endpoint": "https://s3.eu-west-1.amazonaws.com",
                         "bucket": "acme-algorail", "region": "eu-west-1"},
         "redis": {"enabled": False}, "sql": {"enabled": False}, "pipelines": PIPELINES[:1]},
        secrets={"s3AccessKeyId": "AKIAEXAMPLE", "s3SecretAccessKey": "s3-secret-value",
                 "redisUrl": "rediss://:redis-secret@cache.example.com:6380/0",
                 "sqlDsn": "postgresql://app:sql-secret@db.example.com:5432/app"},
    )
    assert not d.of_type(STATEFULSET) and not d.of_type(CNPG_CLUSTER)
    assert "cnpg" not in d.of_type(RELEASE)
    connections = secret_value(d.resources[(SECRET, "algorail-connections")]["stringData"])
    assert connections["results-url"] == "rediss://:redis-secret@cache.example.com:6380/0"
    assert connections["secret-access-key"] == "s3-secret-value"
    assert connections["sql-url"] == "postgresql://app:sql-secret@db.example.com:5432/app"
    services = d.services
    assert services["objectStore"]["url"] == (
        "s3://acme-algorail?endpoint=https://s3.eu-west-1.amazonaws.com&region=eu-west-1")
    assert d.outputs["s3Endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert d.outputs["s3Bucket"] == "acme-algorail"
    assert d.outputs["sqlDsn"] == "postgresql://app:sql-secret@db.example.com:5432/app"
    assert "sqlDsn" in d.secret_outputs
    for (typ, name), inputs in d.resources.items():
        if typ != SECRET:
            text = json.dumps(inputs, default=str)
            assert "-secret" not in text.replace("-secrets", ""), f"{typ}::{name} holds a secret"
    role = d.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")["algorail-connect-secrets"]
    assert role["rules"][0]["resourceNames"] == ["algorail-connections"]


def test_mariadb_replaces_postgresql_when_chosen():
    d = deploy({"sql": {"engine": "mariadb"}})
    assert "cnpg" not in d.of_type(RELEASE) and not d.of_type(CNPG_CLUSTER)
    mariadb = d.of_type(STATEFULSET)["mariadb"]["spec"]["template"]["spec"]
    (container,) = mariadb["containers"]
    assert container["image"] == versions.IMAGES["mariadb"].ref
    env = {e["name"]: e for e in container["env"]}
    assert env["MARIADB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "sql-auth",
                                                                     "key": "password"}
    assert env["MARIADB_DATABASE"]["value"] == "algorail"
    auth = secret_value(d.resources[(SECRET, "sql-auth")]["stringData"])
    assert set(auth) == {"root-password", "password"}
    assert d.outputs["sqlDsn"].startswith("mysql://algorail:")
    assert d.outputs["sqlDsn"].endswith("@mariadb.algorail.svc:3306/algorail")


def test_without_ambassador_and_prometheus_nothing_refers_to_them():
    d = deploy({"ambassador": {"enabled": False}, "prometheus": {"enabled": False},
                "pipelines": PIPELINES[:1]})
    assert "emissary-crds" not in d.of_type(RELEASE)
    assert not d.of_type(MAPPING) and not d.of_type(HOST)
    assert not {"emissary-crds", "emissary-ingress", "monitoring"} & set(d.of_type(RELEASE))
    values = d.pipeline_values
    assert values["mappings"]["enabled"] is False
    assert values["podMonitor"]["enabled"] is False
    services = d.services
    assert services["gateway"]["mapping"]["enabled"] is False
    assert services["serviceMonitor"]["enabled"] is False
    assert d.outputs["grafanaUrl"] is None
    assert d.outputs["gatewayUrlPattern"] == "http://{gateway}/{owner}/{deployment}/{path}"
    assert d.outputs["pipelines"]["alice-hello"]["gateway"] == "algorail-gateway.algorail.svc"


def test_ingress_host_names_the_gateway_and_grafana_urls():
    d = deploy({"ingressHost": "algorail.example.com"})
    assert d.outputs["gatewayUrlPattern"] == (
        "http://algorail.example.com/{owner}/{deployment}/{path}")
    assert d.outputs["grafanaUrl"] == "http://algorail.example.com/grafana/"
    # no load balancer lookup needed
    assert "emissary-ingress-service" not in d.of_type("kubernetes:core/v1:Service")


def test_chart_versions_and_values_can_be_overridden_per_stack():
    image = {"registry": "registry.example.com", "repository": "acme/algorail", "tag": "1.2.3"}
    d = deploy({"chartVersions": {"cloudnative-pg": "99.1.0", "strimzi": "1.2.1"},
                "image": image,
                "values": {"cloudnative-pg": {"replicaCount": 2},
                           "ambassador": {"replicaCount": 5},
                           "algorail": {"gateway": {"replicas": 5}}},
                "pipelines": PIPELINES[:1]})
    cnpg = d.release("cnpg")
    assert (cnpg["version"], cnpg["values"]["replicaCount"]) == ("99.1.0", 2)
    emissary = d.release("emissary-ingress")["values"]
    assert emissary["replicaCount"] == 5
    assert emissary["createDefaultListeners"] is True  # merged, not replaced
    assert d.release("strimzi")["version"] == "1.2.1"
    assert "/1.2.1/strimzi-crds-1.2.1.yaml" in d.of_type(CRDS)["strimzi-crds"]["file"]
    assert d.services["gateway"]["replicas"] == 5
    assert d.services["image"] == image == d.pipeline_values["image"]


@pytest.mark.parametrize("config,secrets,message", [
    ({"kafka": {"enabled": False}}, {}, "kafka.bootstrapServers"),
    ({"redis": {"enabled": False}}, {}, "redisUrl"),
    ({"sql": {"enabled": False}}, {}, "sqlDsn"),
    ({"objectStore": {"enabled": False}}, {}, "objectStore.endpoint"),
    ({"sql": {"engine": "oracle"}}, {}, "sql.engine"),
    ({"kafka": {"replica": 3}}, {}, "unknown keys replica"),
    ({"redis": {"url": "redis://:pw@host"}}, {}, "unknown keys url"),
    ({"values": {"kafak": {}}}, {}, "values has unknown services kafak"),
    ({"chartVersions": {"postgres": "1.0.0"}}, {}, "chartVersions has unknown services postgres"),
    ({"images": {"redis": "redis:8"}}, {}, "images has unknown services redis"),
    ({"strimzi": {"apiVersion": "kafka.strimzi.io/v2"}}, {}, "strimzi.apiVersion"),
    ({"pipelines": [{"deployment": "x"}]}, {}, "needs a file"),
])
def test_impossible_configs_fail_naming_the_key_to_set(config, secrets, message):
    with pytest.raises(InfraConfigError, match=message):
        deploy(config, secrets)


# -- creation order ----------------------------------------------------------------------------


def test_dependencies_make_a_first_up_on_an_empty_cluster_converge(full):
    crds = (RELEASE, "emissary-crds")
    strimzi_crds = (CRDS, "strimzi-crds")
    operator = (RELEASE, "strimzi")
    pool = (f"{STRIMZI_V1}:KafkaNodePool", "kafka-node-pool")
    kafka = (f"{STRIMZI_V1}:Kafka", "kafka-cluster")
    connect = (f"{STRIMZI_V1}:KafkaConnect", "algorail-connect-cluster")
    edges = [
        ((RELEASE, "emissary-ingress"), crds),  # CRDs before the ingress
        ((MAPPING, "grafana-mapping"), crds),  # CRDs before CRs
        ((HOST, "ambassador-host"), crds),
        (operator, strimzi_crds), (pool, strimzi_crds), (kafka, strimzi_crds),
        (pool, operator), (kafka, operator), (kafka, pool),  # operator before Kafka
        ((CNPG_CLUSTER, "sql-cluster"), (RELEASE, "cnpg")),
        (connect, operator), (connect, kafka),  # Kafka before connectors
    ]
    services = (RELEASE, SERVICES)
    # The backing services, the API keys and the Pipeline CRD before the operator and the
    # gateway; the CRD and the operator before any Pipeline (one created earlier would be
    # refused, or sit unreconciled); Kafka, Connect and the Emissary CRDs before the
    # operator creates topics, connectors and Mappings for a Pipeline.
    edges += [(services, (CRDS, "algorail-crds")), (services, (SECRET, "algorail-api-keys")),
              (services, (SECRET, "algorail-connections")), (services, kafka),
              (services, (STATEFULSET, "valkey"))]
    for name in ("alice-hello", "alice-reviews-prod", "default-tfsimple"):
        pipeline = (PIPELINE, name)
        edges += [(pipeline, services), (pipeline, (CRDS, "algorail-crds")), (pipeline, kafka),
                  (pipeline, connect), (pipeline, crds), (pipeline, (STATEFULSET, "valkey")),
                  (pipeline, (CNPG_CLUSTER, "sql-cluster")), (pipeline, (STATEFULSET, "seaweedfs"))]
    missing = [(a, b) for a, b in edges if not full.depends(a, b)]
    assert not missing, f"missing dependency edges: {missing}"


# -- the values, rendered through algorail's own charts ----------------------------------------


def test_what_the_operator_makes_of_the_pipelines_refers_to_real_objects(full):
    """Run the operator's reconcile (the pure function the operator runs) on each Pipeline
    resource with the operator's values exactly as the release got them, and render the
    services chart: every pipeline's Mappings go to the one gateway Service, its plan
    ConfigMap is one the gateway follows, its topics name the stack's Kafka cluster and
    its custom resources are valid against their CRDs; no generated secret is in them."""
    from algorail.operator.reconcile import reconcile

    services = _render(full.release(SERVICES))
    gateway = f"{next(iter(services['StatefulSet']))}.algorail:80"
    assert gateway == "algorail-gateway.algorail:80"
    kafka = full.of_type(f"{STRIMZI_V1}:Kafka")["kafka-cluster"]["metadata"]["name"]
    crds = {"KafkaTopic": "strimzi-1.2.0/043-Crd-kafkatopic.yaml",
            "KafkaConnector": "strimzi-1.2.0/047-Crd-kafkaconnector.yaml",
            "Mapping": "emissary/4.1.0-mappings.yaml"}
    for entry in PIPELINES:
        plan = _plan(entry)
        name = f"{plan['owner']}-{plan['deployment']}".lower()
        pipeline = full.pipeline(name)
        resource = {**pipeline, "metadata": {**pipeline["metadata"], "uid": f"uid-{name}"}}
        done = reconcile(resource, [], operator_values=full.pipeline_values, engine="sdk")
        assert not done.problems, done.problems
        assert SECRET_MARK not in json.dumps(done.desired)
        by_kind: dict[str, list[dict]] = {}
        for obj in done.desired:
            by_kind.setdefault(obj["kind"], []).append(obj)
        assert {m["spec"]["service"] for m in by_kind["Mapping"]} == {gateway}, name
        (config_map,) = [c for c in by_kind["ConfigMap"] if "plan.json" in c.get("data", {})]
        assert config_map["metadata"]["labels"]["algorail.io/plan"] == "true"
        topics = by_kind["KafkaTopic"]
        assert {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics} == {kafka}
        assert sorted(t["spec"]["topicName"] for t in topics) == sorted(
            t["name"] for t in plan["topics"] if not t["external"])
        for kind, crd in crds.items():
            for obj in by_kind.get(kind, []):
                validate_cr(obj, crd)


# -- the program as `pulumi up` runs it ------------------------------------------------------


def test_preview_plans_the_same_resources_as_up(full):
    """`pulumi preview` runs before anything exists (release status, LB address unknown)."""
    planned = deploy({"pipelines": PIPELINES}, preview=True)
    assert set(planned.resources) == set(full.resources)


def test_main_runs_with_the_example_stack_config(monkeypatch):
    """`__main__.py` from infra/ (Pulumi's working directory) with Pulumi.dev.yaml's config."""
    import runpy

    import yaml

    example = yaml.safe_load((INFRA / "Pulumi.dev.yaml").read_text())["config"]
    config = {key.removeprefix("algorail:"): value for key, value in example.items()}
    monkeypatch.chdir(INFRA)
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="algorail", stack="dev", preview=False,
                             monitor=monitor)
    pulumi.runtime.set_all_config({f"algorail:{k}": v if isinstance(v, str) else json.dumps(v)
                                   for k, v in config.items()})

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")

    program()
    releases = {name for (typ, name) in _by_key(monitor) if typ == RELEASE}
    pipelines = {name for (typ, name) in _by_key(monitor) if typ == PIPELINE}
    for entry in config["pipelines"]:
        plan = _plan(entry)
        assert f"{plan['owner']}-{plan['deployment']}".lower() in pipelines
    assert {"strimzi", "emissary-ingress", "cnpg", "monitoring", SERVICES} <= releases


# -- one Pipeline resource: render, Pulumi and the registry agree -----------------------------


LONG_DEPLOYMENT = "customer-reviews-sentiment-production-eu"  # "alice-" + this > 41 characters


def test_render_pulumi_and_the_registry_create_the_same_pipeline_resource(tmp_path):
    """The three places a pipeline becomes a Pipeline resource (`algorail render
    --resource`, this program, the registry's kubernetes target) call one function, so
    they create the same object, modules packed; the operator then names its objects
    after one release name, a long deployment's shortened once."""
    import yaml

    from algorail.operator.reconcile import chart_values, compile_resource, operator_plan
    from algorail.registry.supervisor import KubernetesTarget

    entry = {"file": "../examples/hello.yaml", "deployment": LONG_DEPLOYMENT}
    rendered = _rendered_resource(entry, tmp_path)
    document = yaml.safe_load((ROOT / "examples/hello.yaml").read_text())
    registry = KubernetesTarget(tmp_path).resource("alice", LONG_DEPLOYMENT, document, {
        "workdir": str(ROOT / "examples")})  # where hello_algos is: packed as render packs
    pulumi_stack = deploy({"pipelines": [entry]})
    plan = compile_plan(load_pipeline(ROOT / "examples/hello.yaml"), deployment=LONG_DEPLOYMENT)
    pipeline = pulumi_stack.pipeline(plan.helm.release)
    assert registry["spec"] == rendered["spec"]
    assert pipeline["spec"] == _without_nulls(rendered["spec"])
    assert "hello_algos.py" in rendered["spec"]["deployment"]["code"]
    assert pipeline["metadata"]["name"] == registry["metadata"]["name"] == (
        rendered["metadata"]["name"]) == LONG_DEPLOYMENT
    # the registry marks what it made, so it never takes over another's resource
    assert registry["metadata"]["annotations"] == {
        KubernetesTarget.DEPLOYMENT_ANNOTATION: f"alice/{LONG_DEPLOYMENT}"}

    resource = {**rendered, "metadata": {**rendered["metadata"], "uid": "uid"}}
    values = chart_values(resource, operator_plan(compile_resource(resource)))
    assert values.release == plan.helm.release and len(values.release) <= 41
    assert values.pipeline["code"] == render.helm_values(plan).pipeline["code"]


def test_a_value_the_plan_owns_cannot_be_overridden():
    plan = compile_plan(load_pipeline(ROOT / "examples/hello.yaml"))
    with pytest.raises(render.RenderError, match="mappings.gatewayService comes from the plan"):
        render.helm_values(plan, {"mappings": {"gatewayService": "elsewhere"}})
    with pytest.raises(AlgorailError, match="release name 'Bad_Name' is not valid"):
        plan.with_release("Bad_Name")
    renamed = plan.with_release("hello-prod")
    assert (renamed.helm.services_release, renamed.helm.plan_config_map) == (
        "hello-prod-algorail", "hello-prod-plan")


def test_long_release_names_are_cut_to_fit_and_stay_distinct():
    from algorail import naming

    first = naming.helm_release("alice", "reviews-sentiment-production-eu-west")
    second = naming.helm_release("alice", "reviews-sentiment-production-eu-east")
    assert first != second and first[:32] == second[:32]
    assert all(naming.is_valid_release(n) and len(n) == naming.RELEASE_MAX
               for n in (first, second))
    assert naming.helm_release("Alice", "Hello_World") == "alice-hello-world"
