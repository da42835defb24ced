"""Redis, S3 and HTTP sinks and the SQS source in dev mode, against the machine's Redis,
the moto S3/SQS server and an HTTP server on loopback, with a real broker."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import redis
import test_connectors_sql
from conftest import wait_until
from test_connectors_sql import make_plan, produce, read_topic

from algorail.runtime import kafka_io
from algorail.runtime.connect import ConnectorConfigError, open_connector

services = test_connectors_sql.services  # connectors and runners on threads


def sink_plan(tmp_path, broker, connector, config):
    plan = make_plan(tmp_path, sinks=[{"name": "out", "connector": connector, "config": config}])
    kafka_io.ensure_topics(broker.bootstrap_servers, plan.created_topics())
    return plan, plan.connectors[0].inputs[0].topic


def test_redis_sink_writes_hashes_and_stream_entries(redis_url, tmp_path, services,
                                                     module_broker):
    keyspace = f"conn6:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        hashes, topic = sink_plan(tmp_path, module_broker, "redis", {
            "url": redis_url, "type": "hash", "keyspace": f"{keyspace}:h", "keyField": "id"})
        services.connector(hashes, "out")
        produce(module_broker.bootstrap_servers, topic,
                [{"id": i, "name": f"n{i}", "tags": ["a"]} for i in range(3)] + [{"name": "x"}])
        assert wait_until(lambda: len(client.keys(f"{keyspace}:h:*")) == 3, 20)
        assert client.hgetall(f"{keyspace}:h:1") == {"id": "1", "name": "n1", "tags": '["a"]'}
        dead_letters = hashes.connectors[0].dead_letter_topic
        dead = read_topic(module_broker.bootstrap_servers, dead_letters, 1)
        assert b"no field 'id'" in dict(dead[0].headers)["algorail-error"]

        stream, topic = sink_plan(tmp_path, module_broker, "redis", {
            "url": redis_url, "type": "stream", "keyspace": f"{keyspace}:s"})
        services.connector(stream, "out")
        produce(module_broker.bootstrap_servers, topic, [{"n": i} for i in range(5)])
        assert wait_until(lambda: client.xlen(f"{keyspace}:s") == 5, 20)
        assert [e[1]["n"] for e in client.xrange(f"{keyspace}:s")] == ["0", "1", "2", "3", "4"]
    finally:
        for key in client.scan_iter(f"{keyspace}:*"):
            client.delete(key)
        client.close()


def test_redis_sink_bad_url_is_a_clear_error(tmp_path, module_broker):
    plan, _ = sink_plan(tmp_path, module_broker, "redis",
                        {"url": "redis://127.0.0.1:1/0", "keyspace": "k"})
    _, _, writer = open_connector(plan, "out")
    with pytest.raises(ConnectorConfigError, match="cannot use Redis at redis://127.0.0.1:1/0"):
        writer.check()


class S3Run:
    """An S3 sink on a fresh bucket of the loopback S3 server, fed `count` records."""

    def __init__(self, s3_env, tmp_path, services, broker, count, **config):
        self.bucket = f"conn6-{uuid.uuid4().hex[:8]}"
        self.s3 = boto3.client("s3", endpoint_url=s3_env)
        self.s3.create_bucket(Bucket=self.bucket)
        plan, self.topic = sink_plan(tmp_path, broker, "s3",
                                     {"bucket": self.bucket, "endpointUrl": s3_env, **config})
        services.connector(plan, "out")
        produce(broker.bootstrap_servers, self.topic, [{"n": i} for i in range(count)])

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def body(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def test_s3_sink_writes_one_json_lines_object_per_batch(s3_env, tmp_path, services,
                                                       module_broker):
    run = S3Run(s3_env, tmp_path, services, module_broker, 8, prefix="runs", flushSize=4,
                rotateIntervalMs=60_000)
    assert wait_until(lambda: len(run.keys()) == 2, 30)
    topic = run.topic
    assert run.keys() == [f"runs/{topic}/partition=0/{topic}+0+{first:010d}.json"
                          for first in (0, 4)]
    lines = [json.loads(line) for key in run.keys() for line in run.body(key).splitlines()]
    assert lines == [{"n": i} for i in range(8)]


def test_s3_sink_writes_a_partial_batch_when_the_time_window_ends(s3_env, tmp_path, services,
                                                                  module_broker):
    run = S3Run(s3_env, tmp_path, services, module_broker, 3, flushSize=1000,
                rotateIntervalMs=500)
    assert wait_until(lambda: len(run.keys()) == 1, 30)
    assert run.body(run.keys()[0]) == b'{"n": 0}\n{"n": 1}\n{"n": 2}\n'


def test_s3_sink_missing_bucket_is_a_clear_error(s3_env, tmp_path, module_broker):
    plan, _ = sink_plan(tmp_path, module_broker, "s3",
                        {"bucket": "conn6-no-such-bucket", "endpointUrl": s3_env})
    _, _, writer = open_connector(plan, "out")
    with pytest.raises(ConnectorConfigError, match="bucket 'conn6-no-such-bucket' does not exist"):
        writer.check()


class Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first `fail` requests, then stores bodies and answers 200."""

    fail = 0
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["content-length"]))
        server = self.server
        with server.lock:
            server.calls += 1
            failing = server.calls <= server.fail
            if not failing:
                server.bodies.append((json.loads(body), self.headers.get("authorization")))
        self.send_response(503 if failing else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.lock, server.calls, server.fail, server.bodies = threading.Lock(), 0, 2, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_sink_retries_server_errors_and_posts_every_record(http_receiver, tmp_path,
                                                                services, module_broker,
                                                                monkeypatch):
    monkeypatch.setenv("CONN6_TOKEN", "Bearer t0k3n")
    url = f"http://127.0.0.1:{http_receiver.server_port}/scores"
    plan, topic = sink_plan(tmp_path, module_broker, "http", {
        "url": url, "authorization": "${env:CONN6_TOKEN}"})
    services.connector(plan, "out")
    produce(module_broker.bootstrap_servers, topic, [{"n": i} for i in range(5)])
    assert wait_until(lambda: len(http_receiver.bodies) >= 5, 30)
    assert [b for b, _ in http_receiver.bodies] == [{"n": i} for i in range(5)]
    assert {auth for _, auth in http_receiver.bodies} == {"Bearer t0k3n"}
    assert http_receiver.calls >= 7  # two 503s were retried


def test_sqs_source_feeds_the_pipeline_and_deletes_after_produce(s3_env, tmp_path, services,
                                                                 module_broker):
    sqs = boto3.client("sqs", endpoint_url=s3_env)
    queue_url = sqs.create_queue(QueueName=f"conn6-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"order": i}),
                         MessageAttributes={"shop": {"DataType": "String", "StringValue": "x"}})
    plan = make_plan(tmp_path, sources=[{"name": "orders", "connector": "sqs", "config": {
        "queueUrl": queue_url, "endpointUrl": s3_env, "waitTimeSeconds": 1}}])
    kafka_io.ensure_topics(module_broker.bootstrap_servers, plan.created_topics())
    services.connector(plan, "orders")
    records = read_topic(module_broker.bootstrap_servers, plan.connectors[0].outputs["out"], 12)
    assert sorted(json.loads(r.value)["order"] for r in records) == list(range(12))
    assert dict(records[0].headers)["shop"] == b"x"

    def remaining():
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        counts = attributes["Attributes"]
        return int(counts["ApproximateNumberOfMessages"]) + int(
            counts["ApproximateNumberOfMessagesNotVisible"])

    assert wait_until(lambda: remaining() == 0, 10)
