"""fileReference endpoint paths: the body goes to the object store (an S3-compatible
server on loopback, or a local folder) and the message carries a reference to it."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest
from conftest import AsgiServer, read_topic

from algorail.compiler import compile_plan
from algorail.loader import validate_document
from algorail.runtime import codec
from algorail.runtime.gateway import GatewayError, create_app
from algorail.runtime.kafka_io import ensure_topics
from algorail.runtime.objectstore import (
    LocalObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    open_object_store,
)
from algorail.runtime.results import MemoryResultsStore

PIPELINE = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "fr", "name": "files", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [
            {"name": "upload", "messageDataType": "fileReference",
             "contentType": "application/octet-stream"}]}],
        "algos": [{"name": "reader", "runtime": "python", "entrypoint": "stand_in:reader",
                   "inputs": [{"name": "file", "contentType": "application/octet-stream"}],
                   "outputs": [{"name": "out"}],
                   "fileInput": "reference"}],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [{"from": "api.upload", "to": "reader.file"},
                  {"from": "reader.out", "to": "result"}],
    },
}


def test_local_store_round_trip_and_checks(tmp_path):
    store = open_object_store(str(tmp_path))
    ref = store.put(b"\x00\x01 bytes", "application/octet-stream", key="a/b")
    assert ref == {"bucket": "local", "key": "a/b", "size": 8,
                   "contentType": "application/octet-stream",
                   "sha256": hashlib.sha256(b"\x00\x01 bytes").hexdigest()}
    assert store.get(ref) == b"\x00\x01 bytes"
    (tmp_path / "local" / "a" / "b").write_bytes(b"changed")
    with pytest.raises(ObjectStoreError, match="sha256"):
        store.get(ref)
    with pytest.raises(ObjectStoreError, match="outside"):
        store.put(b"x", "text/plain", key="../../escape")
    assert isinstance(open_object_store(f"file://{tmp_path}"), LocalObjectStore)
    with pytest.raises(ObjectStoreError, match="s3://"):
        open_object_store("ftp://bucket")


def test_s3_store_round_trip(s3_env):
    store = open_object_store(f"s3://algorail-test-files?endpoint={s3_env}")
    assert isinstance(store, S3ObjectStore)
    ref = store.put(b"payload", "text/plain")
    assert store.get(ref) == b"payload" and ref["bucket"] == "algorail-test-files"


def test_file_reference_round_trip_through_the_gateway(broker, s3_env):
    plan = compile_plan(validate_document(json.loads(json.dumps(PIPELINE))))
    ensure_topics(broker.bootstrap_servers, plan.created_topics())
    store = S3ObjectStore(s3_env, "algorail-test-gateway")
    app = create_app(plan, results=MemoryResultsStore(),
                     bootstrap_servers=broker.bootstrap_servers, object_store=store)
    data = os.urandom(100_000)
    with AsgiServer(app) as server:
        answer = httpx.post(f"{server.url}/fr/files/upload", content=data,
                            headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 202, answer.text
    [record] = read_topic(broker.bootstrap_servers, plan.routes[0].topic)
    envelope = codec.Envelope.from_headers(record.headers)
    assert envelope.content_type == codec.FILE_REFERENCE
    assert envelope.run_id == answer.json()["runId"]
    ref = json.loads(record.value)
    assert ref["size"] == len(data) and ref["contentType"] == "application/octet-stream"
    assert ref["sha256"] == hashlib.sha256(data).hexdigest()
    assert S3ObjectStore(s3_env, ref["bucket"]).get(ref) == data


def test_file_reference_paths_need_an_object_store_outside_dev_mode():
    plan = compile_plan(validate_document(json.loads(json.dumps(PIPELINE))))
    with pytest.raises(GatewayError, match="object store"):
        create_app(plan, results=MemoryResultsStore(), bootstrap_servers="127.0.0.1:1")
    assert create_app(plan, results=MemoryResultsStore(), bootstrap_servers="127.0.0.1:1",
                      dev=True) is not None
