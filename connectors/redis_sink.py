"""Redis sink: each record becomes a stream entry, a hash, or a string key.

Keys are ``KEYSPACE`` (streams) or ``KEYSPACE:KEY`` (hashes, strings), where KEY is the
record's ``keyField`` value (or its run id). On Kafka Connect this is Redis Inc.'s
redis-kafka-connect sink, keyed the same way through a ValueToKey transform.
"""

from __future__ import annotations

import json
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
    check_url,
    config_schema,
    sink_properties,
)
from .secrets import resolve

REDIS_PLUGIN = PluginArtifact(
    name="redis-kafka-connect",
    artifacts=({"type": "maven", "group": "com.redis", "artifact": "redis-kafka-connect",
                "version": "0.9.1"},),
    docs="https://redis-field-engineering.github.io/redis-kafka-connect/",
)
TYPES = {"stream": "STREAM", "hash": "HASH", "string": "STRING"}


def flatten(value: Any) -> dict[str, str]:
    """A JSON object as string fields (hashes and streams hold strings)."""
    if not isinstance(value, dict):
        return {"value": json.dumps(value, default=str)}
    return {str(k): v if isinstance(v, str) else json.dumps(v, default=str)
            for k, v in value.items()}


class RedisSink(FirstPartyConnector):
    name = "redis"
    description = "Writes records to Redis as stream entries, hashes or JSON strings."
    kinds = ("sink",)
    connector_class = "com.redis.kafka.connect.RedisSinkConnector"
    plugin = REDIS_PLUGIN
    secret_keys = ("password",)
    config_schema = config_schema(
        {
            "url": {"type": "string", "description": "redis://HOST:PORT/DB, no password"},
            "password": REFERENCE_SCHEMA,
            "type": {"enum": list(TYPES)},
            "keyspace": {"type": "string", "minLength": 1},
            "keyField": {"type": "string", "minLength": 1},
            "separator": {"type": "string", "minLength": 1},
        },
        ["url", "keyspace"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        return check_url(config["url"], "url", ("redis", "rediss"))

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        props = {
            **sink_properties(connector),
            "redis.uri": config["url"],
            "redis.password": config.get("password"),
            "redis.type": TYPES[config.get("type", "stream")],
            "redis.keyspace": config["keyspace"],
            "redis.separator": config.get("separator", ":"),
        }
        if "keyField" in config:
            props |= {
                "transforms": "key,extract",
                "transforms.key.type": "org.apache.kafka.connect.transforms.ValueToKey",
                "transforms.key.fields": config["keyField"],
                "transforms.extract.type": "org.apache.kafka.connect.transforms.ExtractField$Key",
                "transforms.extract.field": config["keyField"],
            }
        return props

    def open_dev(self, connector: Any) -> Any:
        return RedisWriter(connector.config)


class RedisWriter(SinkWriter):
    def __init__(self, config: dict[str, Any]):
        import redis

        self.type = config.get("type", "stream")
        self.keyspace = config["keyspace"]
        self.key_field = config.get("keyField")
        self.separator = config.get("separator", ":")
        self.url = config["url"]
        self.client = redis.Redis.from_url(
            self.url, password=resolve(config.get("password")), socket_timeout=5,
            socket_connect_timeout=5,
        )

    def check(self) -> None:
        import redis

        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ConnectorConfigError(
                f"cannot use Redis at {self.url}: {exc}; check config.url and config.password"
            ) from None

    def key(self, record: SinkRecord) -> str:
        value = record.value
        if self.key_field is not None:
            if not isinstance(value, dict) or value.get(self.key_field) is None:
                raise ValueError(f"the record has no field {self.key_field!r} for its key")
            return f"{self.keyspace}{self.separator}{value[self.key_field]}"
        return f"{self.keyspace}{self.separator}{record.envelope.run_id}"

    def write(self, records: list[SinkRecord]) -> None:
        import redis

        pipe = self.client.pipeline(transaction=False)
        for record in records:
            if self.type == "stream":
                pipe.xadd(self.keyspace, flatten(record.value))
            elif self.type == "hash":
                pipe.hset(self.key(record), mapping=flatten(record.value))
            else:
                pipe.set(self.key(record), json.dumps(record.value, default=str))
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            raise ConnectorUnavailable(str(exc)) from exc

    def close(self) -> None:
        self.client.close()
