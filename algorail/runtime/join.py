"""The join engine: when does a run of an algo with several inputs (or triggers) fire?

Pure logic with an injected clock, so it is tested without a broker. The runner offers
each arrival (input or trigger, possibly skipped) for a run id and acts on the decisions:

- ``run``: call the algo with ``values`` (the non-skipped inputs that arrived);
- ``skip``: the branch was not taken: send skip markers on every output;
- ``expired``: the window closed (or ``max_pending`` was exceeded) before the run could
  fire, or an inner join's input was skipped while others came; counted, reported;
- ``late``: an arrival for a run that already fired; dropped.

Join types for inputs (Seldon's inputsJoinType) and for triggers (triggersJoinType):
``inner`` needs every one; ``any`` fires on the first; ``outer`` fires when all arrived
or, at the latest, when the window closes with whatever arrived.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from algorail.errors import AlgorailError
from algorail.plan import BatchPlan, JoinPlan

Kind = Literal["run", "skip", "expired", "late"]
FIRED_MEMORY = 100_000  # run ids remembered after firing, to drop late arrivals


@dataclass(slots=True)
class Arrival:
    slot: str  # input name, or trigger name
    value: Any = None
    skipped: bool = False
    position: Any = None  # opaque to the engine: where the message came from


@dataclass(slots=True)
class Decision:
    run_id: str
    kind: Kind
    arrivals: list[Arrival]
    values: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @property
    def positions(self) -> list[Any]:
        return [a.position for a in self.arrivals]


@dataclass
class _Pending:
    started: float
    arrivals: dict[str, Arrival] = field(default_factory=dict)
    extra: list[Arrival] = field(default_factory=list)  # repeats of a slot, kept to resolve


def _part(join_type: str, slots: list[str], got: dict[str, Arrival], final: bool,
          inputs: bool = False) -> str | None:
    """Decide one part (inputs or triggers): "ok", "skip", "expired", "missing" or None
    (wait). An inner join of inputs skips a run only when every input was skipped; when
    some came and another was skipped the run is "missing" that input (Seldon's inner
    join never fires then). A skipped inner trigger skips the run."""
    if not slots:
        return "ok"
    arrived = [got[s] for s in slots if s in got]
    present = [a for a in arrived if not a.skipped]
    complete = len(arrived) == len(slots)
    if join_type == "inner":
        if len(present) < len(arrived):
            if present and inputs:  # some inputs came, another never will: the run fails
                return "missing"
            if not inputs or complete:
                return "skip"
        return "ok" if complete else ("expired" if final else None)
    if join_type == "any" and present:
        return "ok"
    if complete or final:
        if present:
            return "ok"
        return "skip" if arrived else "expired"
    return None


class JoinEngine:
    """Pending runs of one algo, bounded by a window and a maximum count."""

    def __init__(
        self,
        inputs: list[str],
        triggers: list[str] | None = None,
        join: JoinPlan | None = None,
        triggers_join: str = "inner",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.inputs = list(inputs)
        self.triggers = list(triggers or [])
        self.triggers_join = triggers_join
        self.clock = clock
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.fired: OrderedDict[str, None] = OrderedDict()
        self.expired_total = 0
        self.passthrough = len(self.inputs) == 1 and not self.triggers
        if join is None and not self.passthrough:
            raise AlgorailError("an algo with several inputs or with triggers needs a join "
                                "(the plan sets one): recompile the plan")
        self.join = join

    def offer(self, run_id: str, arrivals: list[Arrival]) -> list[Decision]:
        """Arrivals of one message for `run_id`; returns the decisions it causes."""
        if self.passthrough:
            arrival = arrivals[0]
            kind: Kind = "skip" if arrival.skipped else "run"
            values = {} if arrival.skipped else {arrival.slot: arrival.value}
            return [Decision(run_id, kind, arrivals, values)]
        if run_id in self.fired:
            return [Decision(run_id, "late", arrivals)]
        state = self.pending.get(run_id)
        if state is None:
            state = self.pending[run_id] = _Pending(self.clock())
        for arrival in arrivals:
            if arrival.slot in state.arrivals:
                state.extra.append(arrival)
            else:
                state.arrivals[arrival.slot] = arrival
        decisions = []
        decision = self._decide(run_id, state, final=False)
        if decision is not None:
            decisions.append(decision)
        while len(self.pending) > self.join.max_pending:
            oldest = next(iter(self.pending))
            decisions.append(self._decide(oldest, self.pending[oldest], final=True, evicted=True))
        return decisions

    def expire(self) -> list[Decision]:
        """Close the windows that have passed; call this regularly."""
        if self.passthrough:  # nothing waits: no window
            return []
        deadline = self.clock() - self.join.window_ms / 1000
        decisions = []
        while self.pending:
            run_id, state = next(iter(self.pending.items()))
            if state.started > deadline:
                break
            decisions.append(self._decide(run_id, state, final=True))
        return decisions

    def clear(self) -> None:
        """Forget everything pending (after losing partitions: it will be re-read)."""
        self.pending.clear()

    def _decide(self, run_id: str, state: _Pending, final: bool,
                evicted: bool = False) -> Decision | None:
        inputs = _part(self.join.type, self.inputs, state.arrivals, final, inputs=True)
        triggers = _part(self.triggers_join, self.triggers, state.arrivals, final)
        if inputs == "missing":
            kind: Kind = "expired"
        elif "skip" in (inputs, triggers):
            kind = "skip"
        elif inputs == "ok" and triggers == "ok":
            kind = "run"
        elif final:
            kind = "expired"
        else:
            return None
        del self.pending[run_id]
        self._remember(run_id)
        arrivals = [*state.arrivals.values(), *state.extra]
        if kind == "expired":
            self.expired_total += 1
            # a skipped input of an inner join is why the run failed, whether or not the
            # others came before the window closed: name it either way
            skipped = [s for s in self.inputs if state.arrivals.get(s, Arrival(s)).skipped]
            if self.join.type == "inner" and skipped:
                return Decision(run_id, kind, arrivals, reason=(
                    f"the inner join needs every input, and {', '.join(skipped)} produced no "
                    "output for this run"))
            missing = [s for s in self.inputs + self.triggers if s not in state.arrivals]
            why = f"more than {self.join.max_pending} runs pending" if evicted else (
                f"the {self.join.type} join window of {self.join.window_ms} ms closed")
            return Decision(run_id, kind, arrivals,
                            reason=f"{why} before {', '.join(missing)} arrived")
        values = {
            s: a.value for s, a in state.arrivals.items() if s in self.inputs and not a.skipped
        } if kind == "run" else {}
        return Decision(run_id, kind, arrivals, values)

    def _remember(self, run_id: str) -> None:
        self.fired[run_id] = None
        while len(self.fired) > FIRED_MEMORY:
            self.fired.popitem(last=False)


@dataclass
class BatchItem:
    decision: Decision
    payload: Any
    added: float = 0.0


class Batcher:
    """Groups runs for a batched algo: by size and/or window, tumbling or rolling."""

    def __init__(self, batch: BatchPlan, clock: Callable[[], float] = time.monotonic):
        self.size = batch.size or (None if batch.window_ms else 1)
        self.window = batch.window_ms / 1000 if batch.window_ms else None
        self.rolling = batch.rolling
        self.clock = clock
        self.items: list[BatchItem] = []

    def add(self, decision: Decision, payload: Any) -> list[list[BatchItem]]:
        """Add one run; returns the batches that are now ready."""
        now = self.clock()
        self.items.append(BatchItem(decision, payload, now))
        if self.rolling:
            self._drop_old(now)
            if self.size and len(self.items) > self.size:
                del self.items[: len(self.items) - self.size]
            return [list(self.items)]
        if self.size and len(self.items) >= self.size:
            return [self._take()]
        return []

    def due(self) -> list[list[BatchItem]]:
        """A tumbling batch whose window has passed, if any; call this regularly."""
        if self.rolling or not self.items or self.window is None:
            return []
        if self.clock() - self.items[0].added >= self.window:
            return [self._take()]
        return []

    def clear(self) -> None:
        self.items.clear()

    def _take(self) -> list[BatchItem]:
        batch, self.items = self.items, []
        return batch

    def _drop_old(self, now: float) -> None:
        if self.window is not None:
            self.items = [i for i in self.items if now - i.added < self.window]
