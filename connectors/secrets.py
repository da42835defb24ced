"""Credentials in connector configs: references to secrets, never the secret itself.

A reference is a Kafka Connect config-provider placeholder, resolved by the Connect worker
on the cluster and by `resolve` in dev mode:

- ``${secrets:NAMESPACE/SECRET:KEY}`` Strimzi's Kubernetes secret provider; in dev mode the
  file ``$ALGORAIL_SECRETS_DIR/SECRET/KEY`` (the layout of a mounted Kubernetes secret);
- ``${file:/path/file.properties:KEY}`` a Java properties file;
- ``${directory:/path:FILE}`` one file's content;
- ``${env:VAR}`` an environment variable of the worker (or of `algorail connect`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from algorail.errors import AlgorailError

REFERENCE_RE = re.compile(r"^\$\{(?P<provider>secrets|file|directory|env):(?P<path>[^}]+)\}$")
SECRETS_DIR_ENV = "ALGORAIL_SECRETS_DIR"
REFERENCE_HINT = (
    "write a reference such as ${secrets:NAMESPACE/SECRET:KEY}, ${file:/path/creds.properties:KEY} "
    "or ${env:VAR}, never the secret itself"
)


class SecretNotFound(AlgorailError):
    """A secret reference that cannot be resolved in dev mode."""


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE_RE.match(value) is not None


def secret_problems(config: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Sentences for each credential key holding an inline value instead of a reference."""
    return [
        f"config.{key}: an inline secret is not allowed; {REFERENCE_HINT}"
        for key in keys
        if key in config and not is_reference(config[key])
    ]


def resolve(value: str | None) -> str | None:
    """The secret a reference points to (dev mode); None stays None."""
    if value is None:
        return None
    match = REFERENCE_RE.match(value)
    if match is None:
        raise SecretNotFound(f"{value!r} is not a secret reference; {REFERENCE_HINT}")
    provider, path = match["provider"], match["path"]
    if provider == "env":
        if path not in os.environ:
            raise SecretNotFound(f"{value}: environment variable {path} is not set")
        return os.environ[path]
    location, _, key = path.rpartition(":")
    if provider == "secrets":
        base = os.environ.get(SECRETS_DIR_ENV)
        if not base:
            raise SecretNotFound(
                f"{value}: set {SECRETS_DIR_ENV} to a folder holding SECRET/KEY files "
                "to resolve Kubernetes secret references in dev mode"
            )
        return _read(Path(base) / location.rpartition("/")[2] / key, value)
    if provider == "directory":
        return _read(Path(location) / key, value)
    return _properties(Path(location), value).get(key) or _missing(value, key)


def _read(path: Path, reference: str) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise SecretNotFound(f"{reference}: cannot read {path}: {exc.strerror}") from None


def _properties(path: Path, reference: str) -> dict[str, str]:
    values = {}
    for line in _read(path, reference).splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            key, _, val = line.partition("=")
            values[key.strip()] = val.strip()
    return values


def _missing(reference: str, key: str) -> str:
    raise SecretNotFound(f"{reference}: the file has no key {key!r}")
