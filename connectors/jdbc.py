"""PostgreSQL and MariaDB/MySQL: JDBC sink, JDBC polling source, Debezium CDC source.

The database is named by a URL without a password (``postgresql://USER@HOST:5432/DB``,
``mysql://`` or ``mariadb://``); the password is a secret reference. On Kafka Connect the
sink and the polling source are Confluent's JDBC connectors and CDC is Debezium; in dev
mode `algorail.connectors.sql` does the same with SQLAlchemy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .base import (
    REFERENCE_SCHEMA,
    FirstPartyConnector,
    PluginArtifact,
    check_url,
    config_schema,
    sink_properties,
    source_properties,
)

SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")
COLUMN_TYPES = ("string", "integer", "number", "boolean", "json", "timestamp")

CONFLUENT_MAVEN = "https://packages.confluent.io/maven/"
JDBC_PLUGIN = PluginArtifact(
    name="kafka-connect-jdbc",
    artifacts=(
        {"type": "maven", "group": "io.confluent", "artifact": "kafka-connect-jdbc",
         "version": "10.7.6", "repository": CONFLUENT_MAVEN},
        {"type": "maven", "group": "org.postgresql", "artifact": "postgresql",
         "version": "42.7.3"},
        {"type": "maven", "group": "com.mysql", "artifact": "mysql-connector-j",
         "version": "8.4.0"},
    ),
    license="Confluent Community License; drivers: BSD-2, GPL-2.0 with FOSS exception",
    docs="https://docs.confluent.io/kafka-connectors/jdbc/current/",
)
DEBEZIUM_PLUGIN = PluginArtifact(
    name="debezium-connector-postgres",
    artifacts=({"type": "maven", "group": "io.debezium",
                "artifact": "debezium-connector-postgres", "version": "2.7.3.Final"},),
    docs="https://debezium.io/documentation/reference/2.7/connectors/postgresql.html",
)

DATABASE_PROPERTIES: dict[str, Any] = {
    "url": {"type": "string", "description": "postgresql://USER@HOST:PORT/DB, mysql://, mariadb://"},
    "user": {"type": "string"},
    "password": REFERENCE_SCHEMA,
}


def jdbc_url(url: str) -> str:
    """``jdbc:postgresql://host:port/db`` or ``jdbc:mysql://...`` (no user, no password)."""
    parts = urlsplit(url)
    kind = "postgresql" if parts.scheme.startswith("postgres") else "mysql"
    port = f":{parts.port}" if parts.port else ""
    return f"jdbc:{kind}://{parts.hostname}{port}{parts.path}"


def database_user(config: dict[str, Any]) -> str | None:
    return config.get("user") or urlsplit(config["url"]).username


def connection_properties(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "connection.url": jdbc_url(config["url"]),
        "connection.user": database_user(config),
        "connection.password": config.get("password"),
    }


class JdbcSink(FirstPartyConnector):
    name = "jdbc"
    description = "Writes JSON records as rows of a PostgreSQL or MariaDB/MySQL table."
    kinds = ("sink",)
    connector_class = "io.confluent.connect.jdbc.JdbcSinkConnector"
    plugin = JDBC_PLUGIN
    secret_keys = ("password",)
    config_schema = config_schema(
        {
            **DATABASE_PROPERTIES,
            "table": {"type": "string", "minLength": 1},
            "insertMode": {"enum": ["insert", "upsert"]},
            "pkFields": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "autoCreate": {"type": "boolean"},
            "columns": {"type": "object", "additionalProperties": {"enum": list(COLUMN_TYPES)}},
            "flushSize": {"type": "integer", "minimum": 1},
        },
        ["url", "table"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        problems = check_url(config["url"], "url", SCHEMES)
        if config.get("insertMode") == "upsert" and not config.get("pkFields"):
            problems.append("config.pkFields: upsert needs the fields that identify a row")
        if config.get("autoCreate") and not config.get("columns"):
            problems.append("config.columns: autoCreate needs the columns and their types")
        return problems

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        upsert = config.get("insertMode") == "upsert"
        return {
            **sink_properties(connector),
            **connection_properties(config),
            "table.name.format": config["table"],
            "insert.mode": config.get("insertMode", "insert"),
            "pk.mode": "record_value" if upsert else "none",
            "pk.fields": ",".join(config["pkFields"]) if upsert else None,
            "auto.create": config.get("autoCreate", False),
            "auto.evolve": False,
        }

    def open_dev(self, connector: Any) -> Any:
        from .sql import SqlSink

        return SqlSink(connector.config)


class JdbcSource(FirstPartyConnector):
    name = "jdbc-source"
    description = "Polls a PostgreSQL or MariaDB/MySQL table for rows with a higher id."
    kinds = ("source",)
    connector_class = "io.confluent.connect.jdbc.JdbcSourceConnector"
    plugin = JDBC_PLUGIN
    secret_keys = ("password",)
    config_schema = config_schema(
        {
            **DATABASE_PROPERTIES,
            "table": {"type": "string", "minLength": 1},
            "mode": {"enum": ["incrementing"]},
            "incrementingColumn": {"type": "string", "minLength": 1},
            "pollIntervalMs": {"type": "integer", "minimum": 10},
            "batchSize": {"type": "integer", "minimum": 1},
        },
        ["url", "table", "incrementingColumn"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        return check_url(config["url"], "url", SCHEMES)

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        prefix = f"algorail-{connector.name}-"
        return {
            **source_properties(connector, route_from=f"{prefix}.*"),
            **connection_properties(config),
            "mode": "incrementing",
            "incrementing.column.name": config["incrementingColumn"],
            "table.whitelist": config["table"],
            "topic.prefix": prefix,
            "poll.interval.ms": config.get("pollIntervalMs", 1000),
            "batch.max.rows": config.get("batchSize", 500),
        }

    def open_dev(self, connector: Any) -> Any:
        from .sql import SqlPollingSource

        return SqlPollingSource(connector.config)


class DebeziumPostgresSource(FirstPartyConnector):
    name = "postgres-cdc"
    description = "Streams row changes of PostgreSQL tables (Debezium; Kafka Connect only)."
    kinds = ("source",)
    connector_class = "io.debezium.connector.postgresql.PostgresConnector"
    plugin = DEBEZIUM_PLUGIN
    secret_keys = ("password",)
    config_schema = config_schema(
        {
            **DATABASE_PROPERTIES,
            "tables": {"type": "array", "items": {"type": "string", "pattern": r"^[^.]+\.[^.]+$"},
                       "minItems": 1, "description": "schema.table names"},
            "slotName": {"type": "string", "pattern": "^[a-z0-9_]+$"},
            "publicationName": {"type": "string"},
        },
        ["url", "tables", "password"],
    )

    def check_config(self, config: dict[str, Any]) -> list[str]:
        return check_url(config["url"], "url", ("postgresql", "postgres"))

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        parts = urlsplit(config["url"])
        prefix = f"algorail-{connector.name}"
        props = source_properties(connector, route_from=rf"{prefix}\..*")
        props["transforms"] = "unwrap," + props["transforms"]
        slot = config.get("slotName", f"algorail_{connector.name}".replace("-", "_").lower())
        return {
            **props,
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.drop.tombstones": True,
            "database.hostname": parts.hostname,
            "database.port": parts.port or 5432,
            "database.user": database_user(config),
            "database.password": config["password"],
            "database.dbname": parts.path.lstrip("/"),
            "topic.prefix": prefix,
            "plugin.name": "pgoutput",
            "slot.name": slot,
            "publication.name": config.get("publicationName", slot),
            "table.include.list": ",".join(config["tables"]),
        }
