"""How algorail's processes stop on signals, and how their children die with them.

Two rules, kept here so every service and every child follows them:
- A service stops gracefully on its first SIGTERM/SIGINT, within `STOP_GRACE_SECONDS`;
  a second signal, or the grace running out, ends it at once. No signal is ever ignored.
- A child process (runner, connector, broker) dies with the process that started it,
  even when that one is killed with SIGKILL (Linux: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from algorail.errors import AlgorailError

STOP_GRACE_SECONDS = 10  # a graceful stop that takes longer (a broker gone too) is cut short
STOP_GRACE_ENV = "ALGORAIL_STOP_GRACE_SECONDS"  # e.g. to match a pod's termination grace
PR_SET_PDEATHSIG = 1


def stop_on_signals(stop: Callable[[], Any], grace: int | None = None) -> None:
    """Call `stop` on the first SIGTERM or SIGINT; end the process on the next one, or
    when it has not exited `grace` seconds after the first (default: $ALGORAIL_STOP_GRACE_SECONDS,
    else `STOP_GRACE_SECONDS`).

    A handler runs in the main thread between two bytecodes, possibly while that thread
    holds the very lock `stop` needs (``threading.Event.set``), so a second handler must
    not call `stop` again: it exits with ``os._exit``, which takes no lock. The deadline
    is ``alarm(2)`` with SIGALRM at its default action, so the kernel ends the process
    even when its main thread is stuck in a C call (a Kafka client closing towards a
    broker that died with the same parent).
    """
    if grace is None:
        grace = stop_grace()
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            os._exit(128 + signum)
        stopping = True
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(grace)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def stop_grace() -> int:
    """Seconds a graceful stop may take: $ALGORAIL_STOP_GRACE_SECONDS, else the default."""
    value = os.environ.get(STOP_GRACE_ENV) or str(STOP_GRACE_SECONDS)
    if not value.isdigit() or int(value) < 1:
        raise AlgorailError(f"{STOP_GRACE_ENV} must be a whole number of seconds (1 or more), "
                            f"not {value!r}")
    return int(value)


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen`: the child gets SIGTERM when its parent dies.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, so spawn
    children from a thread that lives as long as the process (the main thread). A parent
    that died between the fork and the call is caught by comparing the parent PID.
    libc is looked up here, in the parent: the child only makes the call. None (no
    guarantee) outside Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec
