"""The delivery loop on a real broker, on both Kafka clients: commits only what is done and
only after the producer acknowledged what was sent, pauses at the in-flight limit,
commits the revoked partitions' done work before they move on a rebalance (their new
owner reads none of it again) and drops the rest; and the runner's retry
topics: a poison record waiting for its retries delays no record behind it, then goes to
the dead-letter topic; a failure not retried goes there at once; keys and their order
hold from input to output."""

from __future__ import annotations

import textwrap
import threading
import time
import uuid

import pytest
from conftest import BOTH_CLIENTS, wait_until

from algorail.runtime import codec, delivery, kafka_io
from algorail.runtime.delivery import DeliveryLoop, Processor
from algorail.runtime.testing import TopicReader, plan_from_yaml, produce, start_runners


class Holding(Processor):
    """Echoes each record to `out` and is done with it, except the offsets in `hold`
    (per partition), which stay open until `release()`.

    The open records are released, and `state` (the loop's throttled, paused, assigned) is
    read, in the loop's own thread at its ticks, as the runtime calls a consumer from its
    loop's thread alone: confluent-kafka lets one thread at a time into a consumer, so a
    call from another thread can wait out the polling thread's turns for a minute."""

    def __init__(self, out: str | None = None, hold: set[tuple[int, int]] = frozenset(),
                 max_in_flight: int = 10_000):
        self.out, self.hold, self.max_in_flight = out, set(hold), max_in_flight
        self.seen: list[tuple[int, int]] = []
        self.open: list = []
        self.revoked_calls: list[list] = []
        self.state: tuple | None = None
        self.releasing = False

    def process(self, record):
        self.seen.append((record.partition, record.offset))
        if self.out:
            self.loop.send(self.out, record.value, record.key, record.headers)
        if (record.partition, record.offset) in self.hold or self.max_in_flight < 10_000:
            self.open.append(record)
        else:
            self.loop.done(record)

    def release(self):
        """Done with the open records at the loop's next tick."""
        self.releasing = True

    def revoked(self, tps):
        self.revoked_calls.append(list(tps))
        self.open.clear()

    def tick(self):
        if self.releasing:
            self.releasing = False
            for record in self.open:
                self.loop.done(record)
            self.open.clear()
        consumer = self.loop.consumer
        self.state = (self.loop.throttled, consumer.paused(), consumer.assignment())


class Running:
    """A loop in a thread; `stop()` joins it and raises what it raised."""

    def __init__(self, loop: DeliveryLoop):
        self.loop, self.error = loop, None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.loop.run(max_seconds=120)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> Running:
        self.thread.start()
        assert self.loop.ready.wait(30), "no partitions assigned"
        return self

    def stop(self):
        self.loop.stop()
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def topics(bs: str, partitions: int = 1, count: int = 2) -> list[str]:
    names = [f"delivery-{uuid.uuid4().hex[:8]}-{i}" for i in range(count)]
    kafka_io.ensure_topics(bs, names, partitions=partitions)
    return names


def fill(bs: str, topic: str, count: int, partitions: int = 1) -> None:
    producer = kafka_io.make_producer(bs)
    for i in range(count):
        producer.send(topic, value=b'{"i": %d}' % i, key=f"k{i % partitions}".encode(),
                      headers=codec.Envelope(f"r{i}").to_headers())
    producer.flush()
    producer.close()


def committed(bs: str, group: str, topic: str, partition: int = 0) -> int | None:
    consumer = kafka_io.make_consumer(bs, group)
    try:
        return consumer.committed(kafka_io.TopicPartition(topic, partition))
    finally:
        kafka_io.close_consumer(consumer)


@BOTH_CLIENTS
def test_commits_only_what_is_done_and_only_after_the_outputs_are_acknowledged(
        kafka_client, module_broker, monkeypatch):
    bs = module_broker.bootstrap_servers
    source, out = topics(bs)
    fill(bs, source, 20)
    events = []
    real_commit = kafka_io.commit
    monkeypatch.setattr(kafka_io, "commit", lambda consumer, offsets: (
        events.append(("commit", dict(offsets))), real_commit(consumer, offsets)))
    group = f"g-{uuid.uuid4().hex[:6]}"
    processor = Holding(out, hold={(0, 7)})
    loop = DeliveryLoop(processor, bs, group, [source], commit_seconds=0.2)
    real_flush = loop.producer.flush
    loop.producer.flush = lambda *a, **k: (events.append(("flush",)), real_flush(*a, **k))[1]
    running = Running(loop).start()
    try:
        assert wait_until(lambda: len(processor.seen) == 20, 20)
        assert wait_until(lambda: committed(bs, group, source) == 7, 10)
        time.sleep(0.5)
        assert committed(bs, group, source) == 7  # record 7 is open: nothing past it
        processor.release()
        assert wait_until(lambda: committed(bs, group, source) == 20, 10)
    finally:
        running.stop()
    commits = [i for i, e in enumerate(events) if e[0] == "commit"]
    assert commits and all(events[i - 1] == ("flush",) for i in commits)
    assert len(TopicReader(bs, out).read(20, timeout=10)) == 20


@BOTH_CLIENTS
def test_a_send_that_fails_stops_the_loop_before_its_input_is_committed(
        kafka_client, module_broker):
    """The loop's own producer reports failed sends only: a failure must still stop the
    loop with no input committed past it, so the inputs are read again. The broker refuses
    the topic name (confluent-kafka learns it in a delivery report, then refuses the next
    records in produce, reported the same way; kafka-python checks the name before it sends,
    and raises in the send)."""
    bs = module_broker.bootstrap_servers
    [source] = topics(bs, count=1)
    fill(bs, source, 20)
    group = f"g-{uuid.uuid4().hex[:6]}"
    processor = Holding("not a topic!")
    loop = DeliveryLoop(processor, bs, group, [source], commit_seconds=0.2)
    running = Running(loop).start()
    assert wait_until(lambda: not running.thread.is_alive(), 30)
    failure = delivery.ProduceFailed if kafka_client == "confluent" else ValueError
    with pytest.raises(failure):
        running.stop()
    assert processor.seen and committed(bs, group, source) in (None, 0)


@BOTH_CLIENTS
def test_a_lone_records_output_is_sent_at_once_not_after_the_producers_linger(
        kafka_client, module_broker, monkeypatch):
    """With no more input waiting the loop flushes its producer: the output of one record
    arrives long before a 3 s linger or the 30 s commit interval would send it."""
    monkeypatch.setattr(kafka_io, "EMBEDDED_PRODUCER_SETTINGS", {"linger_ms": 3000})
    bs = module_broker.bootstrap_servers
    source, out = topics(bs)
    loop = DeliveryLoop(Holding(out), bs, f"g-{uuid.uuid4().hex[:6]}", [source],
                        commit_seconds=30)
    running = Running(loop).start()
    try:
        reader = TopicReader(bs, out)
        fill(bs, source, 1)
        sent = time.monotonic()
        assert len(reader.read(1, timeout=10)) == 1
        assert time.monotonic() - sent < 2.0
        reader.close()
    finally:
        running.stop()


@BOTH_CLIENTS
def test_records_arriving_one_after_another_are_each_sent_at_once(
        kafka_client, module_broker, monkeypatch):
    """A record that comes a few milliseconds after the previous one's output was flushed
    (sync requests one at a time) is flushed at once too, not after the producer's linger
    or the poll's wait."""
    monkeypatch.setattr(kafka_io, "EMBEDDED_PRODUCER_SETTINGS", {"linger_ms": 3000})
    bs = module_broker.bootstrap_servers
    source, out = topics(bs)
    processor = Holding(out)
    loop = DeliveryLoop(processor, bs, f"g-{uuid.uuid4().hex[:6]}", [source],
                        commit_seconds=30, poll_ms=3000)
    running = Running(loop).start()
    producer = kafka_io.make_producer(bs, linger_ms=0)
    reader = TopicReader(bs, out)
    try:
        waits = []
        for i in range(5):
            producer.send(source, value=b'{"i": %d}' % i,
                          headers=codec.Envelope(f"r{i}").to_headers())
            producer.flush()
            assert wait_until(lambda n=i: len(processor.seen) > n, 10)
            seen = time.monotonic()
            assert len(reader.read(i + 1, timeout=10)) == i + 1
            waits.append(time.monotonic() - seen)
        assert max(waits) < 1.0, waits
    finally:
        reader.close()
        producer.close()
        running.stop()


@BOTH_CLIENTS
def test_outputs_of_full_polls_share_the_producers_batches(kafka_client, module_broker):
    """While polls come back full, more input waits: the loop does not flush after them."""
    bs = module_broker.bootstrap_servers
    source, out = topics(bs)
    fill(bs, source, 40)
    processor = Holding(out)
    loop = DeliveryLoop(processor, bs, f"g-{uuid.uuid4().hex[:6]}", [source],
                        commit_seconds=30, max_poll_records=4)
    flushes = []
    real_flush = loop.producer.flush
    loop.producer.flush = lambda *a, **k: (flushes.append(len(processor.seen)),
                                           real_flush(*a, **k))[1]
    running = Running(loop).start()
    try:
        assert wait_until(lambda: len(processor.seen) == 40, 20)
        assert wait_until(lambda: flushes and flushes[-1] == 40, 10)
    finally:
        running.stop()
    assert len([n for n in flushes if n < 40]) <= 2, flushes  # ten polls of four


@BOTH_CLIENTS
def test_pauses_at_the_in_flight_limit_and_resumes_at_half(kafka_client, module_broker):
    bs = module_broker.bootstrap_servers
    [source] = topics(bs, count=1)
    fill(bs, source, 40)
    processor = Holding(max_in_flight=8)
    loop = DeliveryLoop(processor, bs, f"g-{uuid.uuid4().hex[:6]}", [source],
                        max_poll_records=4)
    running = Running(loop).start()
    try:
        assert wait_until(lambda: len(processor.seen) >= 8, 20)
        time.sleep(1.0)
        throttled, paused, assigned = processor.state
        assert throttled and 8 <= len(processor.seen) <= 12  # one poll past the limit
        assert paused == assigned
        processor.release()
        assert wait_until(lambda: len(processor.seen) >= 16, 10)
        throttled, paused, assigned = processor.state
        assert not all(tp in paused for tp in assigned) or throttled
    finally:
        processor.release()
        running.stop()


@BOTH_CLIENTS
def test_a_rebalance_commits_the_revoked_partitions_done_work_and_drops_the_rest(
        kafka_client, module_broker):
    bs = module_broker.bootstrap_servers
    [source] = topics(bs, partitions=2, count=1)
    producer = kafka_io.make_producer(bs)
    for i in range(40):  # until both partitions have records past offset 3
        producer.send(source, value=b"{}", key=f"k{i}".encode(),
                      headers=codec.Envelope(f"r{i}").to_headers())
    producer.flush()
    producer.close()
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = Holding(hold={(0, 3), (1, 3)})
    # no commit on the interval: what is committed below is the revocation's commit
    running = [Running(DeliveryLoop(first, bs, group, [source], commit_seconds=600)).start()]
    try:
        assert wait_until(lambda: len(first.seen) == 40, 20)
        # the new owners keep what they read open, so no later commit of theirs moves
        # the offsets past what the revocation committed, however slow the checks below
        second = Holding(max_in_flight=1000)
        running.append(Running(DeliveryLoop(second, bs, group, [source])).start())
        assert any(first.revoked_calls)  # the second member is in: the partitions moved
        # the revocation committed the done work before the partitions moved, on both
        # clients
        assert [committed(bs, group, source, p) for p in (0, 1)] == [3, 3]
        # so the open records are read again by the partitions' new owners, and none of
        # the done ones before them
        assert wait_until(lambda: {(0, 3), (1, 3)} <= {*first.seen[40:], *second.seen}, 30)
        assert [(p, o) for p, o in [*first.seen[40:], *second.seen] if o < 3] == []
    finally:
        for r in running:
            r.stop()


ALGOS = '''
import pathlib
import time

class NotRetried(Exception):
    retryable = False

def picky(p):
    if p.get("poison"):
        with open(pathlib.Path(__file__).with_name("poison-calls"), "a") as calls:
            calls.write(f"{time.time()}\\n")
        raise ValueError("poison " + str(p["i"]))
    if p.get("refused"):
        raise NotRetried("refused " + str(p["i"]))
    return {"i": p["i"], "at": time.time()}
'''


def pipeline(name: str, retry: str) -> str:
    return textwrap.dedent(f"""
    apiVersion: algorail.io/v1
    kind: Pipeline
    metadata: {{owner: dl, name: {name}}}
    spec:
      endpoints: [{{name: api, paths: [{{name: in}}]}}]
      algos:
        - {{name: picky, runtime: python, entrypoint: "deliveryalgos:picky", retry: {retry}}}
      pipes: [{{from: api.in, to: picky.in}}]
    """)


@pytest.fixture
def runner_of(module_broker, tmp_path):
    started = []
    (tmp_path / "deliveryalgos.py").write_text(ALGOS)

    def _start(name, retry):
        plan = plan_from_yaml(pipeline(name, retry), tmp_path, module_broker.bootstrap_servers,
                              deployment=f"{name}-{uuid.uuid4().hex[:6]}")
        started.extend(start_runners(plan, module_broker.bootstrap_servers, metrics_port=0))
        return plan, started[-1].runner

    yield _start
    for t in started:
        t.stop()


def test_the_plan_names_one_retry_topic_per_backoff_wait(runner_of):
    plan, _ = runner_of("steps", "{attempts: 9, backoffMs: 100, maxBackoffMs: 500}")
    steps = plan.runner("picky").retry_topics
    assert [(t.name.split(".", 2)[2], t.delay_ms) for t in steps] == [
        ("picky.retry.1", 100), ("picky.retry.2", 200), ("picky.retry.3", 400),
        ("picky.retry.4", 500)]
    roles = {t.name: t.role for t in plan.topics}
    assert all(roles[t.name] == "retry" for t in steps)


@BOTH_CLIENTS
def test_a_poison_record_waiting_for_retries_does_not_delay_the_records_behind_it(
        kafka_client, runner_of, module_broker, tmp_path):
    bs = module_broker.bootstrap_servers
    plan, runner = runner_of(f"poison-{kafka_client}",
                             "{attempts: 2, backoffMs: 1000, maxBackoffMs: 10000}")
    spec = plan.runner("picky")
    endpoint = plan.routes[0].topic
    outputs = TopicReader(bs, spec.outputs["out"])
    dead = TopicReader(bs, spec.dead_letter_topic)
    try:
        produce(bs, endpoint, [("poison", {"i": 0, "poison": True})])
        produce(bs, endpoint, [(f"good{i}", {"i": i}) for i in range(1, 6)])
        good = outputs.read(5, timeout=10)
        latest = max(codec.decode(r.value, codec.JSON)["at"] for r in good)
        assert sorted(codec.decode(r.value, codec.JSON)["i"] for r in good) == [1, 2, 3, 4, 5]
        [letter] = dead.read(1, timeout=15)
        calls = [float(t) for t in (tmp_path / "poison-calls").read_text().split()]
        assert len(calls) == 3
        assert latest < calls[1], "the good records waited for the poison one's retries"
        waits = [b - a for a, b in zip(calls, calls[1:], strict=False)]
        assert waits[0] >= 0.95 and waits[1] >= 1.95  # 1 s, then 2 s
        headers = codec.header_dict(letter.headers)
        assert headers[codec.RUN_ID] == "poison" and "poison 0" in headers[codec.ERROR]
        assert codec.decode(letter.value, codec.JSON) == {"i": 0, "poison": True}
        assert runner.metrics.retries.labels("picky")._value.get() == 2
        retried = [TopicReader(bs, t.name).read(1, timeout=5) for t in spec.retry_topics]
        assert [len(r) for r in retried] == [1, 1]
        assert [codec.header_dict(r[0].headers)["algorail-attempt"] for r in retried] == [
            "1", "2"]
    finally:
        outputs.close()
        dead.close()


def test_a_failure_that_is_not_retried_fails_the_run_at_once(runner_of, module_broker):
    bs = module_broker.bootstrap_servers
    plan, runner = runner_of("refused", "{attempts: 5, backoffMs: 2000}")
    spec = plan.runner("picky")
    sent = time.time()
    produce(bs, plan.routes[0].topic, [("no", {"i": 7, "refused": True})])
    [letter] = TopicReader(bs, spec.dead_letter_topic).read(1, timeout=10)
    assert time.time() - sent < 1.5
    assert "refused 7" in codec.header_dict(letter.headers)[codec.ERROR]
    assert TopicReader(bs, spec.retry_topics[0].name).read(1, timeout=1) == []
    assert runner.metrics.retries.labels("picky")._value.get() == 0


def test_outputs_keep_their_inputs_keys_and_each_keys_order(runner_of, module_broker):
    bs = module_broker.bootstrap_servers
    plan, _ = runner_of("keys", "{attempts: 0}")
    spec = plan.runner("picky")
    kafka_io.ensure_topics(bs, [spec.outputs["out"]], partitions=1)
    producer = kafka_io.make_producer(bs)
    for i in range(30):
        producer.send(plan.routes[0].topic, value=b'{"i": %d}' % i, key=f"user{i % 3}".encode(),
                      headers=codec.Envelope(f"run{i}").to_headers())
    producer.send(plan.routes[0].topic, value=b'{"i": 99}',  # no key, as the gateway sends
                  headers=codec.Envelope("unkeyed").to_headers())
    producer.flush()
    producer.close()
    out = TopicReader(bs, spec.outputs["out"]).read(31, timeout=15)
    by_key: dict[bytes, list[int]] = {}
    for record in out:
        by_key.setdefault(record.key, []).append(codec.decode(record.value, codec.JSON)["i"])
    assert by_key.pop(b"unkeyed") == [99]  # keyed by its run id
    assert by_key == {f"user{k}".encode(): list(range(k, 30, 3)) for k in range(3)}


def test_offset_tracker_commits_the_first_open_offset_and_rewinds():
    tracker = delivery.OffsetTracker()
    tp = kafka_io.TopicPartition("t", 0)
    for offset in range(5):
        tracker.track(tp, offset)
    for offset in (0, 1, 3):
        tracker.resolve(tp, offset)
    assert tracker.committable() == {tp: 2} and tracker.unresolved() == 2
    tracker.rewind(tp, 3)
    assert tracker.committable() == {tp: 2} and tracker.next[tp] == 3
    tracker.resolve(tp, 2)
    assert tracker.committable() == {tp: 3}
