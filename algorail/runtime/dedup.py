"""Drops outputs a runner already wrote, so a replay after a crash doubles nothing.

Every message a runner writes carries an `algorail-origin` header naming the inputs
(`topic:partition:offset`) it came from. A run is identified by its run id plus its
origin, or by its run id alone for joined algos (they fire once per run, whichever
arrivals complete it). After an assignment the runner scans what it wrote since the
oldest uncommitted input and remembers those keys; memory is bounded (oldest dropped).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

ORIGIN = "algorail-origin"
DEFAULT_CAPACITY = 200_000


def origin_of(positions: list[tuple[Any, int]]) -> str:
    if len(positions) == 1:  # the common case, kept cheap
        tp, offset = positions[0]
        return f"{tp.topic}:{tp.partition}:{offset}"
    return ",".join(sorted({f"{tp.topic}:{tp.partition}:{offset}" for tp, offset in positions}))


class Deduplicator:
    def __init__(self, per_run: bool, capacity: int = DEFAULT_CAPACITY):
        self.per_run = per_run  # joined algos: one output per run id
        self.capacity = capacity
        self.seen: OrderedDict[str | tuple[str, str], None] = OrderedDict()

    def key(self, run_id: str, origin: str) -> str | tuple[str, str]:
        """A tuple, not a joined string: its parts' hashes are cached on them, so a lookup
        builds and hashes no new string."""
        return run_id if self.per_run else (run_id, origin)

    def __contains__(self, key: str | tuple[str, str]) -> bool:
        return key in self.seen

    def add(self, key: str | tuple[str, str]) -> None:
        self.seen[key] = None
        if len(self.seen) > self.capacity:
            self.seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self.seen)
