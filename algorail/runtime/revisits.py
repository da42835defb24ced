"""How often a run passed each step, in a pipeline with cycles (``allowCycles: true``).

Every message of such a pipeline carries the header ``algorail-visits``: for each step the
run passed on its way to this message, how many times (``counter=2,identity-loop=1``).
A runner reads it to

- stop a run that comes back to a step more than ``maxStepRevisits`` times (Seldon's rule:
  the run fails with an error naming the step);
- join by pass: arrivals of one pass through a loop join with each other, not with those of
  an earlier pass, so `key` adds to the run id the pass: for a step on a loop, how often it
  already ran (every message that came round the loop to it knows that number, whichever
  branch of the loop it took); and for each other loop, how often its steps ran at most
  (which pass of that loop this message left it in). Counting every revisit on the way
  instead would give branches of a loop with more or fewer steps other keys;
- drop a skip marker that came back round a loop: the loop was not taken again, which ends
  that path of the run (the step already ran for it).

Pipelines without cycles carry no such header, and their keys are the plain run ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from algorail.runtime.codec import Envelope

VISITS = "algorail-visits"


def parse(text: str) -> dict[str, int]:
    counts = {}
    for item in filter(None, text.split(",")):
        step, _, count = item.rpartition("=")
        if step and count.isdigit():
            counts[step] = int(count)
    return counts


def render(counts: dict[str, int]) -> str:
    return ",".join(f"{step}={count}" for step, count in sorted(counts.items()))


def loops(plan: Any) -> list[frozenset[str]]:
    """The steps of each loop of a plan (steps that reach each other through the topics
    their outputs go to), in the order of the plan's runners."""
    fed = {r.component: {i.topic for i in [*r.inputs, *r.triggers]} for r in plan.runners}
    feeds = {r.component: {c for c, topics in fed.items() if topics & {*r.outputs.values()}}
             for r in plan.runners}
    reach = {c: _reachable(c, feeds) for c in feeds}
    found: list[frozenset[str]] = []
    for c in feeds:
        if c in reach[c] and not any(c in loop for loop in found):
            found.append(frozenset(d for d in reach[c] if c in reach[d]))
    return found


def _reachable(start: str, feeds: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(feeds[start])
    while todo:
        step = todo.pop()
        if step not in seen:
            seen.add(step)
            todo.extend(feeds[step])
    return seen


class Revisits:
    """The visit counting of one step (`component`); inert unless `cyclic`. `limit` is
    maxStepRevisits (None: no limit); `loops` the steps of each loop of the pipeline."""

    def __init__(self, component: str, cyclic: bool, limit: int | None,
                 loops: list[frozenset[str]] = ()):
        self.component, self.cyclic, self.limit = component, cyclic, limit
        self.others = [loop for loop in loops if component not in loop]

    @classmethod
    def of(cls, plan: Any, component: str) -> Revisits:
        return cls(component, plan.allow_cycles, plan.max_step_revisits,
                   loops(plan) if plan.allow_cycles else [])

    def counts(self, env: Envelope) -> dict[str, int]:
        return parse(env.extra.get(VISITS, "")) if self.cyclic else {}

    def key(self, env: Envelope) -> str:
        """The join and deduplication key of a message: its run and pass."""
        return self._key(env.run_id, self.counts(env))

    def key_of_output(self, run_id: str, headers: dict[str, str]) -> str:
        """The key of the run that wrote an output with these headers (after a restart)."""
        counts = parse(headers.get(VISITS, "")) if self.cyclic else {}
        if self.component in counts:
            counts[self.component] -= 1
        return self._key(run_id, counts)

    def ends_here(self, env: Envelope) -> bool:
        """A skip marker back at a step that already ran for the run: dropped."""
        return env.skip and self.counts(env).get(self.component, 0) > 0

    def exceeded(self, env: Envelope) -> str | None:
        """Why the run must stop here, or None."""
        if self.limit is None:
            return None
        revisits = self.counts(env).get(self.component, 0)
        if revisits <= self.limit:
            return None
        return (f"step {self.component!r} would be revisited a {_nth(revisits)} time in run "
                f"{env.run_id}, more than maxStepRevisits ({self.limit}) allows")

    def _key(self, run_id: str, counts: dict[str, int]) -> str:
        passes = [counts.get(self.component, 0),
                  *(max(counts.get(step, 0) for step in loop) for loop in self.others)]
        return f"{run_id}#{'.'.join(map(str, passes))}" if any(passes) else run_id

    def headers(self, envs: Iterable[Envelope]) -> dict[str, str]:
        """The header of what this step writes for a run that arrived in `envs`."""
        if not self.cyclic:
            return {}
        merged: dict[str, int] = {}
        for env in envs:
            for step, count in self.counts(env).items():
                merged[step] = max(merged.get(step, 0), count)
        merged[self.component] = merged.get(self.component, 0) + 1
        return {VISITS: render(merged)}




def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
