"""Services stop on their first SIGTERM/SIGINT and are never left ignoring one: a second
signal that arrives while the first handler holds `threading.Event`'s lock ends the
process at once instead of deadlocking it, and a graceful stop that hangs (a Kafka client
closing towards a broker that died too) is cut short. An orphaned runner stuck exactly
there, ignoring SIGTERM, is how this was found."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from algorail.errors import AlgorailError
from algorail.runtime.signals import STOP_GRACE_ENV, stop_grace

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

HANGING = """
import sys, threading, time
from algorail.runtime.signals import stop_on_signals

stop_on_signals(lambda: None, grace=1)         # a stop that never makes the loop end
print("serving", flush=True)
threading.Event().wait(60)                     # a main thread stuck in a blocking call
"""


def run(mode: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                              text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None


def test_a_second_signal_during_stop_ends_the_service_at_once():
    done = run("stop_on_signals")
    assert done is not None, "the service hung in its signal handler"
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stdout == ""  # it did not go on after the second signal


def test_the_naive_handler_really_deadlocks():
    """The control: without stop_on_signals the same script hangs (so the test above can
    fail)."""
    assert run("naive") is None


def test_a_graceful_stop_that_hangs_is_cut_short():
    proc = subprocess.Popen([sys.executable, "-c", HANGING], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "serving"
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert code == -signal.SIGALRM  # ended by the grace deadline, not left running
    assert time.monotonic() - started < 5


def test_the_grace_comes_from_the_environment_and_a_bad_value_is_one_line(monkeypatch):
    monkeypatch.setenv(STOP_GRACE_ENV, "25")
    assert stop_grace() == 25
    monkeypatch.setenv(STOP_GRACE_ENV, "soon")
    with pytest.raises(AlgorailError, match="ALGORAIL_STOP_GRACE_SECONDS must be a whole "
                                            "number of seconds"):
        stop_grace()
