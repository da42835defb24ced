"""Database engines and schema migrations (Alembic, shipped in this package, run in code).

One migration history serves SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from algorail.errors import AlgorailError

MIGRATIONS = "algorail.registry:migrations"
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


class DatabaseError(AlgorailError):
    """The registry database cannot be opened or migrated."""


def default_database_url() -> str:
    home = Path(os.environ.get("ALGORAIL_HOME", Path.home() / ".algorail"))
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'registry.db'}"


def normalize_url(url: str) -> str:
    """Pick the installed driver for plain `postgresql://` and `mysql://` URLs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseError(
            f"database URL {url!r} has no scheme: use sqlite:///FILE, "
            "postgresql+psycopg://... or mysql+pymysql://..."
        )
    return f"{DRIVERS.get(scheme, scheme)}://{rest}"


def open_engine(url: str | None = None) -> Engine:
    url = normalize_url(url or default_database_url())
    kwargs: dict = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        return create_engine(url, **kwargs)
    except Exception as exc:  # bad driver name, malformed URL
        raise DatabaseError(f"cannot open database {url!r}: {exc}") from exc


def _config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision`; safe to run on every start."""
    from alembic import command

    try:
        with engine.begin() as connection:
            command.upgrade(_config(connection), revision)
    except Exception as exc:
        if isinstance(exc, AlgorailError):
            raise
        raise DatabaseError(
            f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {exc}"
        ) from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def identity(engine: Engine) -> str:
    """The database's random identity, made when it was created (see `RegistryIdentity`)."""
    from algorail.registry.models import RegistryIdentity

    with Session(engine) as session:
        return session.scalars(select(RegistryIdentity.id)).one()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
