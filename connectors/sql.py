"""Dev-mode JDBC sink and polling source on SQLAlchemy (psycopg, PyMySQL).

A lost connection, a refused connect or a lock timeout is `ConnectorUnavailable` (the
batch is retried); any other database error rejects the records.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from algorail.runtime.connect import (
    ConnectorConfigError,
    ConnectorUnavailable,
    SinkRecord,
    SinkWriter,
    SourceReader,
    SourceRecord,
)

from .secrets import resolve

DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
           "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql"}
LOCK_ERRORS = ("lock timeout", "deadlock", "lock wait timeout", "could not obtain lock")
# column type in config -> SQLAlchemy types a reflected column may have
ACCEPTED_TYPES: dict[str, tuple[type, ...]] = {
    "string": (sa.String,),
    "integer": (sa.Integer,),
    "number": (sa.Numeric, sa.Float, sa.Integer),
    "boolean": (sa.Boolean, sa.Integer),  # MySQL BOOLEAN is TINYINT(1)
    "json": (sa.JSON, sa.Text),  # MariaDB JSON is LONGTEXT
    "timestamp": (sa.DateTime, sa.Date),
}
CREATED_TYPES: dict[str, Any] = {
    "string": sa.String(255), "integer": sa.BigInteger(), "number": sa.Float(),
    "boolean": sa.Boolean(), "json": sa.JSON(), "timestamp": sa.DateTime(),
}


def create_engine(config: dict[str, Any]) -> sa.Engine:
    parts = urlsplit(config["url"])
    url = sa.make_url(config["url"]).set(
        drivername=DRIVERS[parts.scheme],
        username=config.get("user") or parts.username,
        password=resolve(config.get("password")),
    )
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if url.get_backend_name() == "mysql":
        # a value that does not fit is an error, never silently truncated, whatever the
        # server's default sql_mode: a rejected row goes to the dead-letter topic
        connect_args["init_command"] = (
            "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')")
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def is_transient(error: sa_exc.DBAPIError) -> bool:
    return error.connection_invalidated or any(m in str(error.orig).lower() for m in LOCK_ERRORS)


class SqlTable:
    """Connects, and loads one table's definition, with errors that say what to fix."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.engine = create_engine(config)
        self.table: sa.Table | None = None

    def connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa_exc.DBAPIError as exc:
            url = self.config["url"]
            raise ConnectorUnavailable(f"cannot connect to {url}: {exc.orig}") from exc

    def load(self, create_columns: dict[str, str] | None = None,
             primary_key: list[str] | None = None) -> sa.Table:
        name = self.config["table"]
        try:
            with self.connect() as conn:
                if not sa.inspect(conn).has_table(name) and create_columns:
                    self._create(conn, name, create_columns, primary_key or [])
                self.table = sa.Table(name, sa.MetaData(), autoload_with=conn)
        except ConnectorUnavailable as exc:
            raise ConnectorConfigError(
                f"{exc}; check config.url and that the database runs") from None
        except sa_exc.NoSuchTableError:
            raise ConnectorConfigError(
                f"table {name!r} does not exist in {self.config['url']}; create it, or set "
                "autoCreate: true with columns"
            ) from None
        return self.table

    @staticmethod
    def _create(conn: sa.Connection, name: str, columns: dict[str, str], pk: list[str]) -> None:
        table = sa.Table(name, sa.MetaData(), *(
            sa.Column(col, CREATED_TYPES[kind], primary_key=col in pk)
            for col, kind in columns.items()
        ))
        table.create(conn)
        conn.commit()

    def column_problems(self, columns: dict[str, str]) -> list[str]:
        problems = []
        for col, kind in columns.items():
            column = self.table.columns.get(col)
            if column is None:
                problems.append(f"table {self.table.name!r} has no column {col!r}")
            elif not isinstance(column.type, ACCEPTED_TYPES[kind]):
                problems.append(
                    f"column {self.table.name}.{col} is {column.type}, not a {kind} column; "
                    f"alter the table or fix config.columns.{col}"
                )
        return problems

    def close(self) -> None:
        self.engine.dispose()


class SqlSink(SinkWriter):
    """Inserts (or upserts) each record, a JSON object, as one row; a batch is one
    transaction."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.columns: dict[str, str] = config.get("columns") or {}
        self.pk: list[str] = config.get("pkFields") or []
        self.upsert = config.get("insertMode") == "upsert"
        self.flush_size = config.get("flushSize", 500)
        self.db = SqlTable(config)

    def check(self) -> None:
        create = self.columns if self.config.get("autoCreate") else None
        table = self.db.load(create, self.pk)
        problems = self.db.column_problems(self.columns)
        problems += [f"config.pkFields: table {table.name!r} has no column {c!r}"
                     for c in self.pk if c not in table.columns]
        if self.upsert and not problems and not self._unique(self.pk):
            problems.append(f"config.pkFields: {self.pk} is not the primary key or a unique "
                            f"index of table {table.name!r}; upsert needs one")
        if problems:
            raise ConnectorConfigError("; ".join(problems))

    def _unique(self, fields: list[str]) -> bool:
        with self.db.connect() as conn:
            inspector = sa.inspect(conn)
            name = self.db.table.name
            keys = [inspector.get_pk_constraint(name).get("constrained_columns") or []]
            keys += [u["column_names"] for u in inspector.get_unique_constraints(name)]
            keys += [i["column_names"] for i in inspector.get_indexes(name) if i.get("unique")]
        return any(set(k) == set(fields) for k in keys)

    def write(self, records: list[SinkRecord]) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            row = self._row(record.value)
            groups[tuple(sorted(row))].append(row)
        try:
            with self.db.connect() as conn, conn.begin():
                for keys, rows in groups.items():
                    conn.execute(self._statement(keys), rows)
        except sa_exc.DBAPIError as exc:
            if is_transient(exc) or isinstance(exc.orig, ConnectionError):
                raise ConnectorUnavailable(str(exc.orig).strip()) from exc
            raise ValueError(str(exc.orig).strip()) from None

    def _row(self, value: Any) -> dict[str, Any]:
        table = self.db.table
        if not isinstance(value, dict):
            raise ValueError(f"a row needs a JSON object, got {type(value).__name__}")
        unknown = [k for k in value if k not in table.columns]
        if unknown:
            raise ValueError(f"field(s) {', '.join(unknown)} have no column in table "
                             f"{table.name!r}; drop them with the pipe's fields")
        return {k: self._cell(table.columns[k], v) for k, v in value.items()}

    @staticmethod
    def _cell(column: sa.Column, value: Any) -> Any:
        if isinstance(value, dict | list) and not isinstance(column.type, sa.JSON):
            return json.dumps(value)
        return value

    def _statement(self, keys: tuple[str, ...]) -> Any:
        table = self.db.table
        if not self.upsert:
            return table.insert()
        update = [k for k in keys if k not in self.pk] or self.pk[:1]
        if self.db.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            stmt = insert(table)
            return stmt.on_conflict_do_update(
                index_elements=self.pk, set_={k: stmt.excluded[k] for k in update})
        from sqlalchemy.dialects.mysql import insert

        stmt = insert(table)
        return stmt.on_duplicate_key_update({k: stmt.inserted[k] for k in update})

    def close(self) -> None:
        self.db.close()


class SqlPollingSource(SourceReader):
    """Reads rows whose incrementing column is above the last one produced."""

    def __init__(self, config: dict[str, Any]):
        self.column_name = config["incrementingColumn"]
        self.batch_size = config.get("batchSize", 500)
        self.poll_interval_ms = config.get("pollIntervalMs", 1000)
        self.db = SqlTable(config)
        self.last: Any = None

    def check(self) -> None:
        table = self.db.load()
        column = table.columns.get(self.column_name)
        if column is None or not isinstance(column.type, (sa.Integer, sa.Numeric)):
            raise ConnectorConfigError(
                f"config.incrementingColumn: table {table.name!r} has no integer column "
                f"{self.column_name!r}"
            )

    def resume_from(self, offset: str | None) -> None:
        self.last = int(offset) if offset is not None else None

    def poll(self) -> list[SourceRecord]:
        table = self.db.table
        column = table.columns[self.column_name]
        query = sa.select(table).order_by(column).limit(self.batch_size)
        if self.last is not None:
            query = query.where(column > self.last)
        try:
            with self.db.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sa_exc.DBAPIError as exc:
            raise ConnectorUnavailable(str(exc.orig).strip()) from exc
        return [
            SourceRecord(value=dict(row), key=str(row[self.column_name]),
                         offset=str(row[self.column_name]))
            for row in rows
        ]

    def ack(self, records: list[SourceRecord]) -> None:
        self.last = int(records[-1].offset)

    def close(self) -> None:
        self.db.close()
