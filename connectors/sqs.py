"""Amazon SQS source (an Event Flows subscription): queue messages into a pipeline.

Messages are deleted from the queue only after Kafka acknowledged them, so a crash lets
them reappear after their visibility timeout instead of losing them. On Kafka Connect
this is Nordstrom's kafka-connect-sqs source.
"""

from __future__ import annotations

import json
from typing import Any

from algorail.runtime.connect import (
    ConnectorConfigError,
    ConnectorUnavailable,
    SourceReader,
    SourceRecord,
)

from .base import (
    REFERENCE_SCHEMA,
    FirstPartyConnector,
    PluginArtifact,
    aws_client,
    check_url,
    config_schema,
    source_properties,
)

SQS_VERSION = "1.6.2"
SQS_PLUGIN = PluginArtifact(
    name="kafka-connect-sqs",
    artifacts=({"type": "jar", "url": (
        "https://github.com/Nordstrom/kafka-connect-sqs/releases/download/"
        f"kafka-connect-sqs-{SQS_VERSION}/kafka-connect-sqs-{SQS_VERSION}.jar")},),
    docs="https://github.com/Nordstrom/kafka-connect-sqs",
)


class SqsSource(FirstPartyConnector):
    name = "sqs"
    description = "Subscribes to an Amazon SQS queue: each message becomes one record."
    kinds = ("source",)
    connector_class = "com.nordstrom.kafka.connect.sqs.SqsSourceConnector"
    plugin = SQS_PLUGIN
    secret_keys = ("accessKeyId", "secretAccessKey")
    event_flow_type = "AmazonSQS"
    config_schema = config_schema(
        {
            "queueUrl": {"type": "string"},
            "region": {"type": "string"},
            "endpointUrl": {"type": "string"},
            "accessKeyId": REFERENCE_SCHEMA,
            "secretAccessKey": REFERENCE_SCHEMA,
            "maxMessages": {"type": "integer", "minimum": 1, "maximum": 10},
            "waitTimeSeconds": {"type": "integer", "minimum": 0, "maximum": 20},
        },
        ["queueUrl"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        problems = check_url(config["queueUrl"], "queueUrl", ("https", "http"))
        if "endpointUrl" in config:
            problems += check_url(config["endpointUrl"], "endpointUrl", ("https", "http"))
        return problems

    def event_flow_uri(self, config: dict[str, Any]) -> str:
        return config["queueUrl"]

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        return {
            **source_properties(connector),
            "topics": next(iter(connector.outputs.values())),
            "sqs.queue.url": config["queueUrl"],
            "sqs.region": config.get("region", "us-east-1"),
            "sqs.endpoint.url": config.get("endpointUrl"),
            "sqs.max.messages": config.get("maxMessages", 10),
            "sqs.wait.time.seconds": config.get("waitTimeSeconds", 1),
            "sqs.message.attributes.enabled": True,
            "sqs.access.key.id": config.get("accessKeyId"),
            "sqs.secret.access.key": config.get("secretAccessKey"),
        }

    def open_dev(self, connector: Any) -> Any:
        return SqsReader(connector.config)


class SqsReader(SourceReader):
    poll_interval_ms = 0  # receive_message waits itself (long polling)

    def __init__(self, config: dict[str, Any]):
        self.queue_url = config["queueUrl"]
        self.max_messages = config.get("maxMessages", 10)
        self.wait_s = config.get("waitTimeSeconds", 1)
        self.client = aws_client("sqs", config)

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.get_queue_attributes(QueueUrl=self.queue_url,
                                             AttributeNames=["QueueArn"])
        except (BotoCoreError, ClientError) as exc:
            raise ConnectorConfigError(
                f"cannot read queue {self.queue_url}: {exc}; check config.queueUrl, "
                "config.endpointUrl and the credentials"
            ) from None

    def poll(self) -> list[SourceRecord]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=self.max_messages,
                WaitTimeSeconds=self.wait_s, MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError) as exc:
            raise ConnectorUnavailable(str(exc)) from exc
        return [self._record(m) for m in answer.get("Messages", [])]

    @staticmethod
    def _record(message: dict[str, Any]) -> SourceRecord:
        body = message["Body"]
        try:
            value = json.loads(body)
        except ValueError:
            value = body
        attributes = {k: a["StringValue"] for k, a in message.get("MessageAttributes", {}).items()
                      if "StringValue" in a}
        return SourceRecord(value=value, key=message["MessageId"], headers=attributes,
                            token=message["ReceiptHandle"])

    def ack(self, records: list[SourceRecord]) -> None:
        for start in range(0, len(records), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r.token}
                       for i, r in enumerate(records[start:start + 10])]
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
