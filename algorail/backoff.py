"""Exponential backoff, the one rule every retry in algorail waits by.

A wait starts at `initial_s`, doubles per attempt and stops growing at `maximum_s`; with
`jitter` each wait is drawn between half and all of it, so the retries of many clients
spread out. The retry topics of a runner (one per distinct wait, `steps`), the WAL
replayer, the dev-mode connectors, hook deliveries and the Kafka Connect client all take
their waits from here.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.2
    maximum_s: float = 5.0
    jitter: bool = False

    @classmethod
    def from_ms(cls, initial_ms: int, maximum_ms: int, jitter: bool = False) -> Backoff:
        return cls(initial_ms / 1000, maximum_ms / 1000, jitter)

    def ceiling(self, attempt: int) -> float:
        """The wait after failed `attempt` (0-based) without jitter."""
        if self.initial_s <= 0:
            return 0.0
        return min(self.maximum_s, self.initial_s * 2 ** min(attempt, 64))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed `attempt` (0-based)."""
        ceiling = self.ceiling(attempt)
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling

    def delays(self) -> Iterator[float]:
        """The waits of one run of failures, endless; start a new one after a success."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1

    def steps(self, attempts: int) -> list[float]:
        """The distinct waits of `attempts` retries, in order: after the cap every retry
        waits the last one."""
        steps: list[float] = []
        for attempt in range(attempts):
            wait = self.ceiling(attempt)
            if steps and wait == steps[-1]:
                break
            steps.append(wait)
        return steps
