"""The `{{ cookiecutter.name }}` hook type: appends each result to a JSON-lines file.

Registered with algorail through the `algorail` entry point in pyproject.toml. algorail's
hook dispatcher calls `deliver` once per run result; raising `DeliveryFailed` asks it to
retry (then dead-letter), and the return value is recorded as the hook's result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from algorail.extensions import DeliveryContext, DeliveryFailed, HookType
from algorail.hookspecs import hookimpl


class {{ cookiecutter.class_name }}(HookType):
    name = "{{ cookiecutter.name }}"
    description = "{{ cookiecutter.description }}"

    def validate(self, hook: Any, pipeline: Any) -> list[str]:
        path = hook.config.get("path")
        if not isinstance(path, str) or not path.strip():
            return ["the {{ cookiecutter.name }} hook needs config.path: the file to append to"]
        return []

    def deliver(self, hook: Any, payload: Any, context: DeliveryContext) -> Any:
        path = Path(os.path.expanduser(hook.config["path"]))
        if isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        line = {
            "runId": context.run_id,
            "deployment": context.deployment,
            "source": context.source,
            "payload": payload,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
        except OSError as exc:
            raise DeliveryFailed(f"cannot append to {path}: {exc}") from exc
        return {"path": str(path)}


@hookimpl
def register_hook_types(register):
    register({{ cookiecutter.class_name }}())
