"""What algorail's own connectors share: config checks, Kafka Connect config pieces and the
worker plugin each one needs.

Every first-party connector accepts two extra keys: ``tasksMax`` (Kafka Connect tasks)
and ``kafkaConnect`` (raw Kafka Connect properties merged last, for settings algorail
does not model; credentials there must be references too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from algorail.extensions import Connector, schema_problems
from algorail.runtime.connect import ConnectorConfigError

from .secrets import REFERENCE_HINT, is_reference, resolve, secret_problems
from .secrets import REFERENCE_SCHEMA as REFERENCE_SCHEMA  # for the connector modules

JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"
BYTES_CONVERTER = "org.apache.kafka.connect.converters.ByteArrayConverter"
REGEX_ROUTER = "org.apache.kafka.connect.transforms.RegexRouter"
INSERT_HEADER = "org.apache.kafka.connect.transforms.InsertHeader"
SECRET_KEY_RE = re.compile(
    r"password$|secret|token$|sas\.key$|headers\.authorization$|jaas\.config$", re.I)

COMMON_PROPERTIES: dict[str, Any] = {
    "tasksMax": {"type": "integer", "minimum": 1},
    "kafkaConnect": {
        "type": "object",
        "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
    },
}


def config_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """An object schema with the common keys; unknown keys are rejected."""
    return {
        "type": "object",
        "properties": {**properties, **COMMON_PROPERTIES},
        "required": required,
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class PluginArtifact:
    """A Kafka Connect worker plugin, as a Strimzi ``KafkaConnect`` ``spec.build.plugins``
    entry. ``artifacts`` use Strimzi's artifact types (maven, jar, zip, tgz)."""

    name: str
    artifacts: tuple[dict[str, str], ...]
    license: str = "Apache-2.0"
    docs: str = ""

    def strimzi(self) -> dict[str, Any]:
        return {"name": self.name, "artifacts": [dict(a) for a in self.artifacts]}


class FirstPartyConnector(Connector):
    """Adds to `Connector`: credential checks, ``plugin`` for the worker image, and the
    shared pieces of a Kafka Connect config."""

    secret_keys: ClassVar[tuple[str, ...]] = ()
    plugin: ClassVar[PluginArtifact | None] = None

    def validate(self, component: Any, pipeline: Any) -> list[str]:
        kind = "source" if hasattr(component, "outputs") else "sink"
        if kind not in self.kinds:
            return super().validate(component, pipeline)
        return self.config_problems(component.config)

    def config_problems(self, config: dict[str, Any]) -> list[str]:
        """Every problem with a config, as sentences naming the key."""
        problems = schema_problems(self.config_schema, config, "config")
        problems += secret_problems(config, self.secret_keys)
        for key, value in (config.get("kafkaConnect") or {}).items():
            if SECRET_KEY_RE.search(key) and not is_reference(value):
                problems.append(f"config.kafkaConnect.{key}: {REFERENCE_HINT}")
        if not problems:
            problems += self.check_config(config)
        return problems

    def check_config(self, config: dict[str, Any]) -> list[str]:
        """Rules a JSON Schema cannot say; called once the schema passes."""
        return []

    def kafka_connect_config(self, connector: Any) -> dict[str, str]:
        props = {
            "connector.class": self.connector_class,
            "tasks.max": connector.config.get("tasksMax", 1),
            **self.properties(connector),
            **(connector.config.get("kafkaConnect") or {}),
        }
        return {k: _string(v) for k, v in props.items() if v is not None}

    def properties(self, connector: Any) -> dict[str, Any]:
        """This connector's Kafka Connect properties (class and tasks are added for it)."""
        raise NotImplementedError


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sink_properties(connector: Any, value_converter: str = JSON_CONVERTER) -> dict[str, Any]:
    """Topics, converters and the dead-letter topic every sink shares."""
    props: dict[str, Any] = {
        "topics": ",".join(dict.fromkeys(i.topic for i in connector.inputs)),
        "key.converter": STRING_CONVERTER,
        "value.converter": value_converter,
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": connector.dead_letter_topic,
        "errors.deadletterqueue.context.headers.enable": True,
    }
    if value_converter == JSON_CONVERTER:
        props["value.converter.schemas.enable"] = False
    return props


def source_properties(connector: Any, value_converter: str = JSON_CONVERTER,
                      route_from: str | None = None) -> dict[str, Any]:
    """Converters, the algorail-source header, and (with `route_from`, a regex of the topic
    names the connector writes to) a RegexRouter onto the source's output topic."""
    port, topic = next(iter(connector.outputs.items()))
    props: dict[str, Any] = {
        "key.converter": STRING_CONVERTER,
        "value.converter": value_converter,
    }
    if value_converter == JSON_CONVERTER:
        props["value.converter.schemas.enable"] = False
    transforms = []
    if route_from is not None:
        transforms.append("route")
        props |= {"transforms.route.type": REGEX_ROUTER, "transforms.route.regex": route_from,
                  "transforms.route.replacement": topic}
    transforms.append("source")
    props |= {"transforms.source.type": INSERT_HEADER,
              "transforms.source.header": "algorail-source",
              "transforms.source.value.literal": connector.output_sources[port]}
    props["transforms"] = ",".join(transforms)
    return props


def check_url(url: str, key: str, schemes: tuple[str, ...]) -> list[str]:
    """A URL with one of `schemes`, a host, and no password in it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return [f"config.{key}: {url!r} is not a valid URL ({exc})"]
    if parts.scheme not in schemes:
        return [f"config.{key}: {url!r} must start with " + " or ".join(f"{s}://" for s in schemes)]
    if not parts.hostname:
        return [f"config.{key}: {url!r} has no host"]
    if parts.password:
        return [f"config.{key}: the URL holds a password; remove it and set config.password: "
                + REFERENCE_HINT]
    return []


def require(problems: list[str]) -> None:
    if problems:
        raise ConnectorConfigError("; ".join(problems))


def aws_client(service: str, config: dict[str, Any]) -> Any:
    """A boto3 client for S3 or SQS from a connector's config (endpoint, region, keys)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=config.get("endpointUrl"),
        region_name=config.get("region", "us-east-1"),
        aws_access_key_id=resolve(config.get("accessKeyId")),
        aws_secret_access_key=resolve(config.get("secretAccessKey")),
    )
