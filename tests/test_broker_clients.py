"""Dev mode holds a steady load on either Kafka client with the settings algorail uses for
the embedded broker (`broker.CONFLUENT_CONSUMER_SETTINGS`, `kafka_confluent.PRODUCER_DEFAULTS`,
`kafka_python.CONSUMER_DEFAULTS`).

`benchmarks/broker_soak.py` runs the same soak with its numbers printed (``--through dev``,
or ``--through broker`` for the clients alone).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import BOTH_CLIENTS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import broker_soak  # noqa: E402


@pytest.mark.slow
@pytest.mark.soak
@BOTH_CLIENTS
def test_dev_mode_holds_a_steady_load_and_delivers_every_record_once(kafka_client):
    """60 s at 500 records/s into a pass-through algo under `algorail dev`, its runner and
    the reader of its outputs on `kafka_client`: every record arrives, once, and latency
    does not run away. On librdkafka with one-record batches (1 ms linger) the embedded
    broker's lookups fell behind after ~30 s (p50 40 ms in the first 10 s, 1.4 s in the
    last, or records never arriving); librdkafka's default 45 s session timeout kept a new
    consumer waiting ~23 s for its group."""
    args = broker_soak.parse_args(["--seconds", "60", "--rate", "500", "--through", "dev"])
    row = broker_soak.soak(kafka_client, args, {})
    assert (row["sent"], row["lost"], row["duplicates"]) == (30000, 0, 0), row
    # (the ~23 s wait, under any load of this machine, stays well clear of 15 s)
    assert 0 <= row["first_record_s"] < 15, row
    windows = row["p50_ms_per_10s"]
    assert windows[-1] < 5 * max(windows[0], 20.0), row
