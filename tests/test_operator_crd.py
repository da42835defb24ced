"""The pipelines.algorail.io CRD: current against the models, a valid CRD, and a schema the
example resources pass and broken ones fail."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from packaging.version import Version

from algorail.loader import validate_document
from algorail.operator.crd import crd, crd_file, crd_yaml, main
from algorail.operator.resource import pipeline_document, pipeline_resource
from algorail.spec import read_document

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_SUPPORTED = sorted({v for v in all_versions() if Version(v) >= Version("1.29")}, key=Version)
K8S_VERSIONS = [_SUPPORTED[0], _SUPPORTED[-1]]


def _schema() -> dict[str, Any]:
    committed = yaml.safe_load(crd_file().read_text(encoding="utf-8"))
    return committed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _json_schema(node: Any) -> Any:
    """The structural schema as JSON Schema, strict as `kubectl --validate=strict`:
    `nullable` becomes a null type, an object with properties refuses unknown keys."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if "properties" in node and "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_json_schema(_schema()))


def _resources() -> list[dict[str, Any]]:
    """The k8s example, and every pipeline file example as a resource."""
    files = [read_document(EXAMPLES / "k8s" / "hello-pipeline.yaml")]
    files += [pipeline_resource(read_document(f), "pipelines") for f in EXAMPLES.glob("*.yaml")]
    # as `algorail render --resource` writes it, with the algos' modules packed
    files.append(pipeline_resource(read_document(EXAMPLES / "hello.yaml"), "pipelines", code={
        "hello_algos.py": (EXAMPLES / "hello_algos.py").read_text()}))
    return files


def test_the_committed_crd_is_generated_from_the_models():
    assert crd_file().read_text(encoding="utf-8") == crd_yaml()
    assert main(["--check"]) == 0


def test_check_fails_on_a_stale_crd(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "algorail" / "crds" / "pipelines.algorail.io.yaml"
    stale.parent.mkdir(parents=True)
    (tmp_path / "algorail" / "Chart.yaml").write_text("name: algorail\n")
    stale.write_text(crd_yaml().replace("maxBackoffMs", "maxBackoff"))
    monkeypatch.setenv("ALGORAIL_CHARTS_DIR", str(tmp_path))
    assert main(["--check"]) == 1
    assert "is stale" in capsys.readouterr().err


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_crd_is_a_valid_custom_resource_definition(version):
    kubernetes_validate.validate(crd(), version, strict=True)


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key in ("properties",):
            for name, sub in node.get(key, {}).items():
                yield from _walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_the_schema_is_structural():
    """What the API server refuses in a v1 CRD: $ref, unions, a node without a type,
    additionalProperties beside properties or set to false."""
    for path, node in _walk(_schema()):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "default"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", True) is not False, path


def test_printer_columns_show_version_ready_endpoint_age():
    columns = crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == ["Version", "Ready", "Endpoint", "Age"]
    assert crd()["spec"]["versions"][0]["subresources"] == {"status": {}}


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: r["metadata"]["name"])
def test_example_resources_pass_the_schema_and_validate(resource):
    errors = [e.message for e in _validator().iter_errors(resource)]
    assert errors == []
    validate_document(pipeline_document(resource))


def test_a_status_passes_the_schema():
    resource = copy.deepcopy(_resources()[0])
    resource["status"] = {
        "observedGeneration": 2, "planVersion": "1.0.0", "planHash": "sha256:ab",
        "endpoints": ["/alice/hello/in"],
        "components": {"upper": {"kind": "algo", "desiredReplicas": 1, "readyReplicas": 0}},
        "conditions": [{"type": "Ready", "status": "False", "observedGeneration": 2,
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "Applying",
                        "message": "x"}],
    }
    assert [e.message for e in _validator().iter_errors(resource)] == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda s: s["algos"][0].update(runtim="python"), "'runtim' was unexpected"),
    (lambda s: s["algos"][0].update(inputMode="sideways"), "'sideways' is not one of"),
    (lambda s: s["algos"][0].pop("name"), "'name' is a required property"),
    (lambda s: s["algos"][0].update(replicas=-1), "-1 is less than the minimum of 0"),
    (lambda s: s.update(deployment={"image": {"pullPolicy": "Sometimes"}}), "does not match"),
    (lambda s: s.update(deployment={"autoscaling": {"maxReplicas": 0}}), "less than the minimum"),
])
def test_the_schema_rejects_what_it_can_structurally(break_it, expected):
    resource = copy.deepcopy(_resources()[0])
    break_it(resource["spec"])
    messages = [e.message for e in _validator().iter_errors(resource)]
    assert any(expected in m for m in messages), messages
