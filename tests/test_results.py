"""The results store, in memory and on the machine's Redis: run status, idempotent
records, and waiters woken by writes (from another thread, or another store instance
as the hook dispatcher in another process would be)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from algorail.runtime.results import (
    DELIVERED,
    SKIPPED,
    MemoryResultsStore,
    RedisResultsStore,
    ResultsStoreError,
    open_results_store,
    run_view,
)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryResultsStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"algorail-test-results-{uuid.uuid4().hex[:8]}:"
    redis_store = RedisResultsStore(url, ttl=60, prefix=prefix)
    yield redis_store
    for key in redis_store.redis.scan_iter(f"{prefix}*"):
        redis_store.redis.delete(key)
    redis_store.close()


def view(store, run_id):
    return run_view(run_id, store.get(run_id))


def test_a_run_completes_when_every_expected_hook_reported(store):
    store.start_run("r1", ["a", "b"])
    assert view(store, "r1")["status"] == "pending"
    store.record_hook("r1", "a", {"state": DELIVERED, "attempts": 1}, {"x": 1})
    assert view(store, "r1")["status"] == "pending"
    store.record_hook("r1", "b", {"state": SKIPPED, "attempts": 0})
    body = view(store, "r1")
    assert body["status"] == "complete"
    assert body["results"] == {"a": {"x": 1}}
    assert body["hooks"] == {"a": "delivered", "b": "skipped"}
    assert store.hook_state("r1", "b") == "skipped"


def test_a_record_read_from_the_memory_store_is_a_copy():
    store = MemoryResultsStore()
    store.start_run("r1", ["a"], {"version": "1.0.0"})
    store.record_hook("r1", "a", {"state": DELIVERED, "attempts": 1}, {"x": 1})
    store.record_error("r1", "k", {"error": "boom"})
    read = store.get("r1")
    read["expected"].append("b")
    read["plan"]["version"] = "2.0.0"
    read["hooks"]["a"]["state"] = SKIPPED
    read["hooks"]["c"] = {"state": DELIVERED}
    read["results"]["a"] = None
    read["errors"]["k"]["error"] = "changed"
    assert store.get("r1") == {"expected": ["a"], "plan": {"version": "1.0.0"},
                               "results": {"a": {"x": 1}},
                               "hooks": {"a": {"state": DELIVERED, "attempts": 1}},
                               "errors": {"k": {"error": "boom"}}}
    assert store.hook_state("r1", "a") == DELIVERED and store.hook_state("r9", "a") is None


def test_errors_fail_a_run_and_recording_twice_changes_nothing(store):
    store.start_run("r2", ["a"])
    for _ in range(2):
        store.record_error("r2", "errors:0:7", {"component": "upper", "error": "boom"})
        store.record_hook("r2", "a", {"state": DELIVERED, "attempts": 1}, [1, 2])
    body = view(store, "r2")
    assert body["status"] == "failed"
    assert body["errors"] == [{"component": "upper", "error": "boom"}]
    assert body["results"] == {"a": [1, 2]}


def test_unknown_run_is_none(store):
    assert store.get("never-seen") is None


def test_wait_wakes_on_a_write_from_another_thread(store):
    store.start_run("r4", ["a"])

    def write_later():
        time.sleep(0.3)
        store.record_hook("r4", "a", {"state": DELIVERED, "attempts": 1}, "ok")

    async def main():
        threading.Thread(target=write_later).start()
        started = time.monotonic()
        body, done = await store.wait("r4", timeout=10)
        return body, done, time.monotonic() - started

    body, done, elapsed = asyncio.run(main())
    assert done and body["results"] == {"a": "ok"}
    assert 0.25 < elapsed < 3


def test_wait_times_out_with_what_arrived(store):
    store.start_run("r5", ["a", "b"])
    store.record_hook("r5", "a", {"state": DELIVERED, "attempts": 1}, 1)
    started = time.monotonic()
    body, done = asyncio.run(store.wait("r5", timeout=0.4))
    assert not done and body["status"] == "pending" and body["results"] == {"a": 1}
    assert 0.35 < time.monotonic() - started < 3


def test_redis_wakes_waiters_of_another_store_instance(redis_url):
    prefix = f"algorail-test-results-{uuid.uuid4().hex[:8]}:"
    gateway_side = RedisResultsStore(redis_url, ttl=60, prefix=prefix)
    dispatcher_side = RedisResultsStore(redis_url, ttl=60, prefix=prefix)
    gateway_side.start_run("r6", ["a"])

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: threading.Thread(target=dispatcher_side.record_hook, args=(
            "r6", "a", {"state": DELIVERED, "attempts": 1}, "hi")).start())
        return await gateway_side.wait("r6", timeout=10)

    try:
        started = time.monotonic()
        body, done = asyncio.run(main())
        assert done and body["results"] == {"a": "hi"}
        assert time.monotonic() - started < 3
        assert 0 < gateway_side.redis.ttl(f"{prefix}run:r6") <= 60
    finally:
        gateway_side.redis.delete(f"{prefix}run:r6")
        gateway_side.close()
        dispatcher_side.close()


def test_open_results_store(redis_url):
    assert isinstance(open_results_store(None), MemoryResultsStore)
    redis_store = open_results_store(redis_url, ttl=5)
    assert isinstance(redis_store, RedisResultsStore) and redis_store.ttl == 5
    redis_store.close()
    with pytest.raises(ResultsStoreError, match="redis://"):
        open_results_store("http://127.0.0.1:6379")


def test_redis_down_is_a_clear_error():
    dead = RedisResultsStore("redis://127.0.0.1:1/0")
    with pytest.raises(ResultsStoreError, match="check that Redis is running"):
        dead.start_run("r7", ["a"])


def test_records_in_memory_leave_the_collector_nothing_to_walk():
    import gc

    store = MemoryResultsStore(max_runs=2_000)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(2_000):
        run_id = f"run-{n}"
        store.start_run(run_id, ["result"], {"version": "1.0.0", "hash": "h"})
        store.record_hook(run_id, "result", {"state": DELIVERED, "attempts": 1},
                          {"text": "HI", "items": [1, {"n": n}]})
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # 8,000 as dicts and lists
    assert store.get("run-7")["results"] == {"result": {"text": "HI", "items": [1, {"n": 7}]}}


def test_a_result_redis_could_not_hold_is_refused_in_memory_too(store):
    with pytest.raises(TypeError):
        store.record_hook("r-bytes", "result", {"state": DELIVERED, "attempts": 1}, b"\x00")
