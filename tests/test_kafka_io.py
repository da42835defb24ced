"""The client surface `kafka_io` describes, on each client backend, against the embedded
broker: what the runner, hooks, sinks and ops tools rely on behaves alike on both."""

from __future__ import annotations

import threading
import uuid

import pytest
from conftest import BOTH_CLIENTS, wait_until

from algorail.errors import AlgorailError
from algorail.runtime import kafka_io


def test_an_unknown_client_name_is_refused(monkeypatch):
    monkeypatch.setenv(kafka_io.CLIENT_ENV, "pykafka")
    with pytest.raises(AlgorailError, match="ALGORAIL_KAFKA_CLIENT='pykafka' is not"):
        kafka_io.make_producer("127.0.0.1:9")


def test_kafka_python_setting_names_are_translated_for_confluent():
    from algorail.runtime.kafka_confluent import translate

    config, own = translate({"client_id": "a", "linger_ms": 0, "transactional_id": "t",
                             "max_poll_records": 10, "fetch.min.bytes": 1})
    assert config == {"client.id": "a", "linger.ms": 0, "transactional.id": "t",
                      "fetch.min.bytes": 1}
    assert own == {"max_poll_records": 10}
    with pytest.raises(ValueError, match="'max_partition_fetch_bytes' is not"):
        translate({"max_partition_fetch_bytes": 1})


@pytest.mark.parametrize("kafka_client", kafka_io.CLIENTS, indirect=True)
def test_a_broker_that_is_not_there_is_named(kafka_client):
    with pytest.raises(kafka_io.KafkaUnavailable, match="cannot reach Kafka at 127.0.0.1:9"):
        kafka_io.make_consumer("127.0.0.1:9", bootstrap_timeout_ms=1000)


@BOTH_CLIENTS
def test_send_read_seek_pause_and_commit(kafka_client, module_broker):
    bs = module_broker.bootstrap_servers
    topic = f"surface-{kafka_client}-{uuid.uuid4().hex[:6]}"
    kafka_io.ensure_topics(bs, [topic], partitions=2)
    assert kafka_io.ensure_topics(bs, [topic], partitions=2) == []
    producer = kafka_io.make_producer(bs, linger_ms=0)
    acknowledged = []
    futures = [producer.send(topic, value=b"v%d" % i, key=b"k%d" % (i % 4),
                             headers=[("n", b"%d" % i)])
               for i in range(40)]
    for future in futures:
        future.add_callback(acknowledged.append)
    producer.flush(10)
    assert wait_until(lambda: len(acknowledged) == 40, 5)
    assert futures[0].get(5).topic == topic
    assert len({(md.partition, md.offset) for md in acknowledged}) == 40
    assert producer.partitions_for(topic) == {0, 1}

    reader = kafka_io.make_consumer(bs)
    try:
        assert reader.partitions_for_topic(topic) == {0, 1}
        tps = kafka_io.partitions_of(reader, [topic])
        reader.assign(tps)
        assert reader.assignment() == set(tps)
        reader.seek(tps[0], 3)  # before anything was read: the first poll starts there
        reader.seek_to_beginning(tps[1])
        assert reader.position(tps[0]) == 3
        records = list(kafka_io.read_to_end(reader, tps, timeout=20))
        per_partition = {tp: [r for r in records if r.partition == tp.partition] for tp in tps}
        assert per_partition[tps[0]][0].offset == 3
        assert per_partition[tps[1]][0].offset == 0
        ends = {tp: reader.highwater(tp) for tp in tps}
        assert sum(ends.values()) == 40 and all(reader.position(tp) == ends[tp] for tp in tps)
        record = per_partition[tps[1]][0]
        assert record.key.startswith(b"k") and record.value.startswith(b"v")
        assert dict(record.headers)["n"] == record.value[1:] and record.timestamp > 0
        # a key goes to the same partition on either client (murmur2)
        assert len({r.partition for r in records if r.key == b"k1"}) == 1

        reader.seek(tps[1], 1)
        reader.pause(tps[1])
        assert reader.paused() == {tps[1]}
        assert tps[1] not in reader.poll(timeout_ms=300)
        reader.resume(tps[1])
        again = {}
        assert wait_until(lambda: again.update(reader.poll(timeout_ms=200)) or tps[1] in again,
                          10)
        assert again[tps[1]][0].offset == 1
        hit = reader.offsets_for_times({tps[1]: 0})[tps[1]]
        assert hit is not None and hit.offset == 0
    finally:
        kafka_io.close_consumer(reader)

    group = f"surface-{uuid.uuid4().hex[:6]}"
    member = kafka_io.make_consumer(bs, group)
    assigned = threading.Event()

    class Listener(kafka_io.rebalance_listener_base()):
        def on_partitions_revoked(self, revoked_tps):
            assigned.clear()

        def on_partitions_assigned(self, assigned_tps):
            assigned.set()

    try:
        member.subscribe(topics=[topic], listener=Listener())

        def joined() -> bool:
            member.poll(timeout_ms=200)  # the listener is called from within poll
            return assigned.is_set()

        assert wait_until(joined, 20)
        assert member.assignment() == set(tps)
        kafka_io.commit(member, {tps[0]: 2, tps[1]: 5})
        assert (member.committed(tps[0]), member.committed(tps[1])) == (2, 5)
    finally:
        kafka_io.close_consumer(member)
    admin = kafka_io.make_admin(bs)
    try:
        assert admin.group_offsets(group) == {tps[0]: 2, tps[1]: 5}
    finally:
        admin.close()
    producer.close()


@pytest.mark.parametrize("kafka_client", ["confluent"], indirect=True)
def test_a_record_refused_before_it_is_queued_fails_as_a_failed_delivery_does(
        kafka_client, module_broker):
    """Once librdkafka's metadata says a topic is unknown it refuses the next records in
    ``produce`` itself: they must reach the caller as the first one's failed delivery did
    (the error report, or the future), not as an exception from `send`."""
    import confluent_kafka as ck

    bs = module_broker.bootstrap_servers
    reported: list[BaseException] = []
    unwatched = kafka_io.make_producer(bs, on_error=reported.append)
    watched = kafka_io.make_producer(bs)
    failures: list[BaseException] = []
    try:
        for _ in range(3):
            assert unwatched.send("not a topic!", b"x") is None
            unwatched.flush(10)
            with pytest.raises(ck.KafkaException) as failed:
                watched.send("not a topic!", b"x").get(10)
            failures.append(failed.value)
    finally:
        unwatched.close()
        watched.close()
    assert len(reported) == 3
    local = ck.KafkaError._UNKNOWN_TOPIC
    assert any(exc.args[0].code() == local for exc in reported)
    assert any(exc.args[0].code() == local for exc in failures)
