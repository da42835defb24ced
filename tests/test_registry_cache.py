"""The Redis read cache, with the machine's real Redis and a key prefix of our own."""

from __future__ import annotations

import copy
import uuid

import pytest
import yaml
from conftest import EXAMPLES
from sqlalchemy import update

from algorail.registry import models as m
from algorail.registry.api import open_registry
from algorail.registry.auth import Principal

HELLO = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())


@pytest.fixture
def cached(redis_url, tmp_path):
    prefix = f"algorail:test:registry:{uuid.uuid4().hex[:8]}"
    registry = open_registry(f"sqlite:///{tmp_path / 'reg.db'}", redis_url=redis_url,
                             state_dir=tmp_path / "state", cache_prefix=prefix)
    yield registry
    keys = list(registry.cache.redis.scan_iter(f"{prefix}:*"))
    if keys:
        registry.cache.redis.delete(*keys)


def doc(version: str) -> dict:
    out = copy.deepcopy(HELLO)
    out["metadata"]["version"] = version
    return out


def _rename_behind_the_registry(registry, version: str, description: str) -> None:
    with registry.sessions() as session:
        session.execute(update(m.PipelineVersion).where(m.PipelineVersion.version == version)
                        .values(description=description))
        session.commit()


def test_reads_are_cached_and_writes_invalidate(cached):
    alice = Principal("alice")
    cached.push(alice, doc("1.0.0"))
    first = cached.pipeline_versions(alice, "alice", "hello")
    assert cached.cache.misses == 1
    # a change made straight in SQL is not seen while the cached answer is valid ...
    _rename_behind_the_registry(cached, "1.0.0", "changed in SQL")
    assert cached.pipeline_versions(alice, "alice", "hello") == first
    assert cached.cache.hits == 1
    # ... and a write through the registry invalidates the owner's cached reads
    cached.push(alice, doc("1.1.0"))
    after = cached.pipeline_versions(alice, "alice", "hello")
    assert [v["version"] for v in after] == ["1.0.0", "1.1.0"]
    assert after[0]["description"] == "changed in SQL"
    assert [p["latest"] for p in cached.list_pipelines(alice)] == ["1.1.0"]


def test_owners_are_cached_apart(cached):
    alice, bob = Principal("alice"), Principal("bob")
    cached.push(alice, doc("1.0.0"))
    assert cached.list_pipelines(bob) == []
    assert [p["name"] for p in cached.list_pipelines(alice)] == ["hello"]
    cached.publish_algo(bob, "bob", "scorer", "1.0.0", "python")
    assert cached.list_algos(alice) == []
    assert [a["name"] for a in cached.list_algos(bob)] == ["scorer"]


def test_event_flow_grant_invalidates_the_algo_owners_reads(cached):
    alice, admin = Principal("alice"), Principal("ops", admin=True)
    cached.publish_algo(alice, "alice", "upper", "1.0.0", "python")
    assert cached.event_flows(alice, "alice") == []
    cached.add_connection(admin, "partner", "10.1.1.1:9092")
    cached.grant(admin, "alice/upper:1.0.0", "partner", "events", "subscribe")
    assert [f["topic"] for f in cached.event_flows(alice, "alice")] == ["events"]


def test_two_registries_on_one_redis_keep_their_data_apart(redis_url, tmp_path):
    """No --cache-prefix: each prefix comes from its database's identity (random per
    database, so parallel test runs do not meet either)."""
    alice = Principal("alice")
    first, second = (open_registry(f"sqlite:///{tmp_path / name}.db", redis_url=redis_url,
                                   state_dir=tmp_path / name) for name in ("one", "two"))
    try:
        assert first.cache.prefix != second.cache.prefix
        assert first.cache.prefix.startswith("algorail:registry:")
        first.push(alice, doc("1.0.0"))
        first.publish_algo(alice, "alice", "upper", "1.0.0", "python")
        assert [p["name"] for p in first.list_pipelines(alice)] == ["hello"]
        assert [a["name"] for a in first.list_algos(alice)] == ["upper"]
        assert second.list_pipelines(alice) == [] and second.list_algos(alice) == []
        second.push(alice, doc("2.0.0"))  # a write to one does not touch the other's cache
        assert [p["latest"] for p in second.list_pipelines(alice)] == ["2.0.0"]
        assert [p["latest"] for p in first.list_pipelines(alice)] == ["1.0.0"]
        assert first.cache.hits >= 1
        # the same database opened again shares its prefix, so it sees the same invalidations
        again = open_registry(f"sqlite:///{tmp_path / 'one'}.db", redis_url=redis_url,
                              state_dir=tmp_path / "one")
        assert again.cache.prefix == first.cache.prefix
    finally:
        for registry in (first, second):
            keys = list(registry.cache.redis.scan_iter(f"{registry.cache.prefix}:*"))
            if keys:
                registry.cache.redis.delete(*keys)
