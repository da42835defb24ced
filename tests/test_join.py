"""The join engine and batcher as pure logic, on a fake clock (no broker)."""

from __future__ import annotations

import pytest

from algorail.errors import AlgorailError
from algorail.plan import BatchPlan, JoinPlan
from algorail.runtime import convention
from algorail.runtime.join import Arrival, Batcher, JoinEngine


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
    return JoinEngine(["a", "b"], list(triggers), JoinPlan(type=join_type, window_ms=window_ms,
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


@pytest.mark.parametrize("other_comes", [True, False])
def test_inner_join_names_its_skipped_input_however_late_the_other_is(clock, other_comes):
    """The run fails for the same reason whether the other input came in the window or not."""
    e = engine(clock)
    assert e.offer("r1", [Arrival("a", skipped=True)]) == []
    clock.now += 2
    [d] = e.offer("r1", [Arrival("b", 2)]) if other_comes else e.expire()
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
    clock.now += 3600
    assert e.expire() == []


def test_several_inputs_need_a_join(clock):
    with pytest.raises(AlgorailError, match="needs a join"):
        JoinEngine(["a", "b"], clock=clock)
    with pytest.raises(AlgorailError, match="needs a join"):
        JoinEngine(["a"], ["trigger-0"], clock=clock)


def test_tumbling_batch_by_size_and_window(clock):
    b = Batcher(BatchPlan(size=3, window_ms=500, rolling=False), clock=clock)
    assert b.add("d1", 1) == [] and b.add("d2", 2) == []
    [batch] = b.add("d3", 3)
    assert [i.payload for i in batch] == [1, 2, 3]
    b.add("d4", 4)
    assert b.due() == []
    clock.now += 0.6
    [batch] = b.due()
    assert [i.payload for i in batch] == [4]


def test_rolling_batch_keeps_the_last_size_items(clock):
    b = Batcher(BatchPlan(size=2, window_ms=None, rolling=True), clock=clock)
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


def test_revisit_keys_tell_passes_of_a_loop_apart_and_count_against_the_limit():
    from algorail.runtime.codec import Envelope
    from algorail.runtime.revisits import VISITS, Revisits

    def env(visits, skip=False):
        return Envelope("r", skip=skip, extra={VISITS: visits} if visits else {})

    loop = [frozenset({"counter", "loop"})]
    counter = Revisits("counter", cyclic=True, limit=2, loops=loop)
    out = Revisits("out", cyclic=True, limit=2, loops=loop)  # after the loop
    assert counter.key(env("")) == "r"  # from the pipeline's input
    assert counter.key(env("counter=1,loop=1")) == "r#1"  # back round the loop
    assert out.key(env("counter=1")) == "r#0.1" and out.key(env("counter=2,loop=1")) == "r#0.2"
    assert counter.headers([env("counter=1,loop=1")]) == {VISITS: "counter=2,loop=1"}
    assert counter.key_of_output("r", {VISITS: "counter=2,loop=1"}) == "r#1"
    assert counter.exceeded(env("counter=2,loop=2")) is None
    assert "a 3rd time in run r, more than maxStepRevisits (2)" in counter.exceeded(
        env("counter=3,loop=3"))
    assert counter.ends_here(env("counter=1,loop=1", skip=True))
    assert not out.ends_here(env("counter=1", skip=True))
    acyclic = Revisits("counter", cyclic=False, limit=None)
    assert acyclic.key(env("counter=5")) == "r" and acyclic.headers([env("")]) == {}


def test_revisit_keys_of_one_pass_agree_over_branches_of_other_lengths():
    """join's loop goes counter -> a -> a2 -> join and counter -> b -> join: in its second
    pass a2's message has seen a and a2 twice, b's message b twice, and both join."""
    from algorail.runtime.codec import Envelope
    from algorail.runtime.revisits import VISITS, Revisits

    join = Revisits("join", cyclic=True, limit=None,
                    loops=[frozenset({"counter", "a", "a2", "b", "join"})])
    via_a2 = Envelope("r", extra={VISITS: "a=2,a2=2,b=1,counter=2,join=1"})
    via_b = Envelope("r", extra={VISITS: "a=1,a2=1,b=2,counter=2,join=1"})
    assert join.key(via_a2) == join.key(via_b) == "r#1"


def test_the_loops_of_a_plan():
    from conftest import EXAMPLES

    from algorail.compiler import compile_plan
    from algorail.loader import load_pipeline
    from algorail.runtime.revisits import loops
    from algorail.spec import load_bindings

    seldon = EXAMPLES / "seldon"
    plan = compile_plan(load_pipeline(seldon / "counter.yaml",
                                      bindings=load_bindings(seldon / "bindings.yaml")))
    assert loops(plan) == [frozenset({"counter", "identity-loop"})]
    assert loops(compile_plan(load_pipeline(seldon / "chain.yaml", bindings=load_bindings(
        seldon / "bindings.yaml")))) == []
