"""The join engine and batcher as pure logic, on a fake clock (no broker)."""

from __future__ import annotations

import pytest

from algorail.runtime import convention
from algorail.runtime.join import Arrival, Batcher, JoinEngine
from algorail.spec import Batch, Join


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def engine(clock, join_type="inner", triggers=(), triggers_join="inner", window_ms=1000,
           max_pending=100):
    return JoinEngine(["a", "b"], list(triggers), Join(type=join_type, window_ms=window_ms,
                      max_pending=max_pending), triggers_join, clock=clock)


def kinds(decisions):
    return [d.kind for d in decisions]


def test_inner_join_fires_when_all_inputs_of_a_run_arrived(clock):
    e = engine(clock)
    assert e.offer("r1", [Arrival("a", 1)]) == []
    assert e.offer("r2", [Arrival("b", 20)]) == []
    [d] = e.offer("r1", [Arrival("b", 2)])
    assert (d.kind, d.values) == ("run", {"a": 1, "b": 2})
    assert kinds(e.offer("r1", [Arrival("a", 3)])) == ["late"]
    assert list(e.pending) == ["r2"]


def test_inner_join_expires_and_counts(clock):
    e = engine(clock)
    e.offer("r1", [Arrival("a", 1, position="p1")])
    clock.now += 0.5
    assert e.expire() == []
    clock.now += 0.6
    [d] = e.expire()
    assert d.kind == "expired" and "b" in d.reason and d.positions == ["p1"]
    assert e.expired_total == 1 and not e.pending


def test_inner_join_skips_a_run_only_when_every_input_was_skipped(clock):
    e = engine(clock)
    assert e.offer("r1", [Arrival("a", skipped=True)]) == []
    [d] = e.offer("r1", [Arrival("b", skipped=True)])
    assert d.kind == "skip"


def test_inner_join_fails_a_run_whose_input_was_skipped_while_another_came(clock):
    e = engine(clock)
    assert e.offer("r1", [Arrival("a", skipped=True)]) == []
    [d] = e.offer("r1", [Arrival("b", 2)])
    assert d.kind == "expired"
    assert d.reason == "the inner join needs every input, and a produced no output for this run"


def test_outer_join_fires_with_what_arrived_when_the_window_closes(clock):
    e = engine(clock, "outer")
    e.offer("r1", [Arrival("a", 1)])
    e.offer("r2", [Arrival("a", skipped=True)])
    clock.now += 2
    d1, d2 = e.expire()
    assert (d1.kind, d1.values) == ("run", {"a": 1})
    assert d2.kind == "skip"
    assert e.expired_total == 0


def test_any_join_fires_on_first_present_input(clock):
    e = engine(clock, "any")
    assert e.offer("r1", [Arrival("a", skipped=True)]) == []
    [d] = e.offer("r1", [Arrival("b", 5)])
    assert (d.kind, d.values) == ("run", {"b": 5})
    [d] = e.offer("r2", [Arrival("b", skipped=True)]) or [None]
    assert d is None
    [d] = e.offer("r2", [Arrival("a", skipped=True)])
    assert d.kind == "skip"


def test_triggers_inner_and_any(clock):
    inner = engine(clock, "inner", triggers=["t0", "t1"])
    inner.offer("r1", [Arrival("a", 1), Arrival("b", 2), Arrival("t0", {})])
    [d] = inner.offer("r1", [Arrival("t1", skipped=True)])
    assert d.kind == "skip"
    anyj = engine(clock, "inner", triggers=["t0", "t1"], triggers_join="any")
    [d] = anyj.offer("r1", [Arrival("a", 1), Arrival("b", 2), Arrival("t0", skipped=True),
                            Arrival("t1", {"ok": 1})])
    assert (d.kind, d.values) == ("run", {"a": 1, "b": 2})


def test_max_pending_evicts_the_oldest_as_expired(clock):
    e = engine(clock, max_pending=2)
    e.offer("r1", [Arrival("a", 1)])
    e.offer("r2", [Arrival("a", 1)])
    [d] = e.offer("r3", [Arrival("a", 1)])
    assert d.run_id == "r1" and d.kind == "expired" and "pending" in d.reason
    assert list(e.pending) == ["r2", "r3"] and e.expired_total == 1


def test_single_input_passes_through_without_state(clock):
    e = JoinEngine(["in"], clock=clock)
    [d] = e.offer("r1", [Arrival("in", 7)])
    assert (d.kind, d.values) == ("run", {"in": 7}) and not e.pending
    [d] = e.offer("r1", [Arrival("in", skipped=True)])
    assert d.kind == "skip"


def test_tumbling_batch_by_size_and_window(clock):
    b = Batcher(Batch(size=3, window_ms=500), clock=clock)
    assert b.add("d1", 1) == [] and b.add("d2", 2) == []
    [batch] = b.add("d3", 3)
    assert [i.payload for i in batch] == [1, 2, 3]
    b.add("d4", 4)
    assert b.due() == []
    clock.now += 0.6
    [batch] = b.due()
    assert [i.payload for i in batch] == [4]


def test_rolling_batch_keeps_the_last_size_items(clock):
    b = Batcher(Batch(size=2, rolling=True), clock=clock)
    assert [[i.payload for i in x] for x in b.add("d1", 1)] == [[1]]
    b.add("d2", 2)
    assert [[i.payload for i in x] for x in b.add("d3", 3)] == [[2, 3]]


def test_convention_fields_map_and_merge():
    selected = convention.select_fields({"x": 1, "y": 2}, ["x"], {"x": "INPUT"})
    assert selected == ({"INPUT": 1}, False)
    assert convention.select_fields({"y": 2}, ["x"], {}) == (None, True)
    assert convention.call_payload(["a"], {"a": 5}, "keyed") == 5
    assert convention.call_payload(["a", "b"], {"a": 5}, "keyed") == {"a": 5}
    assert convention.call_payload(["a", "b"], {"a": {"x": 1}, "b": {"y": 2}}, "merged") == {
        "x": 1, "y": 2}
    assert convention.split_outputs(["out"], None) == {}
    assert convention.split_outputs(["s", "l"], {"s": 1}) == {"s": 1}
    with pytest.raises(convention.ConventionError, match="unknown output"):
        convention.split_outputs(["s", "l"], {"x": 1})
    with pytest.raises(convention.ConventionError, match="one result per call"):
        convention.split_batch([1], 2)
