"""Migrations: an old database (first revision, with data) upgrades to head intact,
on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest
from sqlalchemy import inspect, text

from algorail.registry import db
from algorail.registry.auth import Principal, hash_key
from algorail.registry.service import Registry


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_upgrade_from_first_revision_keeps_data(kind, scratch_database):
    engine = db.open_engine(scratch_database(kind))
    db.migrate(engine, "0001")
    assert db.current_revision(engine) == "0001"
    assert "deployments" not in inspect(engine).get_table_names()
    document = json.dumps({"apiVersion": "algorail.io/v1", "kind": "Pipeline",
                           "metadata": {"owner": "carol", "name": "old", "version": "0.9.0"},
                           "spec": {}}, sort_keys=True)
    now = datetime(2025, 1, 2, 3, 4, 5)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO api_keys (key_hash, prefix, owner, admin, created_at) "
                          "VALUES (:h, 'ark_x', 'carol', :f, :t)"),
                     {"h": hash_key("ark_old"), "f": False, "t": now})
        conn.execute(text("INSERT INTO pipelines (owner, name, created_at) "
                          "VALUES ('carol', 'old', :t)"), {"t": now})
        pid = conn.execute(text("SELECT id FROM pipelines WHERE name = 'old'")).scalar_one()
        conn.execute(text("INSERT INTO pipeline_versions (pipeline_id, version, document, "
                          "created_at) VALUES (:p, '0.9.0', :d, :t)"),
                     {"p": pid, "d": document, "t": now})

    db.migrate(engine)
    assert db.current_revision(engine) == "0004"
    tables = set(inspect(engine).get_table_names())
    assert {"deployments", "event_flow_grants", "deployment_events"} <= tables
    assert len(db.identity(engine)) == 32
    registry = Registry(db.session_factory(engine))
    carol = Principal("carol")
    shown = registry.pipeline_version(carol, "carol", "old", "0.9.0")
    assert shown["document"]["metadata"]["name"] == "old"
    assert shown["digest"] == hashlib.sha256(document.encode()).hexdigest()
    assert shown["createdAt"].startswith("2025-01-02T03:04:05")
    with registry.sessions() as session:
        from algorail.registry.auth import principal_for

        assert principal_for(session, "ark_old") == carol
    engine.dispose()
