"""HTTP sink: POSTs each record (or each batch, as a JSON array) to a URL.

A refused connection, a timeout, 429 or a 5xx answer is retried; any other non-2xx
answer rejects the record to the dead-letter topic. An ``Authorization`` header must be a
secret reference. On Kafka Connect this is Aiven's HTTP sink.
"""

from __future__ import annotations

from typing import Any

from algorail.runtime import codec
from algorail.runtime.connect import ConnectorUnavailable, SinkRecord, SinkWriter

from .base import (
    REFERENCE_SCHEMA,
    FirstPartyConnector,
    PluginArtifact,
    check_url,
    config_schema,
    sink_properties,
)
from .secrets import REFERENCE_HINT, is_reference, resolve

HTTP_VERSION = "0.7.0"
HTTP_PLUGIN = PluginArtifact(
    name="http-connector-for-apache-kafka",
    artifacts=({"type": "zip", "url": (
        "https://github.com/Aiven-Open/http-connector-for-apache-kafka/releases/download/"
        f"v{HTTP_VERSION}/http-connector-for-apache-kafka-{HTTP_VERSION}.zip")},),
    docs="https://github.com/Aiven-Open/http-connector-for-apache-kafka",
)


class HttpSink(FirstPartyConnector):
    name = "http"
    description = "POSTs records as JSON to an HTTP(S) URL, one by one or in batches."
    kinds = ("sink",)
    connector_class = "io.aiven.kafka.connect.http.HttpSinkConnector"
    plugin = HTTP_PLUGIN
    secret_keys = ("authorization",)
    config_schema = config_schema(
        {
            "url": {"type": "string"},
            "authorization": REFERENCE_SCHEMA,
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "batch": {"type": "boolean"},
            "batchSize": {"type": "integer", "minimum": 1},
            "timeoutMs": {"type": "integer", "minimum": 1},
        },
        ["url"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        problems = check_url(config["url"], "url", ("http", "https"))
        for name, value in (config.get("headers") or {}).items():
            if name.lower() == "authorization" and not is_reference(value):
                problems.append(
                    f"config.headers.{name}: use config.authorization; {REFERENCE_HINT}")
        return problems

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        headers = config.get("headers") or {}
        return {
            **sink_properties(connector),
            "http.url": config["url"],
            "http.authorization.type": "static" if "authorization" in config else "none",
            "http.headers.authorization": config.get("authorization"),
            "http.headers.content.type": "application/json",
            "http.headers.additional": ",".join(f"{k}:{v}" for k, v in headers.items()) or None,
            "batching.enabled": config.get("batch", False),
            "batch.max.size": config.get("batchSize", 500),
            "max.retries": 10,
            "retry.backoff.ms": 1000,
        }

    def open_dev(self, connector: Any) -> Any:
        return HttpWriter(connector.config)


class HttpWriter(SinkWriter):
    def __init__(self, config: dict[str, Any]):
        import httpx

        self.url = config["url"]
        self.batch = config.get("batch", False)
        self.flush_size = config.get("batchSize", 500) if self.batch else 100
        headers = {"content-type": "application/json", **(config.get("headers") or {})}
        if "authorization" in config:
            headers["authorization"] = resolve(config["authorization"])
        self.client = httpx.Client(headers=headers, timeout=config.get("timeoutMs", 10_000) / 1000)

    def write(self, records: list[SinkRecord]) -> None:
        if self.batch:
            values = [codec.encode(r.value, r.envelope.content_type) for r in records]
            self._post(b"[" + b",".join(values) + b"]")
        else:
            for record in records:
                self._post(codec.encode(record.value, record.envelope.content_type))

    def _post(self, body: bytes) -> None:
        import httpx

        try:
            response = self.client.post(self.url, content=body)
        except httpx.TransportError as exc:
            raise ConnectorUnavailable(f"POST {self.url}: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ConnectorUnavailable(f"POST {self.url}: HTTP {response.status_code}")
        if response.status_code >= 300:
            raise ValueError(f"POST {self.url}: HTTP {response.status_code} {response.text[:200]}")

    def close(self) -> None:
        self.client.close()
