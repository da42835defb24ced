"""A three-algo pipeline with a conditional branch and a step that fails on demand, for the
tests of inspect, tail, replay, status and graph (real broker, runners in threads)."""

from __future__ import annotations

import uuid
from pathlib import Path

from algorail.plan import Plan
from algorail.runtime import testing

PIPELINE = """
apiVersion: algorail.io/v1
kind: Pipeline
metadata: {{owner: ops, name: {name}, version: 1.0.0}}
spec:
  endpoints:
    - name: api
      paths: [{{name: in, contentType: application/json}}]
  algos:
    - {{name: clean, runtime: python, entrypoint: "{module}:clean",
       inputs: [{{name: text}}], outputs: [{{name: result}}]}}
    - {{name: route, runtime: python, entrypoint: "{module}:route",
       inputs: [{{name: text}}], outputs: [{{name: short}}, {{name: long}}]}}
    - {{name: check, runtime: python, entrypoint: "{module}:check",
       inputs: [{{name: text}}], outputs: [{{name: result}}], retry: {{attempts: 0}}}}
  hooks:
    - {{name: short-reply, type: response}}
    - {{name: long-reply, type: response}}
  pipes:
    - {{from: api.in, to: clean.text}}
    - {{from: clean.result, to: route.text}}
    - {{from: route.short, to: short-reply}}
    - {{from: route.long, to: check.text}}
    - {{from: check.result, to: long-reply}}
"""

ALGOS = '''
from pathlib import Path

BROKEN = Path(__file__).parent / "broken"


def clean(payload):
    return {"text": payload["text"].strip().lower()}


def route(payload):
    return {"short": payload} if len(payload["text"]) < 20 else {"long": payload}


def check(payload):
    if BROKEN.exists():
        raise ValueError("check is broken")
    return {**payload, "checked": True}
'''

LONG_TEXT = "  A review that is long enough to take the long branch  "


def ops_plan(directory: Path, bootstrap_servers: str) -> Plan:
    """The pipeline, its algos in a module of their own (unique per test: the python
    runtime caches modules by name), and its topics created."""
    module = f"ops_algos_{uuid.uuid4().hex[:8]}"
    (directory / f"{module}.py").write_text(ALGOS, encoding="utf-8")
    name = f"p{uuid.uuid4().hex[:6]}"
    return testing.plan_from_yaml(PIPELINE.format(name=name, module=module), directory,
                                  bootstrap_servers)


def send(plan: Plan, bootstrap_servers: str, run_id: str, text: str) -> None:
    route = plan.routes[0]
    testing.produce(bootstrap_servers, route.topic, [(run_id, {"text": text})],
                    deployment=plan.deployment, source=f"{route.endpoint}.{route.path}")


def break_check(directory: Path, broken: bool = True) -> None:
    flag = directory / "broken"
    if broken:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)

