"""What every pipeline's services share: where Kafka, Redis, S3 and SQL are, and the
Secrets holding their credentials and the gateway's API key.

The `algorail` chart runs the gateway and hook dispatcher of ONE plan, so each pipeline
gets its own release of it (see pipelines.py); this component only makes the Secrets
those releases reference by name, `algorail-connections` and `algorail-api-keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from algorail_infra.credentials import kubernetes_secret, password

CONNECTIONS_SECRET = "algorail-connections"
API_KEYS_SECRET = "algorail-api-keys"
API_KEYS_KEY = "api-keys"
RESULTS_URL_KEY = "results-url"
ACCESS_KEY_ID_KEY = "access-key-id"
SECRET_ACCESS_KEY_KEY = "secret-access-key"
SQL_URL_KEY = "sql-url"
GATEWAY_PORT = 80  # the `algorail` chart's gateway.service.port


@dataclass
class Connections:
    """Where the platform's backing services are; the secret ones are secret Outputs."""

    bootstrap_servers: pulumi.Input[str]
    results_url: pulumi.Input[str]
    object_store_url: pulumi.Input[str]  # s3://BUCKET?endpoint=URL, no credentials
    s3_access_key_id: pulumi.Input[str]
    s3_secret_access_key: pulumi.Input[str]
    sql_dsn: pulumi.Input[str]


@dataclass
class PlatformArgs:
    namespace: pulumi.Input[str]
    connections: Connections


class Platform(pulumi.ComponentResource):
    """`api_key` (secret) is the key clients send to every pipeline's gateway."""

    def __init__(self, name: str, args: PlatformArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Platform", name, None, opts)
        conn = args.connections
        self.connections = conn
        self.secret = kubernetes_secret(CONNECTIONS_SECRET, args.namespace, {
            RESULTS_URL_KEY: conn.results_url,
            ACCESS_KEY_ID_KEY: conn.s3_access_key_id,
            SECRET_ACCESS_KEY_KEY: conn.s3_secret_access_key,
            SQL_URL_KEY: conn.sql_dsn,
        }, self)
        self.api_key = password(f"{name}-api-key", self, 40)
        self.api_keys = kubernetes_secret(
            API_KEYS_SECRET, args.namespace, {API_KEYS_KEY: self.api_key}, self
        )
        self.register_outputs({})

    def services_values(self, release: str, ingress: bool, monitoring: bool) -> dict[str, Any]:
        """Where the stack's services are, for the `algorail` release `release` serving
        one pipeline's plan (the plan's own values come from `algorail.render`)."""
        return {
            "kafka": {"bootstrapServers": self.connections.bootstrap_servers},
            "results": {"existingSecret": self.secret.metadata.name,
                        "existingSecretKey": RESULTS_URL_KEY},
            "objectStore": {"url": self.connections.object_store_url,
                            "existingSecret": self.secret.metadata.name,
                            "accessKeyIdKey": ACCESS_KEY_ID_KEY,
                            "secretAccessKeyKey": SECRET_ACCESS_KEY_KEY},
            "auth": {"enabled": True, "existingSecret": self.api_keys.metadata.name,
                     "existingSecretKey": API_KEYS_KEY},
            "gateway": {"mapping": {"enabled": ingress, "prefix": f"/algorail/{release}/"}},
            "serviceMonitor": {"enabled": monitoring},
            # One dashboard for the whole stack comes with Prometheus, not one per pipeline.
            "dashboard": {"enabled": False},
        }

    def runner_env(self) -> list[dict[str, Any]]:
        """Object store settings for runners (file references), credentials by reference."""
        return [
            {"name": "ALGORAIL_OBJECT_STORE_URL", "value": self.connections.object_store_url},
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
                "name": self.secret.metadata.name, "key": ACCESS_KEY_ID_KEY}}},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
                "name": self.secret.metadata.name, "key": SECRET_ACCESS_KEY_KEY}}},
        ]
