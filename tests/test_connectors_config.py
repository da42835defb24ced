"""Connector configs: validation errors a user sees, and the Kafka Connect configs and
Strimzi resources rendered for each connector, checked against the keys each connector's
own documentation marks as required."""

from __future__ import annotations

import json
import re

import pytest
from crd_schemas import MISSING, ROOT, SCHEMAS, crd_validator

from algorail import kafka_connect
from algorail.compiler import compile_plan
from algorail.errors import PipelineError
from algorail.graph import check_pipeline
from algorail.spec import parse_pipeline

PASSWORD_REF = "${secrets:algorail/db:password}"

# Required keys from each connector's documentation (see docs/connectors.md for links).
REQUIRED_KEYS = {
    "io.confluent.connect.jdbc.JdbcSinkConnector": [
        "connection.url", "topics", "insert.mode", "table.name.format", "pk.mode"],
    "io.confluent.connect.jdbc.JdbcSourceConnector": [
        "connection.url", "mode", "incrementing.column.name", "topic.prefix", "table.whitelist"],
    "io.debezium.connector.postgresql.PostgresConnector": [
        "database.hostname", "database.port", "database.user", "database.password",
        "database.dbname", "topic.prefix", "plugin.name"],
    "io.confluent.connect.s3.S3SinkConnector": [
        "s3.bucket.name", "s3.region", "storage.class", "format.class", "flush.size", "topics"],
    "com.redis.kafka.connect.RedisSinkConnector": ["redis.uri", "redis.type", "topics"],
    "io.aiven.kafka.connect.http.HttpSinkConnector": [
        "http.url", "http.authorization.type", "topics"],
    "org.apache.kafka.connect.mirror.MirrorSourceConnector": [
        "source.cluster.alias", "target.cluster.alias", "source.cluster.bootstrap.servers",
        "target.cluster.bootstrap.servers", "topics"],
    "com.nordstrom.kafka.connect.sqs.SqsSourceConnector": ["sqs.queue.url", "topics"],
    "io.confluent.connect.azure.servicebus.ServiceBusSourceConnector": [
        "kafka.topic", "azure.servicebus.namespace", "azure.servicebus.entity.name",
        "azure.servicebus.sas.keyname", "azure.servicebus.sas.key",
        "confluent.topic.bootstrap.servers"],
}
SOURCES = {
    "jdbc-source": {"url": "postgresql://app@db:5432/shop", "password": PASSWORD_REF,
                    "table": "orders", "incrementingColumn": "id"},
    "postgres-cdc": {"url": "postgresql://app@db:5432/shop", "password": PASSWORD_REF,
                     "tables": ["public.orders"]},
    "kafka": {"connection": "partner", "topic": "orders"},
    "sqs": {"queueUrl": "https://sqs.us-east-1.amazonaws.com/123/orders",
            "accessKeyId": "${env:AWS_KEY}", "secretAccessKey": "${env:AWS_SECRET}"},
    "servicebus": {"namespace": "shop-bus", "entity": "orders", "sasKeyName": "listen",
                   "sasKey": "${secrets:algorail/bus:key}"},
}
SINKS = {
    "jdbc": {"url": "mysql://app@db:3306/shop", "password": PASSWORD_REF, "table": "scores",
             "insertMode": "upsert", "pkFields": ["id"]},
    "s3": {"bucket": "scores", "endpointUrl": "http://minio:9000",
           "accessKeyId": "${secrets:algorail/minio:access}",
           "secretAccessKey": "${secrets:algorail/minio:secret}"},
    "redis": {"url": "redis://redis:6379/0", "password": "${env:REDIS_PASSWORD}",
              "type": "hash", "keyspace": "scores", "keyField": "id"},
    "http": {"url": "https://hooks.example/scores", "authorization": "${env:HOOK_TOKEN}"},
    "kafka": {"connection": "partner", "topic": "scores"},
}
SECRET_KEY = re.compile(r"password$|secret|sas\.key$|headers\.authorization$|jaas\.config$")


def pipeline(sources=(), sinks=()):
    doc = {
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "alice", "name": "shop"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "algos": [{"name": "score", "runtime": "exec", "command": ["cat"]}],
            "dataSources": [{"name": f"in-{n}", "connector": n, "config": c} for n, c in sources],
            "dataSinks": [{"name": f"out-{n}", "connector": n, "config": c} for n, c in sinks],
            "pipes": [{"from": f"in-{sources[0][0]}.out" if sources else "api.in",
                       "to": "score.in"}]
            + [{"from": "score.out", "to": f"out-{n}"} for n, _ in sinks],
        },
    }
    return parse_pipeline(doc, file="shop.yaml")


def problems_of(sources=(), sinks=()):
    return [str(p) for p in check_pipeline(pipeline(sources, sinks))]


@pytest.fixture
def connections_file(tmp_path, monkeypatch):
    path = tmp_path / "connections.yaml"
    path.write_text(
        "connections:\n"
        "  partner:\n"
        "    bootstrapServers: kafka.partner.example:9093\n"
        "    securityProtocol: SASL_SSL\n"
        "    saslMechanism: SCRAM-SHA-512\n"
        "    username: algorail\n"
        "    password: ${secrets:algorail/partner:password}\n"
        "    owners: [alice]\n"
    )
    monkeypatch.setenv("ALGORAIL_CONNECTIONS_FILE", str(path))
    return path


@pytest.mark.parametrize("kind,name",
                         [("source", n) for n in SOURCES] + [("sink", n) for n in SINKS])
def test_rendered_config_has_the_documented_required_keys(kind, name, connections_file):
    config = SOURCES[name] if kind == "source" else SINKS[name]
    entry = [(name, config)]
    pipe = pipeline(sources=entry) if kind == "source" else pipeline(sinks=entry)
    assert check_pipeline(pipe) == []
    plan = compile_plan(pipe)
    cp = plan.connectors[0]
    rendered = kafka_connect.render_config(plan, cp)
    required = ["connector.class", "tasks.max", *REQUIRED_KEYS[rendered["connector.class"]]]
    missing = [k for k in required if not rendered.get(k)]
    assert missing == [], f"{name}: {missing} missing from {rendered}"
    assert all(isinstance(v, str) for v in rendered.values())
    for key, value in rendered.items():
        if SECRET_KEY.search(key):
            assert "${" in value, f"{name}: {key} holds an inline secret: {value}"
    topics = rendered.get("topics", rendered.get("kafka.topic", ""))
    if kind == "sink":
        assert topics == "alice.shop.score.out"
        if "Sink" in rendered["connector.class"]:  # MirrorMaker publishes with a source
            assert rendered["errors.deadletterqueue.topic.name"] == cp.dead_letter_topic
    elif "transforms.route.replacement" in rendered:
        assert rendered["transforms.route.replacement"] == cp.outputs["out"]
    else:
        assert topics == cp.outputs["out"]


def test_strimzi_kafka_connector_resource(connections_file):
    plan = compile_plan(pipeline(sources=[("jdbc-source", SOURCES["jdbc-source"])],
                                 sinks=[("s3", SINKS["s3"])]))
    resources = kafka_connect.kafka_connector_resources(plan, cluster="my-connect",
                                                        namespace="shop")
    assert [r["metadata"]["name"] for r in resources] == ["alice.shop.in-jdbc-source",
                                                          "alice.shop.out-s3"]
    source = resources[0]
    assert source["apiVersion"] == "kafka.strimzi.io/v1"
    assert source["kind"] == "KafkaConnector"
    assert source["metadata"]["labels"]["strimzi.io/cluster"] == "my-connect"
    assert source["metadata"]["namespace"] == "shop"
    assert source["spec"]["class"] == "io.confluent.connect.jdbc.JdbcSourceConnector"
    assert source["spec"]["tasksMax"] == 1
    assert "connector.class" not in source["spec"]["config"]
    assert source["spec"]["config"]["connection.password"] == PASSWORD_REF


# Where each Strimzi API version's CRDs are in ../shared/schemas: the release serving it.
CRD_RELEASES = {"kafka.strimzi.io/v1": "strimzi-1.2.0",
                "kafka.strimzi.io/v1beta2": "strimzi-0.48.0"}


def _crd_errors(resource: dict, crd_file: str) -> list[str]:
    if SCHEMAS is None:
        pytest.skip(MISSING)
    path = SCHEMAS / CRD_RELEASES[resource["apiVersion"]] / crd_file
    validator = crd_validator(path, resource["apiVersion"], resource["kind"])
    body = {k: v for k, v in resource.items() if k != "metadata"}
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(body)]


def test_every_supported_strimzi_api_has_its_crds():
    assert set(CRD_RELEASES) == set(kafka_connect.STRIMZI_API_VERSIONS)
    assert kafka_connect.STRIMZI_API_VERSION == "kafka.strimzi.io/v1"


def test_the_charts_offer_the_same_strimzi_apis():
    schema = json.loads((ROOT / "charts/algorail-pipeline/values.schema.json").read_text())
    for key in ("topics", "connect"):
        api = schema["properties"][key]["properties"]["apiVersion"]
        assert (api["default"], api["enum"]) == (kafka_connect.STRIMZI_API_VERSION,
                                                 list(kafka_connect.STRIMZI_API_VERSIONS))


@pytest.mark.parametrize("api_version", kafka_connect.STRIMZI_API_VERSIONS)
def test_kafka_connectors_pass_the_upstream_crd(api_version, connections_file):
    for kind, connectors in (("source", SOURCES), ("sink", SINKS)):
        for name, config in connectors.items():
            cps = {"sources": [(name, config)]} if kind == "source" else {"sinks": [(name, config)]}
            plan = compile_plan(pipeline(**cps))
            (resource,) = kafka_connect.kafka_connector_resources(plan, api_version=api_version)
            assert resource["apiVersion"] == api_version
            assert _crd_errors(resource, "047-Crd-kafkaconnector.yaml") == [], (kind, name)


@pytest.mark.parametrize("api_version", kafka_connect.STRIMZI_API_VERSIONS)
def test_kafka_connect_spec_passes_the_upstream_crd(api_version):
    spec = {"replicas": 1, "bootstrapServers": "algorail-kafka-bootstrap:9092",
            **kafka_connect.worker_group("shop-connect", api_version),
            "build": kafka_connect.kafka_connect_build("reg.local/connect:1", "push")}
    resource = {"apiVersion": api_version, "kind": "KafkaConnect", "spec": spec}
    assert _crd_errors(resource, "041-Crd-kafkaconnect.yaml") == []
    config = spec["config"]
    if api_version.endswith("/v1"):
        assert spec["groupId"] == "shop-connect-cluster" and "group.id" not in config
    else:
        assert config["group.id"] == "shop-connect-cluster" and "groupId" not in spec
    assert config["config.providers"] == kafka_connect.worker_config()["config.providers"]


def test_build_plugins_list_each_artifact_once():
    plugins = kafka_connect.connect_build_plugins()
    names = [p["name"] for p in plugins]
    assert len(names) == len(set(names))
    assert {"kafka-connect-jdbc", "debezium-connector-postgres", "kafka-connect-s3",
            "redis-kafka-connect", "kafka-connect-sqs"} <= set(names)
    for plugin in plugins:
        for artifact in plugin["artifacts"]:
            assert artifact["type"] in {"maven", "jar", "zip", "tgz"}
            assert ("version" in artifact) if artifact["type"] == "maven" else artifact["url"]
    jdbc_only = kafka_connect.connect_build_plugins(["jdbc", "jdbc-source", "kafka"])
    assert [p["name"] for p in jdbc_only] == ["kafka-connect-jdbc"]
    assert "KubernetesSecretConfigProvider" in kafka_connect.worker_config()[
        "config.providers.secrets.class"]


@pytest.mark.parametrize("name,config,expected", [
    ("jdbc", {"url": "postgresql://app@db/shop", "table": "t", "password": "hunter2"},
     "config.password: an inline secret is not allowed"),
    ("jdbc", {"url": "postgresql://app:hunter2@db/shop", "table": "t"},
     "config.url: the URL holds a password"),
    ("jdbc", {"url": "oracle://db/shop", "table": "t"}, "must start with postgresql://"),
    ("jdbc", {"url": "postgresql://db/shop"}, "'table' is a required property"),
    ("jdbc", {"url": "postgresql://db/shop", "table": "t", "insertMode": "upsert"},
     "config.pkFields: upsert needs"),
    ("jdbc", {"url": "postgresql://db/shop", "table": "t", "columns": {"id": "int"}},
     "config.columns.id: 'int' is not one of"),
    ("redis", {"url": "redis://:secret@r:6379", "keyspace": "k"}, "the URL holds a password"),
    ("http", {"url": "ftp://x"}, "config.url: 'ftp://x' must start with http://"),
    ("http", {"url": "https://x", "headers": {"Authorization": "Bearer abc"}},
     "config.headers.Authorization: use config.authorization"),
    ("s3", {"bucket": "b", "kafkaConnect": {"aws.secret.access.key": "abc"}},
     "config.kafkaConnect.aws.secret.access.key"),
    ("s3", {"bucket": "b", "flushsize": 3}, "Additional properties are not allowed"),
])
def test_bad_sink_configs_name_the_key_and_the_fix(name, config, expected):
    problems = problems_of(sinks=[(name, config)])
    assert any(expected in p and "data sink 'out-" in p for p in problems), problems


def test_a_source_only_connector_cannot_be_a_sink():
    problems = problems_of(sinks=[("sqs", SOURCES["sqs"])])
    assert any("cannot be a data sink" in p for p in problems), problems


def test_kafka_connection_owner_is_enforced(connections_file):
    connections_file.write_text(connections_file.read_text().replace("[alice]", "[bob]"))
    problems = problems_of(sources=[("kafka", SOURCES["kafka"])])
    assert any("not open to owner 'alice'" in p for p in problems), problems


def test_unknown_connection_is_a_clear_error_when_rendering(connections_file):
    plan = compile_plan(pipeline(sinks=[("kafka", {"connection": "nope", "topic": "t"})]))
    with pytest.raises(Exception, match="no connection named 'nope'.*defined: partner"):
        kafka_connect.render_plan(plan)


def test_pipeline_error_lists_every_problem():
    with pytest.raises(PipelineError) as info:
        from algorail.graph import check_pipeline as check

        problems = check(pipeline(sinks=[("jdbc", {"url": "x://", "table": "t"}),
                                         ("s3", {"bucket": "B"})]))
        raise PipelineError(problems)
    assert len(info.value.problems) == 2
