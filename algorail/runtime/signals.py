"""Stopping a service on SIGTERM/SIGINT without deadlocking it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any


def stop_on_signals(stop: Callable[[], Any]) -> None:
    """Call `stop` on the first SIGTERM or SIGINT, and ignore the ones after it.

    A handler runs in the main thread between two bytecodes, possibly while that thread
    holds the very lock `stop` needs (``threading.Event.set``): a second signal arriving
    inside the first handler would wait on that lock forever. Kubernetes, a parent's death
    signal and Ctrl-C can all arrive at once, so only the first one counts.
    """

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
