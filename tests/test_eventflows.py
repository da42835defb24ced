"""Event Flows: external Kafka connections (a second real broker plays the partner's
cluster), subscribe and publish through `kafka` data sources and sinks, and
`algorail eventflows` listing the flows per owner."""

from __future__ import annotations

import json

import pytest
import test_connectors_sql
import yaml
from click.testing import CliRunner
from test_connectors_sql import make_plan, produce, read_topic

from algorail.cli import cli
from algorail.runtime import kafka_io
from algorail.runtime.broker import EmbeddedBroker
from algorail.runtime.connect import ConnectorConfigError, open_connector

services = test_connectors_sql.services  # connectors and runners on threads


@pytest.fixture(scope="module")
def partner():
    with EmbeddedBroker() as broker:
        kafka_io.ensure_topics(broker.bootstrap_servers, ["orders", "scores"])
        yield broker


@pytest.fixture
def connections(tmp_path, partner, monkeypatch):
    path = tmp_path / "connections.yaml"
    path.write_text(yaml.safe_dump({"connections": {"partner": {
        "bootstrapServers": partner.bootstrap_servers, "owners": ["conn6"]}}}))
    monkeypatch.setenv("ALGORAIL_CONNECTIONS_FILE", str(path))
    return path


def test_subscribe_and_publish_through_an_external_kafka(connections, partner, services,
                                                          module_broker, tmp_path):
    plan = make_plan(
        tmp_path,
        sources=[{"name": "orders", "connector": "kafka",
                  "config": {"connection": "partner", "topic": "orders"}}],
        sinks=[{"name": "scores", "connector": "kafka",
                "config": {"connection": "partner", "topic": "scores"}}],
    )
    kafka_io.ensure_topics(module_broker.bootstrap_servers, plan.created_topics())
    services.connector(plan, "orders")
    services.runner(plan, "score")
    services.connector(plan, "scores")
    produce(partner.bootstrap_servers, "orders",
            [{"id": i, "name": n} for i, n in enumerate(["ada", "bob"])], "partner")
    published = read_topic(partner.bootstrap_servers, "scores", 2, timeout=40)
    assert sorted(json.loads(m.value)["name"] for m in published) == ["ADA", "BOB"]
    inbound = read_topic(module_broker.bootstrap_servers, plan.connectors[0].outputs["out"], 2)
    # the run id the partner sent travels in, through the algo, and back out
    assert {dict(m.headers)["algorail-run-id"] for m in inbound} == {
        dict(m.headers)["algorail-run-id"] for m in published}


def test_unknown_topic_or_connection_is_a_clear_error(connections, tmp_path):
    plan = make_plan(tmp_path, sinks=[
        {"name": "a", "connector": "kafka", "config": {"connection": "partner", "topic": "nope"}},
        {"name": "b", "connector": "kafka", "config": {"connection": "other", "topic": "x"}}])
    _, _, publisher = open_connector(plan, "a")
    with pytest.raises(ConnectorConfigError, match="topic 'nope' does not exist on connection"):
        publisher.check()
    with pytest.raises(Exception, match="no connection named 'other'.*defined: partner"):
        open_connector(plan, "b")


def test_eventflows_lists_flows_per_owner(connections, tmp_path):
    plan = make_plan(
        tmp_path,
        sources=[{"name": "queue", "connector": "sqs", "config": {
            "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1234/orders"}}],
        sinks=[{"name": "scores", "connector": "kafka",
                "config": {"connection": "partner", "topic": "scores"}},
               {"name": "db", "connector": "jdbc",
                "config": {"url": "postgresql://db/x", "table": "t"}}],
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    result = CliRunner().invoke(cli, ["eventflows", str(plan_file), "--json"])
    assert result.exit_code == 0, result.output
    flows = json.loads(result.output)["conn6"]
    assert [(f["component"], f["direction"], f["source_type"], f["uri"], f["algos"])
            for f in flows] == [
        ("queue", "subscribe", "AmazonSQS", "https://sqs.eu-west-1.amazonaws.com/1234/orders",
         ["score"]),
        ("scores", "publish", "Kafka", "kafka://partner/scores", ["score"]),
    ]
    text = CliRunner().invoke(cli, ["eventflows", str(tmp_path / "shop.yaml")]).output
    assert text.startswith("conn6:\n  shop/queue: subscribe AmazonSQS https://sqs.")
    none = CliRunner().invoke(cli, ["eventflows", str(plan_file), "--owner", "bob"]).output
    assert none == "no event flows\n"
