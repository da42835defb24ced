"""Where request bodies of `fileReference` endpoint paths are kept: S3/MinIO in production,
a local folder in dev mode. The message carries a file reference instead of the bytes:

    {"bucket": ..., "key": ..., "size": ..., "contentType": ..., "sha256": ...}

sent with content type `codec.FILE_REFERENCE`; `get(ref)` returns the bytes and checks the digest.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from algorail.errors import AlgorailError


class ObjectStoreError(AlgorailError):
    pass


def file_reference(bucket: str, key: str, data: bytes, content_type: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": key,
        "size": len(data),
        "contentType": content_type,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _checked(ref: dict[str, Any], data: bytes) -> bytes:
    if ref.get("sha256") and hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise ObjectStoreError(
            f"object {ref['bucket']}/{ref['key']} does not match its reference's sha256: "
            "it was changed after it was stored"
        )
    return data


def new_key(prefix: str = "") -> str:
    return f"{prefix.strip('/')}/{uuid.uuid4().hex}" if prefix else uuid.uuid4().hex


class LocalObjectStore:
    """Dev mode: each object is a file under `directory` (the "bucket" is its name)."""

    def __init__(self, directory: str | Path, bucket: str = "local"):
        self.directory = Path(directory)
        self.bucket = bucket

    def put(self, data: bytes, content_type: str, key: str | None = None) -> dict[str, Any]:
        key = key or new_key()
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return file_reference(self.bucket, key, data, content_type)

    def get(self, ref: dict[str, Any]) -> bytes:
        try:
            return _checked(ref, self._path(ref["key"]).read_bytes())
        except FileNotFoundError as exc:
            raise ObjectStoreError(f"no object {ref['key']!r} in {self.directory}") from exc

    def _path(self, key: str) -> Path:
        path = (self.directory / self.bucket / key).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            raise ObjectStoreError(f"object key {key!r} points outside {self.directory}")
        return path


class S3ObjectStore:
    """S3 or MinIO through boto3; credentials come from the usual AWS environment."""

    def __init__(self, endpoint_url: str | None, bucket: str, region: str | None = None):
        import boto3

        self.endpoint_url, self.bucket = endpoint_url, bucket
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
        self._bucket_ready = True

    def put(self, data: bytes, content_type: str, key: str | None = None) -> dict[str, Any]:
        key = key or new_key()
        try:
            self._ensure_bucket()
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                   ContentType=content_type)
        except Exception as exc:
            raise ObjectStoreError(self._cannot("store", key, exc)) from exc
        return file_reference(self.bucket, key, data, content_type)

    def get(self, ref: dict[str, Any]) -> bytes:
        try:
            body = self.client.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()
        except Exception as exc:
            raise ObjectStoreError(self._cannot("read", ref["key"], exc)) from exc
        return _checked(ref, body)

    def _cannot(self, verb: str, key: str, exc: Exception) -> str:
        where = self.endpoint_url or "AWS S3"
        return (f"cannot {verb} object {self.bucket}/{key} at {where}: {exc}; check the object "
                "store URL and the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment")


def open_object_store(url: str) -> LocalObjectStore | S3ObjectStore:
    """`s3://BUCKET[?endpoint=http://HOST:PORT&region=R]`, `file:///DIR` or a folder path."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ObjectStoreError(f"object store URL {url!r} names no bucket: use s3://BUCKET")
        query = parse_qs(parsed.query)
        endpoint = query.get("endpoint", [None])[0]
        return S3ObjectStore(endpoint, parsed.netloc, query.get("region", [None])[0])
    if parsed.scheme == "file":
        return LocalObjectStore(parsed.path)
    if parsed.scheme == "":
        return LocalObjectStore(url)
    raise ObjectStoreError(
        f"unsupported object store URL {url!r}: use s3://BUCKET?endpoint=URL or a folder path"
    )
