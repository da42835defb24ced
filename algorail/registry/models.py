"""The registry's tables (SQLAlchemy 2). The migrations in `migrations/` create exactly these.

Strings have lengths and unique keys stay short so the same schema works on SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME = 100
VERSION = 64
# MariaDB's TEXT holds 64 KiB; MEDIUMTEXT (16 MiB) holds any request body the API accepts.
LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def too_long(row: Base) -> str | None:
    """What is wrong with the first string of `row` longer than its column allows (naming
    the field as the API does, and the limit), or None. SQLite does not enforce lengths;
    PostgreSQL and MariaDB fail the write: checking first answers alike on all three."""
    for column in row.__table__.columns:
        limit, value = getattr(column.type, "length", None), getattr(row, column.key, None)
        if limit and isinstance(value, str) and len(value) > limit:
            field = re.sub(r"_(\w)", lambda m: m[1].upper(), column.key)
            return f"{field} is {len(value)} characters long; the limit is {limit}"
    return None


class RegistryIdentity(Base):
    """One row: a random id made when the database was created, so two registries share
    a Redis cache prefix exactly when they share a database."""

    __tablename__ = "registry_identity"
    id: Mapped[str] = mapped_column(String(32), primary_key=True,
                                    default=lambda: uuid.uuid4().hex)


class ApiKey(Base):
    """A key acts for one owner; an admin key also manages brokers and event-flow grants."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(NAME), index=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Algo(Base):
    __tablename__ = "algos"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_algos_owner_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str | None] = mapped_column(LONG_TEXT, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    versions: Mapped[list[AlgoVersion]] = relationship(back_populates="algo")


class AlgoVersion(Base):
    """One immutable version of an algo; `published` ones may join event flows."""

    __tablename__ = "algo_versions"
    __table_args__ = (UniqueConstraint("algo_id", "version", name="uq_algo_versions"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    algo_id: Mapped[int] = mapped_column(ForeignKey("algos.id"))
    version: Mapped[str] = mapped_column(String(VERSION))
    runtime: Mapped[str] = mapped_column(String(NAME))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    algo: Mapped[Algo] = relationship(back_populates="versions")


class Pipeline(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_pipelines_owner_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    versions: Mapped[list[PipelineVersion]] = relationship(back_populates="pipeline")


class PipelineVersion(Base):
    """An immutable, validated pipeline document; `digest` is the sha256 of `document`."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "version", name="uq_pipeline_versions"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    version: Mapped[str] = mapped_column(String(VERSION))
    description: Mapped[str | None] = mapped_column(LONG_TEXT, nullable=True)
    document: Mapped[str] = mapped_column(LONG_TEXT)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    pipeline: Mapped[Pipeline] = relationship(back_populates="versions")


class Deployment(Base):
    """Desired and observed state of one deployment of a pipeline version."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_deployments_owner_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    pipeline_version_id: Mapped[int] = mapped_column(ForeignKey("pipeline_versions.id"))
    target: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(LONG_TEXT, nullable=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    runtime: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    pipeline_version: Mapped[PipelineVersion] = relationship()
    events: Mapped[list[DeploymentEvent]] = relationship(
        order_by="DeploymentEvent.id", cascade="all, delete-orphan")


class DeploymentEvent(Base):
    """One state change of a deployment, with the pipeline version it was on then: the
    deployment's history (deploy, running or failed and why, update, terminate)."""

    __tablename__ = "deployment_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), index=True)
    pipeline_version_id: Mapped[int] = mapped_column(ForeignKey("pipeline_versions.id"))
    state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(LONG_TEXT, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    pipeline_version: Mapped[PipelineVersion] = relationship()


class BrokerConnection(Base):
    """An external Kafka broker the platform is connected to (admins manage these)."""

    __tablename__ = "broker_connections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    bootstrap_servers: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EventFlowGrant(Base):
    """An algo version may publish to or subscribe from a topic of a connected broker."""

    __tablename__ = "event_flow_grants"
    __table_args__ = (
        UniqueConstraint(
            "algo_version_id", "connection_id", "topic", "direction", name="uq_event_flow_grants"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    algo_version_id: Mapped[int] = mapped_column(ForeignKey("algo_versions.id"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("broker_connections.id"))
    topic: Mapped[str] = mapped_column(String(249))
    direction: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    algo_version: Mapped[AlgoVersion] = relationship()
    connection: Mapped[BrokerConnection] = relationship()
