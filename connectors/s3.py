"""S3/MinIO sink: one JSON-lines object per topic partition per batch or time window.

Object keys follow the layout of Confluent's S3 sink, so the same bucket can be read the
same way in dev and on the cluster: ``PREFIX/TOPIC/partition=P/TOPIC+P+FIRSTOFFSET.json``.
A batch written again after a crash overwrites the same key instead of duplicating it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from algorail.runtime.connect import (
    ConnectorConfigError,
    ConnectorUnavailable,
    SinkRecord,
    SinkWriter,
)

from .base import (
    REFERENCE_SCHEMA,
    FirstPartyConnector,
    PluginArtifact,
    aws_client,
    check_url,
    config_schema,
    sink_properties,
)

S3_PLUGIN = PluginArtifact(
    name="kafka-connect-s3",
    artifacts=({"type": "maven", "group": "io.confluent", "artifact": "kafka-connect-s3",
                "version": "10.5.13", "repository": "https://packages.confluent.io/maven/"},),
    license="Confluent Community License",
    docs="https://docs.confluent.io/kafka-connectors/s3-sink/current/",
)


def object_key(prefix: str, topic: str, partition: int, first_offset: int) -> str:
    name = f"{topic}+{partition}+{first_offset:010d}.json"
    return f"{prefix.rstrip('/')}/{topic}/partition={partition}/{name}"


class S3Sink(FirstPartyConnector):
    name = "s3"
    description = "Writes JSON lines objects to an S3 or MinIO bucket, per batch or time window."
    kinds = ("sink",)
    connector_class = "io.confluent.connect.s3.S3SinkConnector"
    plugin = S3_PLUGIN
    secret_keys = ("accessKeyId", "secretAccessKey")
    config_schema = config_schema(
        {
            "bucket": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"},
            "prefix": {"type": "string"},
            "region": {"type": "string"},
            "endpointUrl": {"type": "string", "description": "MinIO or another S3 API"},
            "accessKeyId": REFERENCE_SCHEMA,
            "secretAccessKey": REFERENCE_SCHEMA,
            "flushSize": {"type": "integer", "minimum": 1},
            "rotateIntervalMs": {"type": "integer", "minimum": 1},
        },
        ["bucket"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        if "endpointUrl" in config:
            return check_url(config["endpointUrl"], "endpointUrl", ("http", "https"))
        return []

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        return {
            **sink_properties(connector),
            "s3.bucket.name": config["bucket"],
            "s3.region": config.get("region", "us-east-1"),
            "store.url": config.get("endpointUrl"),
            "aws.access.key.id": config.get("accessKeyId"),
            "aws.secret.access.key": config.get("secretAccessKey"),
            "topics.dir": config.get("prefix", "topics").rstrip("/"),
            "storage.class": "io.confluent.connect.s3.storage.S3Storage",
            "format.class": "io.confluent.connect.s3.format.json.JsonFormat",
            "partitioner.class": "io.confluent.connect.storage.partitioner.DefaultPartitioner",
            "flush.size": config.get("flushSize", 1000),
            "rotate.schedule.interval.ms": config.get("rotateIntervalMs", 60_000),
        }

    def open_dev(self, connector: Any) -> Any:
        return S3Writer(connector.config)


class S3Writer(SinkWriter):
    def __init__(self, config: dict[str, Any]):
        self.bucket = config["bucket"]
        self.prefix = config.get("prefix", "topics")
        self.flush_size = config.get("flushSize", 1000)
        self.flush_interval_ms = config.get("rotateIntervalMs", 60_000)
        self.client = aws_client("s3", config)

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchBucket"):
                raise ConnectorConfigError(
                    f"bucket {self.bucket!r} does not exist; create it first") from None
            raise ConnectorConfigError(f"cannot use bucket {self.bucket!r}: {exc}") from None
        except BotoCoreError as exc:
            raise ConnectorConfigError(
                f"cannot reach the object store: {exc}; check config.endpointUrl") from None

    def write(self, records: list[SinkRecord]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        batches: dict[tuple[str, int], list[SinkRecord]] = defaultdict(list)
        for record in records:
            batches[(record.topic, record.partition)].append(record)
        for (topic, partition), batch in batches.items():
            body = "".join(json.dumps(r.value, default=str) + "\n" for r in batch)
            key = object_key(self.prefix, topic, partition, batch[0].offset)
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode("utf-8"),
                                       ContentType="application/x-ndjson")
            except BotoCoreError as exc:
                raise ConnectorUnavailable(str(exc)) from exc
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status >= 500 or status == 429:
                    raise ConnectorUnavailable(str(exc)) from exc
                raise
