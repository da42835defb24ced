"""The `{{ cookiecutter.name }}` data connector: a sink that appends records to a file.

In a cluster it runs on Kafka Connect as Apache Kafka's FileStreamSinkConnector
(`kafka_connect_config`); in dev mode (`algorail dev`, `algorail connect`) the Python
writer below does the same job. Registered through the `algorail` entry point.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from algorail.extensions import Connector
from algorail.hookspecs import hookimpl
from algorail.runtime.connect import ConnectorUnavailable, SinkRecord, SinkWriter


class {{ cookiecutter.class_name }}(Connector):
    name = "{{ cookiecutter.name }}"
    description = "{{ cookiecutter.description }}"
    kinds = ("sink",)
    connector_class = "org.apache.kafka.connect.file.FileStreamSinkConnector"
    config_schema = {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": {"type": "string", "minLength": 1, "description": "The file to append to."},
            "tasksMax": {"type": "integer", "minimum": 1, "default": 1},
        },
    }

    def kafka_connect_config(self, connector: Any) -> dict[str, str]:
        return {
            "connector.class": self.connector_class,
            "tasks.max": str(connector.config.get("tasksMax", 1)),
            "topics": ",".join(i.topic for i in connector.inputs),
            "file": connector.config["file"],
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": connector.dead_letter_topic,
        }

    def open_dev(self, connector: Any) -> SinkWriter:
        return JsonLinesWriter(Path(os.path.expanduser(connector.config["file"])))


class JsonLinesWriter(SinkWriter):
    """Appends one JSON line per record and syncs the file, so a commit follows a durable write."""

    def __init__(self, path: Path):
        self.path = path

    def check(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[SinkRecord]) -> None:
        lines = "".join(json.dumps(_jsonable(r.value)) + "\n" for r in records)
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise ConnectorUnavailable(f"cannot append to {self.path}: {exc}") from exc


def _jsonable(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@hookimpl
def register_connectors(register):
    register({{ cookiecutter.class_name }}())
