"""Services stop on the first SIGTERM/SIGINT and ignore the rest: a second signal that
arrives while the first handler holds `threading.Event`'s lock must not deadlock them
(Kubernetes, a dying parent and Ctrl-C can all signal at once). An orphaned runner stuck
exactly there, five handlers deep, is how this was found."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, sys, threading, time
from algorail.runtime.signals import stop_on_signals

stopped = threading.Event()

def stop():
    with stopped._cond:                        # the lock Event.set takes, held...
        os.kill(os.getpid(), signal.SIGTERM)   # ...when the next signal arrives
        time.sleep(0.05)                       # (handlers run between bytecodes)
    stopped.set()

if sys.argv[1] == "naive":
    signal.signal(signal.SIGTERM, lambda *_: stop())
else:
    stop_on_signals(stop)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print("stopped" if stopped.is_set() else "running", flush=True)
"""


def run(mode: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                              text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None


def test_a_second_signal_during_stop_is_ignored():
    done = run("stop_on_signals")
    assert done is not None, "the service hung in its signal handler"
    assert done.stdout.strip() == "stopped", done.stderr


def test_the_naive_handler_really_deadlocks():
    """The control: without stop_on_signals the same script hangs (so the test above can
    fail)."""
    assert run("naive") is None
