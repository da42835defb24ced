"""The Helm charts, rendered offline with the Python Helm SDK for several real plans:
strict lint, the Kubernetes schemas of 1.29 and the newest, upstream CRD schemas,
pod security, secrets only by reference, and names taken from the plan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from crd_schemas import MISSING, SCHEMAS, strict
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from algorail.compiler import compile_plan
from algorail.extensions import Connector
from algorail.loader import load_pipeline
from algorail.plan import ConnectorPlan, Plan
from algorail.render import (
    PIPELINE_CHART,
    SERVICES_CHART,
    RenderError,
    chart_dir,
    manifests,
    pipeline_values,
    render_chart,
    services_values,
)
from algorail.spec import load_bindings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SELDON_BINDINGS = EXAMPLES / "seldon" / "bindings.yaml"
# The oldest Kubernetes the charts support (kubeVersion >=1.29) and the newest schema known.
_SUPPORTED = sorted({v for v in all_versions() if Version(v) >= Version("1.29")}, key=Version)
K8S_VERSIONS = [_SUPPORTED[0], _SUPPORTED[-1]]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "app.kubernetes.io/component",
)
WORKLOADS = ("Deployment", "StatefulSet")


class TableSink(Connector):
    """A connector plugin with a Kafka Connect implementation, as a third party writes one."""

    name = "table-sink"
    kinds = ("sink",)
    connector_class = "io.example.TableSinkConnector"

    def kafka_connect_config(self, connector: Any) -> dict[str, str]:
        return {
            "connector.class": self.connector_class,
            "tasks.max": "2",
            "topics": ",".join(i.topic for i in connector.inputs),
            "connection.password": "${secrets:pipelines/db:password}",
            "batch.size": "500",
        }


class Registry:
    connectors = {"table-sink": TableSink()}


def _compile(name: str, bindings: Path | None = None) -> Plan:
    binding = load_bindings(str(bindings)) if bindings else None
    return compile_plan(load_pipeline(str(EXAMPLES / name), bindings=binding))


def _with_sink(plan: Plan) -> Plan:
    """reviews plus a data sink on combine.result (compiled plans carry no sinks yet)."""
    runner = plan.runner("combine")
    sink = ConnectorPlan(
        name="Archive", id=f"{plan.owner}/Archive:{plan.version}[9]", index=9, kind="sink",
        connector="table-sink", connect_name=f"{plan.owner}.{plan.deployment}.archive",
        config={"table": "reviews"},
        inputs=[runner.inputs[0].model_copy(update={"topic": runner.outputs["result"]})],
        dead_letter_topic=f"{plan.owner}.{plan.deployment}.Archive.dead-letter",
        consumer_group=f"algorail.{plan.owner}.{plan.deployment}.Archive",
    )
    return plan.model_copy(update={"connectors": [sink]})


def _with_http_sidecar(plan: Plan) -> Plan:
    """hello with its algo served by an image over HTTP, with its own resources."""
    runner = plan.runners[0].model_copy(update={
        "runtime": "http", "url": "http://127.0.0.1:9000/predict",
        "image": "registry.example/upper:1.0.0", "replicas": 3,
        "resources": {"limits": {"memory": "2Gi"}},
    })
    return plan.model_copy(update={"runners": [runner], "clean_topics_on_delete": True})


PLANS = {
    "hello": lambda: _compile("hello.yaml"),
    "reviews-with-sink": lambda: _with_sink(_compile("reviews.yaml")),
    "seldon-join": lambda: _compile("seldon/tfsimples-join.yaml", SELDON_BINDINGS),
    "seldon-external": lambda: _compile("seldon/tfsimple-extended.yaml", SELDON_BINDINGS),
    "seldon-conditional": lambda: _compile("seldon/conditional.yaml", SELDON_BINDINGS),
    "http-sidecar": lambda: _with_http_sidecar(_compile("hello.yaml")),
}
SECRET_VALUES = {
    "results": {"existingSecret": "redis-url", "existingSecretKey": "url"},
    "objectStore": {"existingSecret": "minio-keys"},
    "auth": {"enabled": True, "existingSecret": "gateway-keys"},
    "hooks": {"webhookSecrets": {"existingSecret": "webhook-hmac"}},
}


def _render(chart: str, values: dict[str, Any], release: str = "demo") -> list[dict]:
    return manifests(render_chart(chart, values, release=release, namespace="pipelines",
                                  engine="sdk"))


@pytest.fixture(scope="module", params=sorted(PLANS))
def case(request):
    """(plan, pipeline chart objects, services chart objects) for one example plan."""
    plan = PLANS[request.param]()
    pipeline = _render(PIPELINE_CHART, pipeline_values(plan, Registry()))
    services = _render(SERVICES_CHART, {**services_values("demo-plan"), **SECRET_VALUES})
    return plan, pipeline, services


def _kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _pod_specs(objects: list[dict]) -> list[dict]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] in WORKLOADS]


def _is_builtin(obj: dict) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


# -- Helm itself -------------------------------------------------------------------------


def test_lint_strict_has_no_errors_for_every_plan(case):
    plan = case[0]
    for chart, values in ((PIPELINE_CHART, pipeline_values(plan, Registry())),
                          (SERVICES_CHART, services_values("demo-plan")),
                          (SERVICES_CHART, {})):
        report = helm_python.lint(chart_dir(chart), values, strict=True, namespace="pipelines")
        errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert errors == [], (chart, errors)


def test_every_builtin_object_passes_kubernetes_schemas(case):
    _, pipeline, services = case
    builtin = [o for o in pipeline + services if _is_builtin(o)]
    assert {"Deployment", "ConfigMap", "Service", "NetworkPolicy"} <= {o["kind"] for o in builtin}
    assert len(K8S_VERSIONS) >= 2
    for obj in builtin:
        key = json.dumps(obj, sort_keys=True)
        if key in _VALIDATED:  # the services chart renders alike for every plan
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        _VALIDATED.add(key)


_VALIDATED: set[str] = set()


def test_broken_object_fails_kubernetes_schema():
    """The schema check above can fail: a misspelt field is caught."""
    deployment = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["hello"]())), "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


# -- the plan is the source of truth ------------------------------------------------------


def test_topic_names_equal_the_plans_created_topics(case):
    plan, pipeline, _ = case
    topics = _kind(pipeline, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(plan.created_topics())
    external = [t.name for t in plan.topics if t.external]
    assert not set(external) & {t["spec"]["topicName"] for t in topics}


def test_runner_deployments_follow_the_plan(case):
    plan, pipeline, _ = case
    deployments = {
        d["metadata"]["annotations"]["algorail.io/id"]: d for d in _kind(pipeline, "Deployment")
    }
    assert sorted(deployments) == sorted(r.id for r in plan.runners)
    for runner in plan.runners:
        deployment = deployments[runner.id]
        assert deployment["spec"]["replicas"] == runner.replicas
        pod = deployment["spec"]["template"]["spec"]
        main = pod["containers"][0]
        assert main["args"] == ["runner", "--plan", "/etc/algorail/plan.json",
                                "--component", runner.component]
        assert {"name": "plan", "mountPath": "/etc/algorail", "readOnly": True} in main[
            "volumeMounts"]
        config_map = pod["volumes"][0]["configMap"]["name"]
        plan_cm = next(c for c in _kind(pipeline, "ConfigMap")
                       if c["metadata"]["name"] == config_map)
        shipped = Plan.model_validate_json(plan_cm["data"]["plan.json"])
        assert shipped == Plan.model_validate(plan.to_cluster_dict())


def test_http_runtime_with_an_image_runs_the_algo_as_a_sidecar():
    plan = PLANS["http-sidecar"]()
    pipeline = _render(PIPELINE_CHART, pipeline_values(plan))
    pod = _pod_specs(pipeline)[0]
    runner, algo = pod["containers"]
    assert runner["image"].startswith("ghcr.io/algorail/algorail:")
    assert algo["image"] == "registry.example/upper:1.0.0"
    assert algo["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert _kind(pipeline, "Deployment")[0]["spec"]["replicas"] == 3


def test_one_mapping_per_http_route_with_the_route_url(case):
    plan, pipeline, services = case
    mappings = [m for m in _kind(pipeline, "Mapping") if "-v2-" not in m["metadata"]["name"]]
    routes = [r for r in plan.routes if r.type == "http"]
    by_prefix = {m["spec"]["prefix"]: m for m in mappings}
    for route in routes:
        spec = by_prefix[route.url]["spec"]
        assert spec["rewrite"] == "" and spec["prefix_exact"] is True
    if routes:
        assert f"/{plan.owner}/{plan.deployment}/runs/" in by_prefix
    assert len(mappings) == (len(routes) + 1 if routes else 0)
    gateway_service = next(s for s in _kind(services, "Service")
                           if s["metadata"]["name"].endswith("-gateway"))
    assert all(m["spec"]["service"] == "algorail-gateway.pipelines:80" for m in mappings)
    assert gateway_service["metadata"]["name"] == "demo-algorail-gateway"


def test_topics_are_kept_on_uninstall_unless_the_plan_cleans_them():
    kept = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["hello"]())), "KafkaTopic")
    cleaned = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["http-sidecar"]())),
                    "KafkaTopic")
    assert all(t["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for t in kept)
    assert all("helm.sh/resource-policy" not in (t["metadata"].get("annotations") or {})
               for t in cleaned)


def test_topic_settings_are_configurable():
    values = {**pipeline_values(PLANS["hello"]()),
              "topics": {"partitions": 12, "replicas": 3, "retentionMs": 3600000,
                         "config": {"min.insync.replicas": 2}}}
    for topic in _kind(_render(PIPELINE_CHART, values), "KafkaTopic"):
        assert topic["spec"]["partitions"] == 12 and topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"] == {"retention.ms": "3600000", "min.insync.replicas": "2"}


# -- custom resources: what Strimzi and Emissary require -----------------------------------


def test_strimzi_and_emissary_resources_have_required_fields(case):
    plan, pipeline, services = case
    for topic in _kind(pipeline, "KafkaTopic"):
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "algorail"
        assert DNS_SUBDOMAIN.match(topic["metadata"]["name"])
        assert topic["spec"]["partitions"] >= 1 and topic["spec"]["replicas"] >= 1
        assert all(isinstance(v, str) for v in topic["spec"]["config"].values())
    for connector in _kind(pipeline, "KafkaConnector"):
        assert connector["metadata"]["labels"]["strimzi.io/cluster"] == "algorail-connect"
        assert connector["spec"]["class"] and connector["spec"]["tasksMax"] >= 1
        assert all(isinstance(v, str) for v in connector["spec"]["config"].values())
    for mapping in _kind(pipeline + services, "Mapping"):
        assert mapping["apiVersion"] == "getambassador.io/v3alpha1"
        spec = mapping["spec"]
        assert spec["prefix"].startswith(("/", "^/")) and spec["service"] and spec["hostname"]
    for monitor in _kind(services, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"] and monitor["spec"]["endpoints"]
    for monitor in _kind(pipeline, "PodMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"]
        assert monitor["spec"]["podMetricsEndpoints"]


def test_connectors_come_from_the_connector_plugin():
    plan = PLANS["reviews-with-sink"]()
    (connector,) = _kind(_render(PIPELINE_CHART, pipeline_values(plan, Registry())),
                         "KafkaConnector")
    # The same name `algorail connectors apply` uses against a Kafka Connect REST API.
    assert connector["metadata"]["name"] == plan.connectors[0].connect_name
    assert connector["spec"]["class"] == "io.example.TableSinkConnector"
    assert connector["spec"]["tasksMax"] == 2
    assert connector["spec"]["config"] == {
        "topics": "alice.reviews.combine.result",
        "connection.password": "${secrets:pipelines/db:password}",
        "batch.size": "500",
    }


def test_first_party_jdbc_sink_renders_a_kafka_connector_with_secret_references(tmp_path):
    source = (EXAMPLES / "hello.yaml").read_text() + """
  dataSinks:
    - name: Warehouse
      connector: jdbc
      config:
        url: postgresql://db.shop:5432/shop
        table: results
        user: app
        password: ${secrets:shop/warehouse-db:password}
      inputs: [{name: in}]
"""
    pipe = "    - {from: upper.result, to: Warehouse.in}\n"
    source = source.replace("  pipes:\n", "  pipes:\n" + pipe)
    (tmp_path / "hello.yaml").write_text(source)
    plan = compile_plan(load_pipeline(str(tmp_path / "hello.yaml")))
    objects = _render(PIPELINE_CHART, pipeline_values(plan))
    (connector,) = _kind(objects, "KafkaConnector")
    assert connector["spec"]["class"] == "io.confluent.connect.jdbc.JdbcSinkConnector"
    assert connector["spec"]["config"]["connection.password"] == (
        "${secrets:shop/warehouse-db:password}")
    assert connector["spec"]["config"]["topics"] == plan.runner("upper").outputs["result"]
    assert sorted(t["spec"]["topicName"] for t in _kind(objects, "KafkaTopic")) == sorted(
        plan.created_topics())


def test_connector_config_values_must_be_strings():
    values = pipeline_values(PLANS["reviews-with-sink"](), Registry())
    values["connectorConfigs"]["Archive"]["config"]["batch.size"] = 500
    with pytest.raises(RenderError, match="connectorConfigs/Archive/config/batch.size"):
        _render(PIPELINE_CHART, values)


def test_connector_without_kafka_connect_config_gets_a_clear_message():
    values = pipeline_values(PLANS["reviews-with-sink"](), Registry())
    values["connectorConfigs"] = {}
    with pytest.raises(RenderError, match=r"connectorConfigs\.Archive: missing.*connect\.enabled"):
        _render(PIPELINE_CHART, values)
    values["connect"] = {"enabled": False}
    assert not _kind(_render(PIPELINE_CHART, values), "KafkaConnector")


# -- security ------------------------------------------------------------------------------


def test_every_deployment_runs_non_root_with_limits(case):
    _, pipeline, services = case
    pods = _pod_specs(pipeline) + _pod_specs(services)
    assert len(pods) >= 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            image = container["image"]
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest")


def test_no_secret_value_in_configmaps_or_plain_env(case):
    plan, pipeline, services = case
    objects = pipeline + services
    assert not _kind(objects, "Secret")
    credential = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    for config_map in _kind(objects, "ConfigMap"):
        for value in config_map["data"].values():
            assert not credential.search(value), config_map["metadata"]["name"]
    sensitive = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|RESULTS_URL")
    secret_env = {}
    for pod in _pod_specs(objects):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if sensitive.search(env["name"]):
                    assert "value" not in env, (container["name"], env["name"])
                    secret_env[env["name"]] = env["valueFrom"]["secretKeyRef"]["name"]
    assert secret_env == {"ALGORAIL_RESULTS_URL": "redis-url",
                          "AWS_ACCESS_KEY_ID": "minio-keys", "AWS_SECRET_ACCESS_KEY": "minio-keys"}
    mounted = {v["secret"]["secretName"] for pod in _pod_specs(services)
               for v in pod["volumes"] if "secret" in v}
    assert mounted == {"gateway-keys", "webhook-hmac"}


def test_credentials_in_plain_values_are_refused():
    values = {**services_values("demo-plan"),
              "results": {"url": "redis://:hunter2@redis:6379/0"},
              "objectStore": {"url": "s3://bucket?endpoint=http://key:secret@minio:9000"}}
    with pytest.raises(RenderError) as err:
        _render(SERVICES_CHART, values)
    assert "results.url: holds credentials" in str(err.value)
    assert "objectStore.url: holds credentials" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_schema_refuses_unpinned_images_and_root():
    for bad in ({"image": {"tag": "latest"}}, {"podSecurityContext": {"runAsNonRoot": False}},
                {"containerSecurityContext": {"readOnlyRootFilesystem": False}}):
        for chart, values in ((SERVICES_CHART, {}),
                              (PIPELINE_CHART, pipeline_values(PLANS["hello"]()))):
            with pytest.raises(RenderError, match="schema"):
                _render(chart, {**values, **bad})


# -- names and labels -----------------------------------------------------------------------


def test_names_are_dns_1123_even_for_upper_case_components(tmp_path):
    source = (EXAMPLES / "hello.yaml").read_text().replace("upper", "Upper")
    pipeline_file = tmp_path / "hello.yaml"
    pipeline_file.write_text(source)
    (tmp_path / "hello_algos.py").write_text((EXAMPLES / "hello_algos.py").read_text())
    plan = compile_plan(load_pipeline(str(pipeline_file)))
    objects = _render(PIPELINE_CHART, pipeline_values(plan), release="Hello-Upper".lower())
    for obj in objects:
        name = obj["metadata"]["name"]
        pattern = DNS_SUBDOMAIN if obj["kind"] == "KafkaTopic" else DNS_LABEL
        assert pattern.match(name) and len(name) <= 63, name
    deployment = _kind(objects, "Deployment")[0]
    assert deployment["metadata"]["name"] == f"hello-upper-upper-{_short_hash('Upper')}"
    assert sorted(t["spec"]["topicName"] for t in _kind(objects, "KafkaTopic")) == sorted(
        plan.created_topics())


def test_long_release_and_component_names_stay_unique_and_short():
    plan = PLANS["reviews-with-sink"]()
    long_names = [r.model_copy(update={"component": f"{'c' * 48}-{i}"})
                  for i, r in enumerate(plan.runners)]
    plan = plan.model_copy(update={"runners": long_names})
    objects = _render(PIPELINE_CHART, pipeline_values(plan, Registry()), release="r" * 53)
    subdomains = ("KafkaTopic", "KafkaConnector")
    names = [(o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] not in subdomains]
    assert all(DNS_LABEL.match(n) and len(n) <= 63 for _, n in names), names
    connectors = [o["metadata"]["name"] for o in objects if o["kind"] == "KafkaConnector"]
    assert all(DNS_SUBDOMAIN.match(n) and len(n) <= 253 for n in connectors), connectors
    assert len(set(names)) == len(names)


def test_recommended_labels_on_every_object(case):
    _, pipeline, services = case
    for obj in pipeline + services:
        labels = obj["metadata"]["labels"]
        assert all(key in labels for key in RECOMMENDED_LABELS), obj["metadata"]["name"]


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


# -- the services chart ------------------------------------------------------------------


def test_services_chart_without_a_plan_deploys_no_workload_and_says_how():
    objects = _render(SERVICES_CHART, {})
    assert not _kind(objects, "Deployment") and not _kind(objects, "HorizontalPodAutoscaler")
    with helm_python.Chart.load(chart_dir(SERVICES_CHART)) as chart:
        notes = chart.render(values={}, name="algorail")["algorail/templates/NOTES.txt"]
    assert "--set plan.configMap=" in notes


def test_gateway_has_hpa_pdb_and_serves_the_plan_configmap():
    objects = _render(SERVICES_CHART, services_values("shop-plan"))
    (hpa,) = _kind(objects, "HorizontalPodAutoscaler")
    (pdb,) = _kind(objects, "PodDisruptionBudget")
    (gateway,) = _kind(objects, "StatefulSet")
    assert hpa["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
    assert "replicas" not in gateway["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    pod = gateway["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == "shop-plan"
    # a folder, not a subPath file: kubelet swaps it when the ConfigMap changes
    assert pod["containers"][0]["args"][:3] == ["gateway", "--plans-dir", "/etc/algorail/plans"]
    mounts = [m for c in _pods(objects) for m in c["containers"][0]["volumeMounts"]]
    assert {"name": "plans", "mountPath": "/etc/algorail/plans", "readOnly": True} in mounts
    assert not [m for m in mounts if "subPath" in m]
    (role,) = _kind(objects, "Role")
    assert role["rules"][0]["resourceNames"] == ["shop-plan"]


def test_services_follow_every_plan_of_the_namespace():
    values = {**services_values(""), "plan": {"fromCluster": True, "selector": "team=search"}}
    objects = _render(SERVICES_CHART, values)
    pods = _pods(objects)
    assert len(pods) == 2  # the gateway and the hook dispatcher
    for pod in pods:
        assert pod["containers"][0]["args"][1:4] == ["--plans-from-cluster", "--plans-selector",
                                                     "team=search"]
        assert pod["automountServiceAccountToken"] is True
        assert "plans" not in {v["name"] for v in pod["volumes"]}
    (role,) = _kind(objects, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "verbs": ["get", "list", "watch"]}]
    for policy in _kind(objects, "NetworkPolicy"):  # both reach the API server
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
        assert {443, 6443} <= ports
    # the gRPC service follows the same plans as the REST side
    grpc = _render(SERVICES_CHART, {**values, "gateway": {"grpc": {"enabled": True}}})
    args = _kind(grpc, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[1:2] == ["--plans-from-cluster"] and "--grpc-port" in args
    with pytest.raises(Exception, match="plan.configMap: set together with plan.fromCluster"):
        _render(SERVICES_CHART, {**services_values("x-plan"), "plan": {
            "configMap": "x-plan", "fromCluster": True}})


def _pods(objects: list[dict]) -> list[dict]:
    return [o["spec"]["template"]["spec"] for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")]


def _exposed_metric_names() -> set[str]:
    """Sample names the runner and the gateway really expose (counters as *_total,
    histograms as *_bucket), read from their own Prometheus registries."""
    from algorail.runtime.gateway import GatewayMetrics
    from algorail.runtime.metrics import RunnerMetrics

    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": ""}
    names = set()
    for registry in (RunnerMetrics("x").registry, GatewayMetrics().registry):
        names |= {m.name + suffix[m.type] for m in registry.collect() if m.type in suffix}
    return names


def test_dashboard_plots_metrics_the_services_expose():
    (config_map,) = [o for o in _render(SERVICES_CHART, {})
                     if o["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["algorail-pipelines.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\balgorail_[a-z_]+", e)}
    used.discard("algorail_io_deployment")  # a label (from podTargetLabels), not a metric
    assert len(used) >= 8
    assert used <= _exposed_metric_names()
    (monitor,) = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["hello"]())), "PodMonitor")
    assert "algorail.io/deployment" in monitor["spec"]["podTargetLabels"]
    assert "algorail_io_deployment" in " ".join(exprs)


def test_runners_serve_metrics_where_the_probes_and_podmonitor_look():
    objects = _render(PIPELINE_CHART, pipeline_values(PLANS["reviews-with-sink"](), Registry()))
    for pod in _pod_specs(objects):
        runner = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in runner["env"]}
        assert env["ALGORAIL_METRICS_HOST"] == "0.0.0.0"
        port = next(p for p in runner["ports"] if p["name"] == "metrics")["containerPort"]
        assert env["ALGORAIL_METRICS_PORT"] == str(port)
        assert runner["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    (monitor,) = _kind(objects, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


# -- values.yaml documents itself -------------------------------------------------------


def _leaves(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        keys += _leaves(value, path + ".") if isinstance(value, dict) and value else [path]
    return keys


@pytest.mark.parametrize("chart", [SERVICES_CHART, PIPELINE_CHART])
def test_every_value_is_documented_and_in_the_schema(chart):
    folder = chart_dir(chart)
    text = (folder / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+)", text, re.M))
    schema = json.loads((folder / "values.schema.json").read_text())
    values = yaml.safe_load(text)
    for key in _leaves(values):
        parts = key.split(".")
        assert any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)), key
        node, value = schema, values
        for part in parts:
            if part not in node.get("properties", {}):
                break
            node, value = node["properties"][part], value[part]
        assert node.get("description"), key
        assert node.get("default", value) == value, f"{key}: the schema's default is stale"


# -- the image -----------------------------------------------------------------------------


@pytest.mark.slow
def test_dockerfile_builds_a_wheel_from_only_what_it_copies(tmp_path):
    """No docker engine here: check the build stage's pip step on exactly the files the
    Dockerfile COPYs (after .dockerignore), and that the image runs as the charts' user."""
    import shutil
    import subprocess
    import sys

    root = EXAMPLES.parent
    dockerfile = (root / "Dockerfile").read_text()
    ignored = [line for line in (root / ".dockerignore").read_text().splitlines()
               if line and not line.startswith("#")]
    for source, target in re.findall(r"^COPY (\S+(?: \S+)*) (\S+)$", dockerfile, re.M):
        for name in source.split():
            assert name not in ignored, name
            src = root / name
            dest = tmp_path / (target if target != "./" else name)
            if src.is_dir():
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(src, tmp_path / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "wheels"), str(tmp_path)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "wheels").glob("algorail-*.whl"))
    uid = yaml.safe_load((chart_dir(SERVICES_CHART) / "values.yaml").read_text())[
        "podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{uid}" in dockerfile
    assert 'ENTRYPOINT ["algorail"]' in dockerfile


# -- custom resources against the upstream CRDs ---------------------------------------------


needs_schemas = pytest.mark.skipif(SCHEMAS is None, reason=MISSING)


def _crd_validators() -> dict[tuple[str, str], list]:
    """(apiVersion, kind) -> a validator per upstream release that serves that version."""
    import jsonschema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    validators: dict[tuple[str, str], list] = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        if "Crd-kafka" in path.name and not path.name.endswith(("topic.yaml", "connector.yaml")):
            continue  # the charts render no Kafka, KafkaConnect, ... (large files)
        for crd in yaml.load_all(path.read_text(), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if version.get("served") and schema:
                    validators.setdefault((f"{group}/{version['name']}", kind), []).append(
                        (path.parent.name, jsonschema.Draft7Validator(strict(schema))))
    return validators


def _crd_errors(objects: list[dict]) -> list[str]:
    validators = _CRDS.get("all") or _CRDS.setdefault("all", _crd_validators())
    errors = []
    for obj in objects:
        if _is_builtin(obj):
            continue
        found = validators.get((obj["apiVersion"], obj["kind"]))
        if not found:
            errors.append(f"{obj['kind']} {obj['apiVersion']}: no upstream CRD serves it")
        for release, validator in found or ():
            errors += [f"{obj['kind']} {obj['metadata']['name']} ({release}): {e.message}"
                       for e in validator.iter_errors(obj)]
    return errors


_CRDS: dict[str, Any] = {}


@needs_schemas
def test_custom_resources_pass_the_upstream_crd_schemas(case):
    _, pipeline, services = case
    custom = [o for o in pipeline + services if not _is_builtin(o)]
    assert {"KafkaTopic", "Mapping", "PodMonitor", "ServiceMonitor"} <= {o["kind"] for o in custom}
    assert _crd_errors(custom) == []


@needs_schemas
def test_strimzi_v1beta2_is_selectable_and_meets_strimzi_0_48():
    values = {**pipeline_values(PLANS["reviews-with-sink"](), Registry()),
              "topics": {"apiVersion": "kafka.strimzi.io/v1beta2"},
              "connect": {"apiVersion": "kafka.strimzi.io/v1beta2"}}
    strimzi = [o for o in _render(PIPELINE_CHART, values) if o["kind"].startswith("Kafka")]
    assert {o["apiVersion"] for o in strimzi} == {"kafka.strimzi.io/v1beta2"}
    assert _crd_errors(strimzi) == []


@needs_schemas
def test_crd_check_catches_a_misspelt_field():
    (topic, *_) = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["hello"]())), "KafkaTopic")
    topic["spec"]["partition"] = 3
    assert any("partition" in e for e in _crd_errors([topic]))


# -- the values schema catches mistakes ----------------------------------------------------


@pytest.mark.parametrize("chart, expression, named", [
    (PIPELINE_CHART, "topics.partitionz=3", "partitionz"),
    (PIPELINE_CHART, "unknownTopLevelKey=1", "unknownTopLevelKey"),
    (PIPELINE_CHART, "runner.readinessProbe.periodSecond=3", "periodSecond"),
    (SERVICES_CHART, "gateway.replicaz=3", "replicaz"),
    (SERVICES_CHART, "unknownTopLevelKey=1", "unknownTopLevelKey"),
])
def test_unknown_keys_fail_naming_the_key(chart, expression, named):
    values = pipeline_values(PLANS["hello"]()) if chart == PIPELINE_CHART else {}
    with pytest.raises(RenderError, match=named):
        render_chart(chart, values, release="demo", set_values=[expression], engine="sdk")


@pytest.mark.parametrize("chart, key", [(PIPELINE_CHART, "podMonitor.interval"),
                                        (SERVICES_CHART, "serviceMonitor.interval")])
def test_scrape_intervals_follow_the_prometheus_duration_pattern(chart, key):
    values = pipeline_values(PLANS["hello"]()) if chart == PIPELINE_CHART else {}
    for good in ("30s", "1m30s", "500ms"):
        render_chart(chart, values, release="demo", set_values=[f"{key}={good}"], engine="sdk")
    for bad in ("30", "30 s", "1.5m", "thirty"):
        with pytest.raises(RenderError, match=key.split(".")[0]):
            render_chart(chart, values, release="demo", set_values=[f"{key}={bad}"],
                         engine="sdk")
    if SCHEMAS is not None:  # the chart's pattern is the CRD's own
        crd = next(yaml.safe_load_all((SCHEMAS / "prometheus-operator" / (
            "podmonitors.yaml" if chart == PIPELINE_CHART else "servicemonitors.yaml"
        )).read_text()))
        text = json.dumps(crd)
        schema = json.loads((chart_dir(chart) / "values.schema.json").read_text())
        pattern = schema["properties"][key.split(".")[0]]["properties"]["interval"]["pattern"]
        assert json.dumps(pattern) in text


def test_runner_resources_null_gets_a_values_message():
    with pytest.raises(RenderError, match=r"runner\.resources: must be a map") as err:
        render_chart(PIPELINE_CHART, pipeline_values(PLANS["hello"]()), release="demo",
                     set_values=["runner.resources=null"], engine="sdk")
    assert "nil pointer" not in str(err.value)


@pytest.mark.parametrize("key", ["topics.apiVersion", "connect.apiVersion"])
def test_a_strimzi_api_version_that_does_not_exist_is_refused(key):
    with pytest.raises(RenderError, match=key.split(".")[0]):
        render_chart(PIPELINE_CHART, pipeline_values(PLANS["hello"]()), release="demo",
                     set_values=[f"{key}=kafka.strimzi.io/v1alpha9"], engine="sdk")


def _closed_objects(node: dict, path: str, open_paths: set[str]) -> list[str]:
    """Paths of schema objects listing properties without additionalProperties: false."""
    if path in open_paths:
        return []
    missing = []
    if "properties" in node and node.get("additionalProperties") is not False:
        if not node.get("description"):  # a values block, not a Kubernetes struct given whole
            missing.append(path or "<root>")
    for key, child in node.get("properties", {}).items():
        missing += _closed_objects(child, f"{path}.{key}".lstrip("."), open_paths)
    return missing


@pytest.mark.parametrize("chart", [SERVICES_CHART, PIPELINE_CHART])
def test_every_values_block_refuses_unknown_keys(chart):
    schema = json.loads((chart_dir(chart) / "values.schema.json").read_text())
    assert _closed_objects(schema, "", {"plan", "connectorConfigs"}) == []


# -- helm lint and NOTES --------------------------------------------------------------------


def test_lint_strict_passes_with_default_values():
    for chart in (PIPELINE_CHART, SERVICES_CHART):
        report = helm_python.lint(chart_dir(chart), {}, strict=True, namespace="pipelines")
        assert [m for m in report["messages"] if m["severity"] >= 2] + report["errors"] == []


def _notes(values: dict) -> str:
    with helm_python.Chart.load(chart_dir(PIPELINE_CHART)) as chart:
        rendered = chart.render(values=values, name="demo", namespace="pipelines")
    return rendered["algorail-pipeline/templates/NOTES.txt"]


def test_notes_curl_sends_the_api_key_when_auth_is_on():
    values = pipeline_values(PLANS["hello"]())
    curl = next(line for line in _notes(values).splitlines() if "curl" in line)
    assert '-H "x-api-key: $ALGORAIL_API_KEY"' in curl
    curl = next(line for line in _notes({**values, "auth": {"enabled": False}}).splitlines()
                if "curl" in line)
    assert "x-api-key" not in curl


# -- routes for every URL the gateway serves -------------------------------------------------


def _matches(mapping: dict, path: str, headers: dict[str, str] | None = None) -> bool:
    """Whether an Emissary Mapping takes a request for `path` (prefix, exact or regex)."""
    spec = mapping["spec"]
    if spec.get("prefix_regex"):
        matched = re.fullmatch(spec["prefix"], path) is not None
    elif spec.get("prefix_exact"):
        matched = path == spec["prefix"]
    else:
        matched = path.startswith(spec["prefix"])
    for name, pattern in (spec.get("regex_headers") or {}).items():
        matched = matched and re.fullmatch(pattern, (headers or {}).get(name, "")) is not None
    return matched


def test_v2_pipelines_get_routes_for_the_open_inference_protocol_paths():
    plan = PLANS["seldon-join"]()
    assert any(r.protocol == "v2" for r in plan.routes)
    mappings = _kind(_render(PIPELINE_CHART, pipeline_values(plan)), "Mapping")
    name = plan.pipeline
    served = [f"/v2/pipelines/{name}/infer", f"/v2/models/{name}/infer",
              f"/v2/models/{name}.pipeline/infer", f"/v2/models/{name}",
              f"/v2/models/{name}/ready", f"/v2/models/{name}/versions/1/infer",
              "/v2", "/v2/health/live", "/v2/health/ready",
              f"/{plan.owner}/{plan.deployment}/runs/abc"]
    served += [r.url for r in plan.routes]
    for path in served:
        assert any(_matches(m, path) for m in mappings), path
    for path in (f"/v2/models/{name}x/infer", "/v2/models/other/infer", "/v2/repository"):
        assert not any(_matches(m, path) for m in mappings), path
    assert any(_matches(m, "/v2/models/any/infer", {"seldon-model": f"{name}.pipeline"})
               for m in mappings)
    assert all(m["spec"]["rewrite"] == "" for m in mappings)
    without_server = _kind(_render(PIPELINE_CHART, {**pipeline_values(plan), "mappings": {
        "runsPrefix": f"/{plan.owner}/{plan.deployment}/runs/", "v2": {"serverPaths": False}}}),
        "Mapping")
    assert not any(_matches(m, "/v2/health/live") for m in without_server)
    hello = _kind(_render(PIPELINE_CHART, pipeline_values(PLANS["hello"]())), "Mapping")
    assert not any(m["spec"]["prefix"].lstrip("^").startswith("/v2") for m in hello)


@needs_schemas
def test_the_gateways_grpc_port_is_served_routed_and_valid():
    """gateway.grpc.enabled: `--grpc-port`, a container and Service port named grpc (HTTP/2),
    an Emissary GRPC Mapping for the inference service; all pass the schemas."""
    values = {**services_values("shop-plan"),
              "gateway": {"grpc": {"enabled": True, "port": 9001, "servicePort": 9000}}}
    objects = _render(SERVICES_CHART, values)
    (gateway,) = _kind(objects, "StatefulSet")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--grpc-port") + 1] == "9001"
    assert args[1:3] == ["--plans-dir", "/etc/algorail/plans"]  # followed, as over REST
    assert {"name": "grpc", "containerPort": 9001, "protocol": "TCP"} in container["ports"]
    service = next(o for o in _kind(objects, "Service") if not o["spec"].get("clusterIP"))
    assert {"name": "grpc", "port": 9000, "targetPort": "grpc", "protocol": "TCP",
            "appProtocol": "kubernetes.io/h2c"} in service["spec"]["ports"]
    (policy,) = [o for o in _kind(objects, "NetworkPolicy") if "gateway" in o["metadata"]["name"]]
    assert {"port": 9001, "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]
    (grpc_mapping,) = [m for m in _kind(objects, "Mapping") if m["spec"].get("grpc")]
    assert grpc_mapping["spec"]["prefix"] == "/inference.GRPCInferenceService/"
    assert grpc_mapping["spec"]["rewrite"] == ""
    assert grpc_mapping["spec"]["service"] == f"{service['metadata']['name']}.pipelines:9000"
    for obj in (gateway, service, policy):
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    assert _crd_errors(_kind(objects, "Mapping")) == []
    default = _render(SERVICES_CHART, services_values("shop-plan"))
    assert "--grpc-port" not in _kind(default, "StatefulSet")[0]["spec"]["template"][
        "spec"]["containers"][0]["args"]
    assert not any(m["spec"].get("grpc") for m in _kind(default, "Mapping"))


# -- production defaults ------------------------------------------------------------------


def test_gateway_keeps_its_write_ahead_log_on_a_volume_per_replica():
    objects = _render(SERVICES_CHART, services_values("shop-plan"))
    (gateway,) = _kind(objects, "StatefulSet")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "wal"]
    assert env["ALGORAIL_WAL_DIR"] == mount["mountPath"]
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "wal"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    headless = next(s for s in _kind(objects, "Service") if s["spec"].get("clusterIP") == "None")
    assert gateway["spec"]["serviceName"] == headless["metadata"]["name"]
    (hpa,) = _kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    ephemeral = _kind(_render(SERVICES_CHART, {**services_values("shop-plan"), "gateway": {
        "wal": {"persistence": {"enabled": False}}}}), "StatefulSet")[0]
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert {"name": "wal", "emptyDir": {"sizeLimit": "1Gi"}} in ephemeral["spec"]["template"][
        "spec"]["volumes"]


def test_hook_dispatcher_has_probes_on_the_port_it_serves_healthz_on():
    objects = _render(SERVICES_CHART, services_values("shop-plan"))
    (hooks,) = _kind(objects, "Deployment")
    container = hooks["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert env["ALGORAIL_METRICS_PORT"] == str(port) and env["ALGORAIL_METRICS_HOST"] == "0.0.0.0"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def _egress_ports(policy: dict) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_network_policies_restrict_egress_and_who_may_connect():
    services = _render(SERVICES_CHART, services_values("shop-plan"))
    policies = {p["metadata"]["name"].rsplit("-", 1)[1]: p
                for p in _kind(services, "NetworkPolicy")}
    gateway, hooks = policies["gateway"], policies["hooks"]
    for policy in (gateway, hooks):
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["ingress"][0]["from"][0] == {"podSelector": {}}
    emissary = {"matchLabels": {"kubernetes.io/metadata.name": "emissary"}}
    assert {"namespaceSelector": emissary} in gateway["spec"]["ingress"][0]["from"]
    assert len(hooks["spec"]["ingress"][0]["from"]) == 1
    assert {53, 9092, 6379, 9000} <= _egress_ports(gateway)
    assert {53, 9092, 6379, 443} <= _egress_ports(hooks) and 9000 not in _egress_ports(hooks)
    assert gateway["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert hooks["spec"]["ingress"][0]["ports"] == [{"port": 9100, "protocol": "TCP"}]
    webhook = {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 8443}]}
    narrowed = _kind(_render(SERVICES_CHART, {**services_values("shop-plan"), "networkPolicy": {
        "egress": {"webhooks": [webhook]}}}), "NetworkPolicy")
    assert webhook in narrowed[1]["spec"]["egress"] and 443 not in _egress_ports(narrowed[1])

    plan = PLANS["hello"]()
    remote = plan.runners[0].model_copy(update={"runtime": "http", "url": "http://mlserver:8081/"})
    plan = plan.model_copy(update={"runners": [remote]})
    (runners,) = _kind(_render(PIPELINE_CHART, pipeline_values(plan)), "NetworkPolicy")
    assert runners["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert _egress_ports(runners) == {53, 9092, 8081}
    assert runners["spec"]["ingress"][0]["ports"] == [{"port": 9100, "protocol": "TCP"}]
    files = plan.routes[0].model_copy(update={"message_data_type": "fileReference"})
    plan = plan.model_copy(update={"routes": [files]})
    (runners,) = _kind(_render(PIPELINE_CHART, pipeline_values(plan)), "NetworkPolicy")
    assert _egress_ports(runners) == {53, 9092, 8081, 9000, 443}


def test_runners_have_their_own_service_account_and_a_disruption_budget(case):
    plan, pipeline, _ = case
    (account,) = _kind(pipeline, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    budgets = {b["metadata"]["name"]: b for b in _kind(pipeline, "PodDisruptionBudget")}
    for deployment in _kind(pipeline, "Deployment"):
        pod = deployment["spec"]["template"]
        assert pod["spec"]["serviceAccountName"] == account["metadata"]["name"]
        budget = budgets[deployment["metadata"]["name"]]
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items()
        assert budget["spec"]["maxUnavailable"] == 1
    assert len(budgets) == len([r for r in plan.runners if r.replicas > 0])


def _edited_hello(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """examples/hello.yaml with each (old, new) text replaced, written under tmp_path."""
    source = (EXAMPLES / "hello.yaml").read_text()
    for old, new in edits:
        assert old in source
        source = source.replace(old, new)
    (tmp_path / "hello.yaml").write_text(source)
    return tmp_path / "hello.yaml"


def test_topic_partitions_and_replication_factor_come_from_the_pipes(tmp_path):
    path = _edited_hello(tmp_path, ("    - {from: api.in, to: upper.text}",
                                    "    - {from: api.in, to: upper.text, partitions: 12, "
                                    "replicationFactor: 3}"))
    plan = compile_plan(load_pipeline(str(path)))
    topics = {t["spec"]["topicName"]: t["spec"]
              for t in _kind(_render(PIPELINE_CHART, pipeline_values(plan)), "KafkaTopic")}
    endpoint = plan.routes[0].topic
    assert (topics[endpoint]["partitions"], topics[endpoint]["replicas"]) == (12, 3)
    others = [spec for name, spec in topics.items() if name != endpoint]
    assert others and all((s["partitions"], s["replicas"]) == (3, 1) for s in others)


def test_pipes_from_one_output_must_agree_on_its_topic_settings(tmp_path):
    from algorail.errors import PipelineError

    sink = ("  dataSinks:\n    - {name: Archive, connector: jdbc, inputs: [{name: in}],\n"
            "       config: {url: 'postgresql://db:5432/shop', table: results}}\n")
    for archive, problem in ((4, "one-topic-setting"), (6, None)):
        path = _edited_hello(
            tmp_path,
            ("    - {from: upper.result, to: result}",
             "    - {from: upper.result, to: result, partitions: 6}\n" + sink),
            ("  pipes:\n",
             f"  pipes:\n    - {{from: upper.result, to: Archive.in, partitions: {archive}}}\n"))
        if problem is None:
            load_pipeline(str(path))
            continue
        with pytest.raises(PipelineError, match=problem) as err:
            load_pipeline(str(path))
        assert str(err.value).count("[") == 1, err.value  # that problem alone


def test_pipeline_labels_and_annotations_reach_every_object(tmp_path):
    path = _edited_hello(tmp_path, (
        "  version: 1.0.0\n",
        "  version: 1.0.0\n  labels: {team: search}\n  annotations: {example.com/owner: ana}\n"))
    plan = compile_plan(load_pipeline(str(path)))
    objects = _render(PIPELINE_CHART, {**pipeline_values(plan), "commonLabels": {"env": "prod"}})
    for obj in objects:
        assert obj["metadata"]["labels"]["team"] == "search", obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["env"] == "prod"
        assert obj["metadata"]["annotations"]["example.com/owner"] == "ana"


def test_a_pipeline_label_kubernetes_would_refuse_is_named():
    plan = PLANS["hello"]().model_copy(update={"labels": {"team": "search and rescue"}})
    with pytest.raises(RenderError, match=r"metadata\.labels\.team: .*metadata\.annotations"):
        _render(PIPELINE_CHART, pipeline_values(plan))


def test_the_plan_configmap_holds_no_path_of_this_machine(tmp_path):
    plan = compile_plan(load_pipeline(str(EXAMPLES / "hello.yaml")))
    assert plan.base_dir and plan.source_file  # the compiled plan knows where it came from
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    for values in (pipeline_values(plan), {**pipeline_values(plan),
                                           "plan": json.loads(plan_file.read_text())}):
        (config_map,) = [c for c in _kind(_render(PIPELINE_CHART, values), "ConfigMap")
                         if "plan.json" in c["data"]]
        text = config_map["data"]["plan.json"]
        assert str(EXAMPLES) not in text and "base_dir" not in text and "source_file" not in text
        Plan.model_validate_json(text)


COMMON_VALUES = {
    "commonLabels": {"env": "prod"},
    "podLabels": {"sidecar.istio.io/inject": "false"},
    "podAnnotations": {"example.com/scrape": "yes"},
    "priorityClassName": "algorail-high",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "updateStrategy": {"type": "RollingUpdate"},
    "extraVolumes": [{"name": "ca", "configMap": {"name": "ca-bundle"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/extra", "readOnly": True}],
    "extraEnvFrom": [{"configMapRef": {"name": "proxy-settings"}}],
    "sidecars": [{"name": "proxy", "image": "registry.example/proxy:1.2.3",
                  "resources": {"limits": {"cpu": "100m", "memory": "64Mi"},
                                "requests": {"cpu": "10m", "memory": "32Mi"}}}],
    "initContainers": [{"name": "wait", "image": "registry.example/wait:1.0.0"}],
    "readinessProbe": {"periodSeconds": 7},
}


def _with_common(block: str) -> dict:
    common = {k: v for k, v in COMMON_VALUES.items() if k != "commonLabels"}
    return {"commonLabels": COMMON_VALUES["commonLabels"], block: common,
            "serviceAccount": {"annotations": {"iam.example.com/role": "algorail"}}}


@pytest.mark.parametrize("chart, blocks", [(PIPELINE_CHART, ["runner"]),
                                           (SERVICES_CHART, ["gateway", "hooks"])])
def test_common_parameters_reach_the_pods(chart, blocks):
    base = pipeline_values(PLANS["hello"]()) if chart == PIPELINE_CHART else services_values("p")
    for block in blocks:
        objects = _render(chart, {**base, **_with_common(block)})
        (account,) = _kind(objects, "ServiceAccount")
        assert account["metadata"]["annotations"]["iam.example.com/role"] == "algorail"
        assert all(o["metadata"]["labels"]["env"] == "prod" for o in objects)
        components = (block, "runner")
        workloads = [o for o in objects if o["kind"] in WORKLOADS
                     and o["metadata"]["labels"]["app.kubernetes.io/component"] in components]
        assert workloads
        for workload in workloads:
            template = workload["spec"]["template"]
            pod = template["spec"]
            assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
            assert template["metadata"]["annotations"]["example.com/scrape"] == "yes"
            assert pod["priorityClassName"] == "algorail-high"
            (spread,) = pod["topologySpreadConstraints"]
            assert spread["labelSelector"]["matchLabels"].items() <= template["metadata"][
                "labels"].items()
            assert [c["name"] for c in pod["initContainers"]] == ["wait"]
            assert pod["containers"][-1]["name"] == "proxy"
            assert {"name": "ca", "configMap": {"name": "ca-bundle"}} in pod["volumes"]
            main = pod["containers"][0]
            assert {"configMapRef": {"name": "proxy-settings"}} in main["envFrom"]
            assert main["volumeMounts"][-1]["name"] == "ca"
            assert main["readinessProbe"]["periodSeconds"] == 7
            key = "updateStrategy" if workload["kind"] == "StatefulSet" else "strategy"
            assert workload["spec"][key] == {"type": "RollingUpdate"}
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(workload, version, strict=True)


# -- each chart's README and CHANGELOG --------------------------------------------------------


@pytest.mark.parametrize("chart", [SERVICES_CHART, PIPELINE_CHART])
def test_chart_readme_is_generated_from_the_param_lines(chart):
    from algorail.charts.readme import render_readme

    folder = chart_dir(chart)
    assert (folder / "README.md").read_text() == render_readme(folder), (
        "README.md is stale: run `python -m algorail.charts.readme`")
    values = yaml.safe_load((folder / "values.yaml").read_text())
    readme = (folder / "README.md").read_text()
    for leaf in _leaves(values):  # every value has a row (itself or the block it is in)
        parts = leaf.split(".")
        assert any(f"| `{'.'.join(parts[:n])}` |" in readme for n in range(1, len(parts) + 1)), leaf
    changelog = (folder / "CHANGELOG.md").read_text()
    version = yaml.safe_load((folder / "Chart.yaml").read_text())["version"]
    assert f"## {version}" in changelog
