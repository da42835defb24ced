"""Both Kafka clients hold a steady load on the embedded broker with the settings algorail
recommends for it (`broker.CONFLUENT_CONSUMER_SETTINGS`, `kafka_io.CONSUMER_DEFAULTS`).

`benchmarks/broker_soak.py` is the long version (60 s at 500 records/s, both clients).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import broker_soak  # noqa: E402

pytest.importorskip("confluent_kafka")


@pytest.mark.slow
@pytest.mark.parametrize("client", list(broker_soak.CLIENTS))
def test_a_consumer_keeps_up_with_a_steady_load_from_its_first_seconds(client):
    """librdkafka's default 45 s session timeout kept a new consumer waiting ~23 s for its
    group on the embedded broker, 11,000 records behind at 500/s."""
    args = broker_soak.parse_args(["--seconds", "8", "--rate", "500", "--client", client])
    row = broker_soak.soak(client, args, {})
    assert (row["sent"], row["lost"], row["duplicates"]) == (4000, 0, 0), row
    assert 0 <= row["first_record_s"] < 10, row
