"""The headers every algorail message carries, and the skip marker.

A port that produces nothing for a run sends a skip marker (empty value, header
``algorail-skip: 1``) so everything downstream, and a sync caller, learns the branch
was not taken instead of waiting for it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

RUN_ID = "algorail-run-id"
DEPLOYMENT = "algorail-deployment"
SOURCE = "algorail-source"
SKIP = "algorail-skip"
ERROR = "algorail-error"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"


def new_run_id() -> str:
    return uuid.uuid4().hex


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C trace context header with a fresh span id."""
    trace_id = trace_id or uuid.uuid4().hex
    return f"00-{trace_id}-{os.urandom(8).hex()}-01"


@dataclass
class Envelope:
    """What algorail reads from and writes to message headers."""

    run_id: str
    deployment: str = ""
    source: str = ""
    content_type: str = "application/json"
    traceparent: str = ""
    skip: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def to_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (RUN_ID, self.run_id),
            (DEPLOYMENT, self.deployment),
            (SOURCE, self.source),
            (CONTENT_TYPE, self.content_type),
            (TRACEPARENT, self.traceparent or new_traceparent()),
        ]
        if self.skip:
            headers.append((SKIP, "1"))
        headers.extend(self.extra.items())
        return [(k, v.encode("utf-8")) for k, v in headers]

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]] | None) -> Envelope:
        known = {RUN_ID, DEPLOYMENT, SOURCE, CONTENT_TYPE, TRACEPARENT, SKIP}
        values = {k: (v or b"").decode("utf-8", "replace") for k, v in headers or []}
        return cls(
            run_id=values.get(RUN_ID) or new_run_id(),
            deployment=values.get(DEPLOYMENT, ""),
            source=values.get(SOURCE, ""),
            content_type=values.get(CONTENT_TYPE, "application/json"),
            traceparent=values.get(TRACEPARENT, ""),
            skip=values.get(SKIP) == "1",
            extra={k: v for k, v in values.items() if k not in known},
        )
