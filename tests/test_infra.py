"""The Pulumi program (infra/) run under Pulumi's mocks: no CLI, no cluster.

Each `deploy(config)` runs the real program once with a stack config, records every
resource the engine was asked to create (type, name, inputs) and the dependencies it was
registered with, and resolves the stack outputs with their secretness. Tests then assert
what a user would see after `pulumi up`: which services exist with which chart, version
and values, how they are wired, what is secret, and in which order they are created.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key
from pulumi.runtime.sync_await import _sync_await

from algorail.errors import PipelineError
from algorail.plan import Plan, compile_plan
from algorail.spec import load_bindings, load_pipeline

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
sys.path.insert(0, str(INFRA))

from algorail_infra import versions  # noqa: E402
from algorail_infra.config import InfraConfigError, load_settings  # noqa: E402
from algorail_infra.stack import build  # noqa: E402

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
PASSWORD = "random:index/randomPassword:RandomPassword"
STRIMZI = "kubernetes:kafka.strimzi.io/v1beta2"
MAPPING = "kubernetes:getambassador.io/v3alpha1:Mapping"
CRDS = "kubernetes:yaml/v2:ConfigFile"
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


def deploy(config: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
           stack: str = "test", preview: bool = False) -> Deployed:
    """Run the program once under mocks with this stack config (keys without `algorail:`)."""
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


def _by_key(monitor: MockMonitor) -> dict[tuple[str, str], Any]:
    return {_key(urn): registration for urn, registration in monitor.resources.items()}


@pytest.fixture(scope="module")
def full() -> Deployed:
    """Every service enabled (the defaults) and three pipelines."""
    return deploy({"pipelines": PIPELINES})


# -- every service, with its pinned chart and values ------------------------------------------


@pytest.mark.parametrize("release,service", [
    ("emissary-ingress", "ambassador"), ("strimzi", "strimzi"), ("minio", "minio"),
    ("monitoring", "prometheus"), ("redis", "redis"), ("postgresql", "postgresql"),
])
def test_each_upstream_chart_is_installed_at_its_pinned_version(full, release, service):
    inputs = full.release(release)
    pinned = versions.CHARTS[service]
    assert (inputs["chart"], inputs["version"]) == (pinned.chart, pinned.version)
    assert inputs.get("repositoryOpts", {}).get("repo") == pinned.repo
    assert inputs["name"] == release  # predictable Service names for the wiring


def test_ambassador_installs_its_crds_then_a_load_balanced_ingress(full):
    crds = full.of_type(CRDS)
    assert crds["ambassador-crds"]["file"] == versions.EMISSARY_CRDS_URL
    assert versions.EMISSARY_VERSION in versions.EMISSARY_CRDS_URL
    values = full.release("emissary-ingress")["values"]
    assert values["service"]["type"] == "LoadBalancer"
    assert values["createDefaultListeners"] is True
    assert full.release("emissary-ingress")["createNamespace"] is True


def test_kafka_is_kraft_with_a_dual_role_node_pool(full):
    pool = full.of_type(f"{STRIMZI}:KafkaNodePool")["kafka-node-pool"]
    kafka = full.of_type(f"{STRIMZI}:Kafka")["kafka-cluster"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["replicas"] == 3
    assert pool["spec"]["storage"]["volumes"][0]["kraftMetadata"] == "shared"
    assert kafka["spec"]["kafka"]["version"] == versions.KAFKA_VERSION
    assert "zookeeper" not in kafka["spec"]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert full.outputs["kafkaBootstrapServers"] == "algorail-kafka-bootstrap.algorail.svc:9092"


def test_kafka_connect_builds_the_connector_plugins_and_reads_only_stack_secrets(full):
    from algorail.kafka_connect import kafka_connect_build, worker_config

    connect = full.of_type(f"{STRIMZI}:KafkaConnect")["algorail-connect-cluster"]
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
        "algorail-connections", "sql-auth", "redis-auth", "minio-credentials"
    }


def test_minio_has_the_bucket_and_an_app_user_from_an_existing_secret(full):
    values = full.release("minio")["values"]
    assert values["buckets"][0]["name"] == "algorail"
    assert values["existingSecret"] == "minio-credentials"
    assert values["users"][0]["existingSecret"] == "minio-credentials"
    assert full.outputs["s3Endpoint"] == "http://minio.algorail.svc:9000"
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


def test_redis_and_sql_use_generated_passwords_from_kubernetes_secrets(full):
    redis = full.release("redis")["values"]
    assert redis["auth"]["existingSecret"] == "redis-auth"
    sql = full.release("postgresql")["values"]["auth"]
    assert (sql["existingSecret"], sql["username"], sql["database"]) == (
        "sql-auth", "algorail", "algorail")
    assert secret_value(full.resources[(SECRET, "sql-auth")]["stringData"])["password"] == (
        f"{SECRET_MARK}sql-user-password")
    assert full.outputs["sqlDsn"] == (
        f"postgresql://algorail:{SECRET_MARK}sql-user-password"
        "@postgresql.algorail.svc:5432/algorail")


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


@pytest.mark.parametrize("entry", PIPELINES, ids=lambda e: Path(e["file"]).stem)
def test_each_pipeline_release_carries_exactly_its_compiled_plan(full, entry):
    plan = _plan(entry)
    name = f"{plan['owner']}-{plan['deployment']}".lower()
    release = full.release(name)
    assert Path(release["chart"]) == (INFRA / "../charts/algorail-pipeline")
    # Pulumi drops null-valued keys on the way to the engine; every such key is an optional
    # plan field that defaults to null, so the runner reads back the identical plan.
    assert release["values"]["plan"] == _without_nulls(plan)
    assert Plan.model_validate(release["values"]["plan"]).to_cluster_dict() == plan
    assert release["namespace"] == "algorail"
    services = full.release(f"{name}-algorail")
    assert Path(services["chart"]) == (INFRA / "../charts/algorail")
    assert services["values"]["plan"]["configMap"] == f"{name}-plan"
    assert full.outputs["pipelines"][name] == [r["url"] for r in plan["routes"]]


def test_pipeline_releases_are_wired_to_the_stack(full):
    values = full.release("alice-hello")["values"]
    assert values["kafka"] == {"bootstrapServers": "algorail-kafka-bootstrap.algorail.svc:9092",
                               "clusterName": "algorail"}
    assert values["topics"]["create"] is True
    assert values["connect"] == {"enabled": True, "clusterName": "algorail-connect"}
    assert values["mappings"]["enabled"] is True
    assert values["mappings"]["gatewayService"] == "alice-hello-algorail-gateway"
    env = {e["name"]: e for e in values["runner"]["extraEnv"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
        "algorail-connections")
    services = full.release("alice-hello-algorail")["values"]
    assert services["results"]["existingSecret"] == "algorail-connections"
    assert services["objectStore"]["url"] == (
        "s3://algorail?endpoint=http://minio.algorail.svc:9000&region=us-east-1")
    assert services["auth"]["existingSecret"] == "algorail-api-keys"
    assert full.outputs["gatewayUrlPattern"] == f"http://{LB_IP}/{{owner}}/{{deployment}}/{{path}}"


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
    assert not d.of_type(f"{STRIMZI}:Kafka")
    assert not d.of_type(f"{STRIMZI}:KafkaNodePool")
    assert d.outputs["kafkaBootstrapServers"] == bootstrap
    values = d.release("alice-hello")["values"]
    assert values["kafka"]["bootstrapServers"] == bootstrap
    assert values["topics"]["create"] is False  # no Strimzi topic operator for that cluster
    assert d.release("alice-hello-algorail")["values"]["kafka"]["bootstrapServers"] == bootstrap
    connect = d.of_type(f"{STRIMZI}:KafkaConnect")["algorail-connect-cluster"]
    assert connect["spec"]["bootstrapServers"] == bootstrap
    assert "strimzi" in d.of_type(RELEASE)  # the operator still runs Kafka Connect


def test_without_kafka_or_connect_there_is_no_strimzi_at_all():
    d = deploy({"kafka": {"enabled": False, "bootstrapServers": "kafka:9092"},
                "kafkaConnect": {"enabled": False}, "pipelines": PIPELINES[:1]})
    assert "strimzi" not in d.of_type(RELEASE)
    assert not [t for t, _ in d.resources if t.startswith(STRIMZI)]
    assert d.release("alice-hello")["values"]["connect"]["enabled"] is False


def test_external_s3_redis_and_sql_replace_minio_redis_and_the_database():
    d = deploy(
        {"objectStore": {"enabled": False, "endpoint": "https://s3.eu-west-1.amazonaws.com",
                         "bucket": "acme-algorail", "region": "eu-west-1"},
         "redis": {"enabled": False}, "sql": {"enabled": False}, "pipelines": PIPELINES[:1]},
        secrets={"s3AccessKeyId": "AKIAEXAMPLE", "s3SecretAccessKey": "s3-secret-value",
                 "redisUrl": "rediss://:redis-secret@cache.example.com:6380/0",
                 "sqlDsn": "postgresql://app:sql-secret@db.example.com:5432/app"},
    )
    assert not {"minio", "redis", "postgresql", "mariadb"} & set(d.of_type(RELEASE))
    connections = secret_value(d.resources[(SECRET, "algorail-connections")]["stringData"])
    assert connections["results-url"] == "rediss://:redis-secret@cache.example.com:6380/0"
    assert connections["secret-access-key"] == "s3-secret-value"
    assert connections["sql-url"] == "postgresql://app:sql-secret@db.example.com:5432/app"
    services = d.release("alice-hello-algorail")["values"]
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
    assert "postgresql" not in d.of_type(RELEASE)
    release = d.release("mariadb")
    assert (release["chart"], release["version"]) == (
        versions.CHARTS["mariadb"].chart, versions.CHARTS["mariadb"].version)
    auth = secret_value(d.resources[(SECRET, "sql-auth")]["stringData"])
    assert set(auth) == {"mariadb-root-password", "mariadb-password",
                         "mariadb-replication-password"}
    assert d.outputs["sqlDsn"].startswith("mysql://algorail:")
    assert d.outputs["sqlDsn"].endswith("@mariadb.algorail.svc:3306/algorail")


def test_without_ambassador_and_prometheus_nothing_refers_to_them():
    d = deploy({"ambassador": {"enabled": False}, "prometheus": {"enabled": False},
                "pipelines": PIPELINES[:1]})
    assert not d.of_type(CRDS) and not d.of_type(MAPPING)
    assert not {"emissary-ingress", "monitoring"} & set(d.of_type(RELEASE))
    values = d.release("alice-hello")["values"]
    assert values["mappings"]["enabled"] is False
    assert values["podMonitor"]["enabled"] is False
    services = d.release("alice-hello-algorail")["values"]
    assert services["gateway"]["mapping"]["enabled"] is False
    assert services["serviceMonitor"]["enabled"] is False
    assert d.outputs["grafanaUrl"] is None
    assert d.outputs["gatewayUrlPattern"] == (
        "http://{owner}-{deployment}-algorail-gateway.algorail.svc/{owner}/{deployment}/{path}")


def test_ingress_host_names_the_gateway_and_grafana_urls():
    d = deploy({"ingressHost": "algorail.example.com"})
    assert d.outputs["gatewayUrlPattern"] == (
        "http://algorail.example.com/{owner}/{deployment}/{path}")
    assert d.outputs["grafanaUrl"] == "http://algorail.example.com/grafana/"
    assert not d.of_type("kubernetes:core/v1:Service")  # no load balancer lookup needed


def test_chart_versions_and_values_can_be_overridden_per_stack():
    image = {"registry": "registry.example.com", "repository": "acme/algorail", "tag": "1.2.3"}
    d = deploy({"chartVersions": {"redis": "99.1.0"}, "image": image,
                "values": {"redis": {"master": {"persistence": {"size": "50Gi"}}},
                           "algorail": {"gateway": {"replicas": 5}}},
                "pipelines": PIPELINES[:1]})
    redis = d.release("redis")
    assert redis["version"] == "99.1.0"
    assert redis["values"]["master"]["persistence"]["size"] == "50Gi"
    assert redis["values"]["auth"]["existingSecret"] == "redis-auth"  # merged, not replaced
    services = d.release("alice-hello-algorail")["values"]
    assert services["gateway"]["replicas"] == 5
    assert services["image"] == image == d.release("alice-hello")["values"]["image"]


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
    ({"pipelines": [{"deployment": "x"}]}, {}, "needs a file"),
    ({"pipelines": [{"file": "../examples/hello.yaml", "deployment": "d" * 40}]}, {},
     "shorter deployment name"),
])
def test_impossible_configs_fail_naming_the_key_to_set(config, secrets, message):
    with pytest.raises(InfraConfigError, match=message):
        deploy(config, secrets)


# -- creation order ----------------------------------------------------------------------------


def test_dependencies_make_a_first_up_on_an_empty_cluster_converge(full):
    crds = (CRDS, "ambassador-crds")
    operator = (RELEASE, "strimzi")
    pool = (f"{STRIMZI}:KafkaNodePool", "kafka-node-pool")
    kafka = (f"{STRIMZI}:Kafka", "kafka-cluster")
    connect = (f"{STRIMZI}:KafkaConnect", "algorail-connect-cluster")
    edges = [
        ((RELEASE, "emissary-ingress"), crds),  # CRDs before the ingress
        ((MAPPING, "grafana-mapping"), crds),  # CRDs before CRs
        (pool, operator), (kafka, operator), (kafka, pool),  # operator before Kafka
        (connect, operator), (connect, kafka),  # Kafka before connectors
    ]
    for name in ("alice-hello", "alice-reviews-prod"):
        pipeline, services = (RELEASE, name), (RELEASE, f"{name}-algorail")
        # Kafka (and Connect, and the CRDs) before topics, connectors and runners.
        edges += [(pipeline, kafka), (pipeline, connect), (pipeline, crds),
                  (pipeline, (RELEASE, "redis")), (services, pipeline),
                  (services, (SECRET, "algorail-api-keys"))]
    missing = [(a, b) for a, b in edges if not full.depends(a, b)]
    assert not missing, f"missing dependency edges: {missing}"


# -- the values, rendered through algorail's own charts ----------------------------------------


def test_the_wiring_renders_through_both_charts_and_refers_to_real_objects(full):
    """Render the two charts with exactly the values the releases got: the gateway the
    Mappings point at, the plan ConfigMap the gateway mounts and the Strimzi clusters
    the CRs name all exist, and no rendered manifest holds a generated secret."""
    helm = pytest.importorskip("helm_python")
    import yaml

    pipeline = full.release("alice-reviews-prod")
    services = full.release("alice-reviews-prod-algorail")
    objects = []
    for release in (pipeline, services):
        rendered = helm.Chart.load(release["chart"]).render(
            values=release["values"], name=release["name"], namespace="algorail")
        for path, text in rendered.items():
            assert SECRET_MARK not in text
            if path.endswith(".yaml"):
                objects += [o for o in yaml.safe_load_all(text) if o]
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    gateway_service = "alice-reviews-prod-algorail-gateway"
    assert gateway_service in by_kind["Service"]
    assert by_kind["Mapping"]
    for mapping in by_kind["Mapping"].values():
        assert mapping["spec"]["service"].split(".")[0] in by_kind["Service"]
    assert "alice-reviews-prod-plan" in by_kind["ConfigMap"]
    gateway = by_kind["StatefulSet"]["alice-reviews-prod-algorail-gateway"]
    mounted = [v["configMap"]["name"] for v in gateway["spec"]["template"]["spec"]["volumes"]
               if "configMap" in v]
    assert "alice-reviews-prod-plan" in mounted
    kafka = full.of_type(f"{STRIMZI}:Kafka")["kafka-cluster"]["metadata"]["name"]
    topics = by_kind["KafkaTopic"].values()
    assert topics and {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics} == {kafka}
    plan = _plan(PIPELINES[1])
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(
        t["name"] for t in plan["topics"] if not t["external"])


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
    for entry in config["pipelines"]:
        plan = _plan(entry)
        assert f"{plan['owner']}-{plan['deployment']}".lower() in releases
    assert {"strimzi", "emissary-ingress", "minio", "redis", "monitoring"} <= releases
