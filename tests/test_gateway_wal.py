"""The gateway's write-ahead log: on real files, and with a real broker that is stopped and
started again on the same port (Tansu keeps topics in memory, so they are created again),
a gateway served by uvicorn on loopback, and `algorail gateway` killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from conftest import AsgiServer, read_topic, wait_until

from algorail.compiler import compile_plan
from algorail.loader import validate_document
from algorail.runtime import codec
from algorail.runtime.broker import EmbeddedBroker, free_port
from algorail.runtime.gateway import GatewayError, create_app
from algorail.runtime.hooks import HookDispatcher
from algorail.runtime.kafka_io import ensure_topics
from algorail.runtime.results import MemoryResultsStore
from algorail.runtime.wal import WalError, WalFull, WalRecord, WalReplayer, WriteAheadLog


def make_plan():
    """An endpoint piped straight into a response hook, under a deployment of its own."""
    deployment = f"wal{uuid.uuid4().hex[:8]}"
    return compile_plan(validate_document({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "walt", "name": deployment, "version": "1.0.0"},
        "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
                 "hooks": [{"name": "echo", "type": "response"}],
                 "pipes": [{"from": "api.in", "to": "echo"}]}}))


def record(n: int) -> WalRecord:
    run_id = uuid.uuid4().hex
    headers = codec.Envelope(run_id=run_id, source="api.in").to_headers()
    return WalRecord(run_id, "walt.t.in", json.dumps({"n": n}).encode(), headers)


def run_ids(records) -> list[str]:
    return [codec.Envelope.from_headers(r.headers).run_id for r in records]


def logged(directory, count: int, **options) -> tuple[WriteAheadLog, list[WalRecord]]:
    """A log in `directory` with `count` records appended."""
    wal = WriteAheadLog(directory, **options)
    written = [record(n) for n in range(count)]
    for r in written:
        wal.append(r)
    return wal, written


def segment_files(directory) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wal"))


# -- the log on disk -------------------------------------------------------------------------


def test_the_replayer_reads_a_record_only_once_it_is_synced(tmp_path):
    wal = WriteAheadLog(tmp_path)
    first = record(1)
    _, number = wal.write(first)
    assert wal.pending == 1 and wal.wait_pending(10, timeout=0.05) == []
    wal.sync(number)
    assert [r.run_id for r in wal.wait_pending(10, timeout=0)] == [first.run_id]
    wal.close()


def test_records_survive_reopening_in_order_until_acknowledged(tmp_path):
    wal, written = logged(tmp_path, 3)
    wal.close()
    wal = WriteAheadLog(tmp_path)
    assert wal.pending == 3
    replay = wal.wait_pending(10, timeout=0)
    assert [(r.run_id, r.topic, r.value, r.headers, r.key) for r in replay] == [
        (r.run_id, r.topic, r.value, r.headers, None) for r in written]
    wal.acknowledge(replay[:2])
    wal.close()
    wal = WriteAheadLog(tmp_path, segment_bytes=100)  # drained segments rotate past 100 B
    assert [r.run_id for r in wal.wait_pending(10, timeout=0)] == [written[2].run_id]
    before = segment_files(tmp_path)
    wal.acknowledge(wal.wait_pending(10, timeout=0))
    assert (wal.pending, wal.pending_bytes) == (0, 0)
    after = segment_files(tmp_path)
    assert len(after) == 1 and after != before  # rotated: the drained segment is gone
    assert os.path.getsize(tmp_path / after[0]) == 0
    wal.close()


def test_a_torn_last_record_is_cut_and_appending_goes_on(tmp_path):
    wal, first = logged(tmp_path, 2)
    wal.close()
    [segment] = segment_files(tmp_path)
    with open(tmp_path / segment, "ab") as handle:  # a crash halfway through an append
        handle.write(record(9).encode()[:25])
    wal = WriteAheadLog(tmp_path)
    assert wal.pending == 2
    last = record(3)
    wal.append(last)
    assert [r.run_id for r in wal.wait_pending(10, 0)] == [r.run_id for r in first + [last]]
    wal.close()


def test_replay_past_the_records_held_in_memory_reads_the_disk_in_order(tmp_path, monkeypatch):
    from algorail.runtime import wal as wal_module

    monkeypatch.setattr(wal_module, "MEMORY_RECORDS", 3)
    wal, written = logged(tmp_path, 5)  # two more than memory holds: the disk is read
    replay = wal.wait_pending(2, 0)
    assert run_ids(replay) == run_ids(written[:2])
    wal.acknowledge(replay)
    rest = wal.wait_pending(10, 0)
    assert [(r.run_id, r.value, r.headers) for r in rest] == [
        (r.run_id, r.value, r.headers) for r in written[2:]]
    wal.acknowledge(rest)
    later = [record(n) for n in range(2)]  # drained: remembered again
    for r in later:
        wal.append(r)
    assert run_ids(wal.wait_pending(10, 0)) == run_ids(later)
    wal.close()
    again = WriteAheadLog(tmp_path)
    assert run_ids(again.wait_pending(10, 0)) == run_ids(later)
    again.close()


class FullOnce:
    """A segment file whose first write stops halfway with a full disk."""

    def __init__(self, file):
        self.file, self.failed = file, False

    def write(self, data):
        if not self.failed:
            self.failed = True
            self.file.write(bytes(data[:len(data) // 2]))
            raise OSError(28, "No space left on device")
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


def test_a_write_that_fails_halfway_is_cut_back_and_written_again(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal._active = FullOnce(wal._active)
    first = record(1)
    _, number = wal.write(first)
    with pytest.raises(OSError):
        wal.sync(number)
    later = record(2)
    wal.append(later)  # its sync writes the first one too, where `write` said it would be
    assert run_ids(wal.wait_pending(10, 0)) == [first.run_id, later.run_id]
    wal.close()
    again = WriteAheadLog(tmp_path)
    assert run_ids(again.wait_pending(10, 0)) == [first.run_id, later.run_id]
    again.close()


def test_segments_roll_over_and_are_deleted_once_acknowledged(tmp_path):
    wal, written = logged(tmp_path, 12, segment_bytes=1000)
    assert len(segment_files(tmp_path)) > 2
    replay = wal.wait_pending(5, 0)
    wal.acknowledge(replay)
    rest = wal.wait_pending(100, 0)
    assert run_ids(replay + rest) == [r.run_id for r in written]
    wal.acknowledge(rest)
    assert len(segment_files(tmp_path)) == 1 and wal.pending == 0
    wal.close()


def test_the_log_refuses_records_beyond_its_limit_and_one_gateway_holds_it(tmp_path):
    size = len(record(0).encode())
    wal, _ = logged(tmp_path, 3, max_bytes=size * 3 + size // 2)
    with pytest.raises(WalFull, match="write-ahead log is full .*raise --wal-max-bytes"):
        wal.append(record(3))
    with pytest.raises(WalError, match="another gateway is using"):
        WriteAheadLog(tmp_path)
    wal.acknowledge(wal.wait_pending(1, 0))
    wal.append(record(4))  # room again
    assert wal.pending == 3
    wal.close()


def test_a_log_smaller_than_one_request_is_refused(tmp_path):
    with pytest.raises(GatewayError, match="--wal-max-bytes .* must be at least"):
        create_app(make_plan(), results=MemoryResultsStore(), bootstrap_servers="127.0.0.1:1",
                   wal_dir=tmp_path, wal_max_bytes=1000, max_body_bytes=2000)


# -- the gateway with a broker that goes away --------------------------------------------------


# -- group commit ------------------------------------------------------------------------------


class CountedFsync:
    """os.fsync that counts its calls and remembers how much of the file each one covered."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls, self.durable = 0, 0

    def __call__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        os.fsync(fd)
        with self.lock:
            self.calls += 1
            self.durable = max(self.durable, size)


def test_concurrent_appends_share_an_fsync_and_return_only_once_on_disk(tmp_path):
    fsync = CountedFsync()
    wal = WriteAheadLog(tmp_path, fsync=fsync)
    threads, per_thread = 16, 8
    start, late = threading.Barrier(threads), []

    def client() -> None:
        start.wait()
        for n in range(per_thread):
            end = wal.append(record(n))
            with fsync.lock:
                if fsync.durable < end.offset:  # answered before its bytes were synced
                    late.append(end)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    appended = threads * per_thread
    assert wal.pending == appended and not late
    assert fsync.calls < appended / 2, f"{fsync.calls} fsyncs for {appended} appends"
    wal.close()
    assert len(WriteAheadLog(tmp_path).wait_pending(1000, 0)) == appended


def test_the_checkpoint_reaches_the_disk_about_once_a_second(tmp_path):
    """A replayer acknowledging small batches for two seconds writes the checkpoint file
    two or three times, not once per batch; a crash replays only what came after it."""
    wal = WriteAheadLog(tmp_path)
    batches, started = 0, time.monotonic()
    while time.monotonic() - started < 2.2 and batches < 5000:
        wal.append(record(batches))
        wal.acknowledge(wal.wait_pending(10, 0))
        batches += 1
        time.sleep(0.002)
    assert batches > 50
    assert 2 <= wal.checkpoints_written <= 3, f"{wal.checkpoints_written} for {batches} batches"
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert (saved["segment"], saved["offset"]) == (wal.saved.segment, wal.saved.offset)
    wal._lock_file.close()  # a crash: the lock goes with the process, nothing is saved
    again = WriteAheadLog(tmp_path)
    assert 0 < again.pending < batches  # what was acknowledged after the last save
    again.close()
    wal._active.close()


def test_a_closed_log_saves_its_checkpoint_and_an_idle_one_saves_it_in_time(tmp_path):
    wal, _ = logged(tmp_path, 5, checkpoint_seconds=0.3)
    wal.acknowledge(wal.wait_pending(2, 0))
    assert wal.checkpoints_written == 0  # too soon after opening
    assert wal.wait_pending(10, 0) and wal.checkpoints_written == 0
    wal.acknowledge(wal.wait_pending(10, 0))
    time.sleep(0.35)
    assert wal.wait_pending(10, 0.05) == [] and wal.checkpoints_written == 1
    wal.append(record(6))
    wal.acknowledge(wal.wait_pending(10, 0))
    wal.close()
    assert wal.checkpoints_written == 2 and WriteAheadLog(tmp_path).pending == 0


def test_concurrent_requests_to_the_gateway_share_fsyncs(tmp_path):
    """64 clients posting at once (the broker is down: requests wait in the log) are each
    answered 202 with far fewer fsyncs than requests."""
    dead = f"127.0.0.1:{free_port()}"
    plan = make_plan()
    app = create_app(plan, results=MemoryResultsStore(), bootstrap_servers=dead,
                     wal_dir=tmp_path)
    fsync = CountedFsync()
    app.state.wal._fsync = fsync
    with AsgiServer(app) as server:
        url = server.url + plan.routes[0].url

        async def load() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                async def one(n: int) -> int:
                    return (await client.post(url, json={"n": n})).status_code
                return await asyncio.gather(*(one(n) for n in range(256)))

        statuses = asyncio.run(load())
    assert statuses == [202] * 256 and app.state.wal.pending == 256
    assert fsync.calls < 256 / 3, f"{fsync.calls} fsyncs for 256 requests"


APPENDER = """
import sys, threading, uuid
from algorail.runtime.wal import WalRecord, WriteAheadLog

wal, lock = WriteAheadLog(sys.argv[1]), threading.Lock()

def client():
    for n in range(100_000):
        run_id = uuid.uuid4().hex
        wal.append(WalRecord(run_id, "t", b"{}", []))
        with lock:
            print(run_id, flush=True)  # the acknowledgement

for _ in range(16):
    threading.Thread(target=client, daemon=True).start()
threading.Event().wait(60)
"""


def killed_after(script: str, directory, lines: int) -> list[str]:
    """Run `script` on `directory`, SIGKILL it once it printed `lines` lines: every line
    it printed, those printed before the kill included."""
    child = subprocess.Popen([sys.executable, "-c", script, str(directory)],
                             stdout=subprocess.PIPE, text=True)
    printed = []
    try:
        for line in child.stdout:
            printed.append(line.strip())
            if len(printed) == lines:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    return printed + [line.strip() for line in child.stdout]


def test_every_acknowledged_append_survives_a_kill_9(tmp_path):
    acknowledged = killed_after(APPENDER, tmp_path, 300)
    assert len(acknowledged) >= 300
    survived = {r.run_id for r in WriteAheadLog(tmp_path).wait_pending(1_000_000, 0)}
    assert set(acknowledged) <= survived


ROTATING_APPENDER = """
import sys, threading, uuid
from algorail.runtime.wal import WalRecord, WriteAheadLog

wal, lock = WriteAheadLog(sys.argv[1], segment_bytes=300), threading.Lock()
wal.rotate_bytes = 200  # drained segments rotate too, while appends go on

def client():
    for n in range(100_000):
        run_id = uuid.uuid4().hex
        wal.append(WalRecord(run_id, "t", b"{}", []))
        with lock:
            print("202", run_id, flush=True)

def replayer():  # takes records as the gateway's replayer does, without a broker
    while True:
        records = wal.wait_pending(7, 0.5)
        with lock:
            for r in records:
                print("sent", r.run_id, flush=True)
        wal.acknowledge(records)

for _ in range(16):
    threading.Thread(target=client, daemon=True).start()
threading.Thread(target=replayer, daemon=True).start()
threading.Event().wait(60)
"""


def test_segment_rotation_under_concurrent_appends_loses_and_doubles_nothing(tmp_path):
    """Many small segments, rotated both by appends and by the replayer draining them, then
    a kill -9: every record answered 202 is either replayed after reopening or was sent
    before the crash, none is in the log twice, and only a tail of what was sent comes back."""
    lines = [line.split() for line in killed_after(ROTATING_APPENDER, tmp_path, 3000)]
    lines = [parts for parts in lines if len(parts) == 2 and len(parts[1]) == 32]  # not torn
    accepted = [run_id for kind, run_id in lines if kind == "202"]
    sent = [run_id for kind, run_id in lines if kind == "sent"]
    assert len(accepted) >= 1000 and sent
    assert len(segment_files(tmp_path)) > 1 or len(set(sent)) < len(accepted)
    replayed = [r.run_id for r in WriteAheadLog(tmp_path).wait_pending(1_000_000, 0)]
    counts = Counter(replayed)
    assert not [r for r, n in counts.items() if n > 1], "a record is in the log twice"
    assert set(accepted) - set(sent) <= set(replayed), "an accepted record was lost"
    again = [r for r in sent if r in counts]
    assert again == sent[len(sent) - len(again):], "replayed records sent before the crash"


def post(url: str, n: int, query: str = "") -> httpx.Response:
    return httpx.post(f"{url}{query}", json={"n": n}, timeout=30)


def metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def topic_run_ids(bootstrap: str, topic: str) -> Counter:
    return Counter(codec.Envelope.from_headers(r.headers).run_id
                   for r in read_topic(bootstrap, topic, idle_ms=800))


def test_a_broker_outage_loses_no_request_and_doubles_none(tmp_path):
    plan = make_plan()
    route = plan.routes[0]
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        ensure_topics(broker.bootstrap_servers, plan.created_topics())
        results = MemoryResultsStore()
        dispatcher = HookDispatcher(plan, broker.bootstrap_servers, results).start()
        app = create_app(plan, results=results, bootstrap_servers=broker.bootstrap_servers,
                         wal_dir=tmp_path / "wal")
        with AsgiServer(app) as server:
            url = server.url + route.url
            assert dispatcher.wait_ready(30)
            answer = post(url, 0, "?sync=true&timeout=20")  # sync mode while the broker is up
            assert answer.status_code == 200, answer.text
            assert answer.json()["results"] == {"echo": {"n": 0}}
            dispatcher.stop()

            broker.stop()
            answers = [post(url, n) for n in range(1, 21)]
            assert [a.status_code for a in answers] == [202] * 20
            assert {a.json()["status"] for a in answers} == {"pending"}
            accepted = {a.json()["runId"] for a in answers}
            assert metric(server.url, "algorail_gateway_wal_records") == 20

            broker.start()  # same port, empty: the topics are created again
            ensure_topics(broker.bootstrap_servers, plan.created_topics())
            assert wait_until(lambda: app.state.wal.pending == 0, timeout=40)
            assert metric(server.url, "algorail_gateway_wal_records") == 0
        seen = topic_run_ids(broker.bootstrap_servers, route.topic)
        assert set(seen) == accepted
        assert set(seen.values()) == {1}, "a run reached the topic twice"
    finally:
        broker.stop()


def test_the_replayer_hands_a_batch_over_as_soon_as_the_broker_has_it(tmp_path, broker):
    """The replayer's next batch waits for the last one's acknowledgement, so a batch must
    take the broker's round trip and no more: not 10 ms more, the look at which a flush saw
    delivery reports that a thread of the producer had already served. The round trip is
    librdkafka's own produce and flush, timed in turn with the replays, so load slows both."""
    import confluent_kafka

    ensure_topics(broker.bootstrap_servers, ["walt.t.in", "walt.t.rtt"])
    wal = WriteAheadLog(tmp_path / "wal")
    replayer = WalReplayer(wal, broker.bootstrap_servers).start()
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers,
                                         "linger.ms": 0})
    took, round_trips = [], []
    try:
        wal.append(record(0))
        assert wait_until(lambda: wal.pending == 0, timeout=20)  # the producer is connected
        producer.produce("walt.t.rtt", b"0")
        producer.flush()
        for n in range(1, 21):
            started = time.perf_counter()
            wal.append(record(n))
            assert wait_until(lambda: wal.pending == 0, timeout=10, interval=0.0002)
            took.append(time.perf_counter() - started)
            started = time.perf_counter()
            producer.produce("walt.t.rtt", b"%d" % n)
            producer.flush()
            round_trips.append(time.perf_counter() - started)
    finally:
        producer.flush()
        replayer.stop()
        wal.close()
    replay, round_trip = sorted(took)[len(took) // 2], sorted(round_trips)[len(took) // 2]
    assert replay < round_trip + 0.006, (
        f"a lone record took {sorted(took)} s; a send and flush {sorted(round_trips)} s")
    assert len(topic_run_ids(broker.bootstrap_servers, "walt.t.in")) == 21


def gateway_process(plan_file, wal_dir, bootstrap: str, port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "algorail.cli", "gateway", "--plan", str(plan_file),
         "--port", str(port)],
        env={**os.environ, "ALGORAIL_BOOTSTRAP_SERVERS": bootstrap,
             "ALGORAIL_WAL_DIR": str(wal_dir)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_records_of_a_killed_gateway_are_produced_when_it_restarts(tmp_path):
    plan = make_plan()
    route = plan.routes[0]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    broker = EmbeddedBroker(port=free_port())  # not started yet: the broker is down
    port, wal_dir = free_port(), tmp_path / "wal"
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    with open(tmp_path / "log", "ab") as log:
        first = gateway_process(plan_file, wal_dir, broker.bootstrap_servers, port, log)
        try:
            assert wait_until(healthy, timeout=30), (tmp_path / "log").read_text()
            answers = [post(base + route.url, n) for n in range(10)]
            assert [a.status_code for a in answers] == [202] * 10
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        accepted = {a.json()["runId"] for a in answers}
        left = WriteAheadLog(wal_dir)  # the kill released the lock
        assert set(run_ids(left.wait_pending(100, 0))) == accepted
        left.close()

        broker.start()
        second = None
        try:
            ensure_topics(broker.bootstrap_servers, plan.created_topics())
            second = gateway_process(plan_file, wal_dir, broker.bootstrap_servers, port, log)
            assert wait_until(lambda: len(topic_run_ids(broker.bootstrap_servers,
                                                        route.topic)) >= 10, timeout=40)
            os.kill(second.pid, signal.SIGTERM)
            assert second.wait(20) == 0
            seen = topic_run_ids(broker.bootstrap_servers, route.topic)
            assert set(seen) == accepted and set(seen.values()) == {1}
            assert WriteAheadLog(wal_dir).pending == 0
        finally:
            if second is not None and second.poll() is None:
                os.kill(second.pid, signal.SIGKILL)
                second.wait(10)
            broker.stop()


def test_a_full_log_answers_503_and_keeps_what_it_accepted(tmp_path):
    plan = make_plan()
    dead = f"127.0.0.1:{free_port()}"  # no broker listens here
    app = create_app(plan, results=MemoryResultsStore(), bootstrap_servers=dead,
                     wal_dir=tmp_path, wal_max_bytes=2048, max_body_bytes=1024)
    with AsgiServer(app) as server:
        url = server.url + plan.routes[0].url
        answers = []
        for n in range(50):
            answers.append(post(url, n))
            if answers[-1].status_code != 202:
                break
        accepted = [a.json()["runId"] for a in answers if a.status_code == 202]
        refused = answers[-1]
        assert refused.status_code == 503 and 2 <= len(accepted) < 50
        assert "write-ahead log is full" in refused.json()["error"]
        assert "--wal-max-bytes" in refused.json()["error"]
        assert metric(server.url, "algorail_gateway_wal_records") == len(accepted)
        assert run_ids(app.state.wal.wait_pending(100, 0)) == accepted
