"""External Kafka (Algorithmia Event Flows): subscribe to, or publish to, a topic on a
broker connection defined once for the cluster (`algorail.connections`).

A ``kafka`` data source copies an external topic into the pipeline; a ``kafka`` data sink
publishes what reaches it to an external topic, headers included. On Kafka Connect both
are MirrorMaker 2 source connectors (shipped with Kafka, no extra plugin) with a
RegexRouter that renames the topic.
"""

from __future__ import annotations

import re
from typing import Any

from algorail.connections import ConnectionsError, get_connection, load_connections
from algorail.runtime import codec, kafka_io
from algorail.runtime.codec import RUN_ID, Envelope
from algorail.runtime.connect import (
    ConnectorConfigError,
    ConnectorUnavailable,
    SinkRecord,
    SinkWriter,
    SourceReader,
    SourceRecord,
)

from .base import (
    BYTES_CONVERTER,
    REGEX_ROUTER,
    FirstPartyConnector,
    config_schema,
    source_properties,
)

INTERNAL_ALIAS = "algorail"
INTERNAL_BOOTSTRAP = "${env:ALGORAIL_BOOTSTRAP_SERVERS}"
MIRROR_SETTINGS = {
    "replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
    "sync.topic.configs.enabled": False,
    "sync.topic.acls.enabled": False,
    "offset-syncs.topic.location": "target",
    "key.converter": BYTES_CONVERTER,
    "value.converter": BYTES_CONVERTER,
    "header.converter": BYTES_CONVERTER,
}


class KafkaBridge(FirstPartyConnector):
    name = "kafka"
    description = "Subscribes to or publishes to a topic on a named external Kafka connection."
    connector_class = "org.apache.kafka.connect.mirror.MirrorSourceConnector"
    event_flow_type = "Kafka"
    config_schema = config_schema(
        {
            "connection": {"type": "string", "minLength": 1},
            "topic": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,249}$"},
            "group": {"type": "string", "minLength": 1},
        },
        ["connection", "topic"],
    )

    def validate(self, component: Any, pipeline: Any) -> list[str]:
        problems = super().validate(component, pipeline)
        if problems:
            return problems
        try:  # checked here when the cluster's connections file is known, else at connect
            connection = load_connections().get(component.config["connection"])
        except ConnectionsError as exc:
            return [str(exc)]
        if connection is not None:
            reason = connection.permits(pipeline.owner, component.config["topic"])
            return [reason] if reason else []
        return []

    def event_flow_uri(self, config: dict[str, Any]) -> str:
        return f"kafka://{config['connection']}/{config['topic']}"

    def properties(self, connector: Any) -> dict[str, Any]:
        connection = get_connection(connector.config["connection"])
        topic = connector.config["topic"]
        if connector.kind == "source":
            props = source_properties(connector, BYTES_CONVERTER, route_from=re.escape(topic))
            return {
                **props, **MIRROR_SETTINGS,
                "source.cluster.alias": connection.name,
                "target.cluster.alias": INTERNAL_ALIAS,
                **connection.connect_properties("source.cluster."),
                "target.cluster.bootstrap.servers": INTERNAL_BOOTSTRAP,
                "topics": topic,
            }
        inputs = list(dict.fromkeys(i.topic for i in connector.inputs))
        return {
            **MIRROR_SETTINGS,
            "source.cluster.alias": INTERNAL_ALIAS,
            "target.cluster.alias": connection.name,
            "source.cluster.bootstrap.servers": INTERNAL_BOOTSTRAP,
            **connection.connect_properties("target.cluster."),
            **connection.connect_properties("producer.override."),
            "topics": ",".join(inputs),
            "transforms": "route",
            "transforms.route.type": REGEX_ROUTER,
            "transforms.route.regex": "|".join(re.escape(t) for t in inputs),
            "transforms.route.replacement": topic,
        }

    def open_dev(self, connector: Any) -> Any:
        connection = get_connection(connector.config["connection"])
        if connector.kind == "source":
            return KafkaSubscriber(connection, connector.config, connector.consumer_group)
        return KafkaPublisher(connection, connector.config)


def _require_topic(connection: Any, topic: str) -> None:
    """Raise a clear error when the connection is unreachable or lacks the topic."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(**connection.client_settings())
        try:
            topics = consumer.topics()
        finally:
            kafka_io.close_consumer(consumer)
    except KafkaError as exc:
        raise ConnectorConfigError(
            f"cannot reach connection {connection.name!r} "
            f"({connection.bootstrap_servers}): {exc}") from None
    if topic not in topics:
        raise ConnectorConfigError(
            f"topic {topic!r} does not exist on connection {connection.name!r} "
            f"({connection.bootstrap_servers}); create it there first"
        )


class KafkaSubscriber(SourceReader):
    """Consumes the external topic; commits there only after the records are in Kafka."""

    poll_interval_ms = 0

    def __init__(self, connection: Any, config: dict[str, Any], group: str):
        self.connection = connection
        self.topic = config["topic"]
        self.group = config.get("group", group)
        self.consumer: Any = None

    def check(self) -> None:
        from kafka import KafkaConsumer

        _require_topic(self.connection, self.topic)
        self.consumer = KafkaConsumer(
            self.topic, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
            **self.connection.client_settings(),
        )

    def poll(self) -> list[SourceRecord]:
        records = []
        for tp, messages in self.consumer.poll(timeout_ms=500).items():
            for m in messages:
                headers = dict(m.headers or [])
                envelope = Envelope.from_headers(m.headers)
                records.append(SourceRecord(
                    value=m.value or b"", key=m.key, token=(tp, m.offset),
                    run_id=envelope.run_id if RUN_ID in headers else None,
                ))
        return records

    def ack(self, records: list[SourceRecord]) -> None:
        from kafka.structs import OffsetAndMetadata

        last: dict[Any, int] = {}
        for record in records:
            tp, offset = record.token
            last[tp] = max(offset, last.get(tp, -1))
        self.consumer.commit({tp: OffsetAndMetadata(o + 1, "", -1) for tp, o in last.items()})

    def close(self) -> None:
        if self.consumer is not None:
            kafka_io.close_consumer(self.consumer)


class KafkaPublisher(SinkWriter):
    """Produces each record to the external topic with its headers, acks=all."""

    flush_interval_ms = 50

    def __init__(self, connection: Any, config: dict[str, Any]):
        self.connection = connection
        self.topic = config["topic"]
        self.producer: Any = None

    def check(self) -> None:
        from kafka import KafkaProducer

        _require_topic(self.connection, self.topic)
        self.producer = KafkaProducer(acks="all", **self.connection.client_settings())

    def write(self, records: list[SinkRecord]) -> None:
        from kafka.errors import KafkaError

        try:
            futures = [self.producer.send(self.topic, key=r.key, headers=r.envelope.to_headers(),
                                          value=codec.encode(r.value, r.envelope.content_type))
                       for r in records]
            self.producer.flush(timeout=10)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise ConnectorUnavailable(f"publishing to {self.connection.name!r}: {exc}") from exc

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=5)
