"""Named connections to external Kafka brokers, defined once for the whole cluster.

An admin lists them in one YAML file (``--connections FILE`` or
``ALGORAIL_CONNECTIONS_FILE``); a pipeline's ``kafka`` data source or sink then names a
connection and a topic, as Algorithmia Event Flows did::

    connections:
      partner:
        bootstrapServers: kafka.partner.example:9093
        securityProtocol: SASL_SSL          # PLAINTEXT (default), SSL, SASL_PLAINTEXT
        saslMechanism: SCRAM-SHA-512        # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
        username: algorail
        password: ${secrets:algorail/partner-kafka:password}
        owners: [alice]                     # who may use it (default: everyone)
        topics: [orders, scores]            # which topics (default: all)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorail.errors import AlgorailError
from algorail.extensions import schema_problems

CONNECTIONS_ENV = "ALGORAIL_CONNECTIONS_FILE"
PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
JAAS_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
CONNECTION_SCHEMA = {
    "type": "object",
    "required": ["bootstrapServers"],
    "additionalProperties": False,
    "properties": {
        "bootstrapServers": {"type": "string", "pattern": r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$"},
        "securityProtocol": {"enum": PROTOCOLS},
        "saslMechanism": {"enum": MECHANISMS},
        "username": {"type": "string"},
        "password": {"type": "string"},  # a secret reference: checked in load_connections
        "owners": {"type": "array", "items": {"type": "string"}},
        "topics": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"},
    },
}


class ConnectionsError(AlgorailError):
    """A connections file that cannot be read, or a connection that is not defined."""


@dataclass(frozen=True)
class Connection:
    name: str
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None  # a secret reference
    owners: tuple[str, ...] | None = None
    topics: tuple[str, ...] | None = None
    description: str | None = None

    def permits(self, owner: str, topic: str) -> str | None:
        """Why `owner` may not use `topic` on this connection, or None."""
        if self.owners is not None and owner not in self.owners:
            return (f"connection {self.name!r} is not open to owner {owner!r} "
                    f"(owners: {', '.join(self.owners)}); ask the cluster admin to add it")
        if self.topics is not None and topic not in self.topics:
            return (f"topic {topic!r} is not allowed on connection {self.name!r} "
                    f"(topics: {', '.join(self.topics)})")
        return None

    def client_settings(self) -> dict[str, Any]:
        """kafka-python settings; the password reference is resolved here."""
        from algorail.connectors.secrets import resolve

        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            settings |= {"sasl_mechanism": self.sasl_mechanism,
                         "sasl_plain_username": self.username,
                         "sasl_plain_password": resolve(self.password)}
        return settings

    def connect_properties(self, prefix: str) -> dict[str, str]:
        """Kafka Connect client properties under `prefix`; the password stays a reference."""
        props = {f"{prefix}bootstrap.servers": self.bootstrap_servers,
                 f"{prefix}security.protocol": self.security_protocol}
        if self.sasl_mechanism:
            module = JAAS_MODULES[self.sasl_mechanism]
            props[f"{prefix}sasl.mechanism"] = self.sasl_mechanism
            props[f"{prefix}sasl.jaas.config"] = (
                f'{module} required username="{self.username}" password="{self.password}";'
            )
        return props


def connections_file(path: str | Path | None = None) -> Path | None:
    chosen = path or os.environ.get(CONNECTIONS_ENV)
    return Path(chosen) if chosen else None


def load_connections(path: str | Path | None = None) -> dict[str, Connection]:
    """The connections in `path` (default: $ALGORAIL_CONNECTIONS_FILE); {} when neither."""
    from algorail.spec import read_document

    file = connections_file(path)
    if file is None:
        return {}
    try:
        data = read_document(file)
    except AlgorailError as exc:
        raise ConnectionsError(f"connections file: {exc}") from None
    entries = data.get("connections")
    if not isinstance(entries, dict):
        raise ConnectionsError(f"{file}: expected a mapping 'connections: {{NAME: {{...}}}}'")
    from algorail.connectors.secrets import secret_problems

    problems = []
    for name, entry in entries.items():
        problems += schema_problems(CONNECTION_SCHEMA, entry, f"connections.{name}")
        if isinstance(entry, dict):
            problems += secret_problems(entry, ("password",), f"connections.{name}")
    if problems:
        raise ConnectionsError(f"{file}: " + "; ".join(problems))
    return {name: _connection(name, entry) for name, entry in entries.items()}


def _connection(name: str, entry: dict[str, Any]) -> Connection:
    return Connection(
        name=name,
        bootstrap_servers=entry["bootstrapServers"],
        security_protocol=entry.get("securityProtocol", "PLAINTEXT"),
        sasl_mechanism=entry.get("saslMechanism"),
        username=entry.get("username"),
        password=entry.get("password"),
        owners=tuple(entry["owners"]) if "owners" in entry else None,
        topics=tuple(entry["topics"]) if "topics" in entry else None,
        description=entry.get("description"),
    )


def get_connection(name: str, path: str | Path | None = None) -> Connection:
    file = connections_file(path)
    if file is None:
        raise ConnectionsError(
            f"connection {name!r} is not defined: no connections file; pass --connections FILE "
            f"or set {CONNECTIONS_ENV}"
        )
    connections = load_connections(file)
    if name not in connections:
        known = ", ".join(sorted(connections)) or "none"
        raise ConnectionsError(f"no connection named {name!r} in {file} (defined: {known})")
    return connections[name]
