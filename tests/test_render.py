"""`algorail render` and algorail.render: manifests on disk for GitOps, overrides, and the
messages a user sees when Helm or the values are wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from algorail.cli import cli
from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.render import (
    RenderError,
    _split_sources,
    manifests,
    pipeline_values,
    render_chart,
    render_pipeline,
)
from algorail.spec import load_bindings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _objects(folder: Path) -> list[dict]:
    objects = []
    for path in sorted(folder.rglob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def _topics(objects: list[dict]) -> list[str]:
    return sorted(o["spec"]["topicName"] for o in objects if o["kind"] == "KafkaTopic")


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_render_writes_manifests_for_one_pipeline(tmp_path):
    out = tmp_path / "out"
    result = _run("render", str(EXAMPLES / "hello.yaml"), "-o", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (out / "algorail-pipeline").iterdir())
    assert files == ["code-configmap.yaml", "configmap.yaml", "kafkatopics.yaml", "mappings.yaml",
                     "networkpolicy.yaml", "podmonitor.yaml", "runners.yaml",
                     "serviceaccount.yaml"]
    objects = _objects(out)
    plan = compile_plan(load_pipeline(str(EXAMPLES / "hello.yaml")))
    assert _topics(objects) == sorted(plan.created_topics())
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "alice-hello-upper"
    assert all(o["metadata"]["namespace"] == "default" for o in objects)


def test_values_files_then_set_override_in_order(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("topics: {partitions: 6, replicas: 2}\nkafka: {clusterName: prod}\n")
    second.write_text("topics: {partitions: 9}\n")
    out = tmp_path / "out"
    result = _run("render", str(EXAMPLES / "reviews.yaml"), "-o", str(out), "-n", "shop",
                  "--values", str(first), "-f", str(second), "--set", "topics.replicas=3",
                  "--release", "reviews-prod")
    assert result.exit_code == 0, result.output
    topics = [o for o in _objects(out) if o["kind"] == "KafkaTopic"]
    assert topics and all(t["spec"]["partitions"] == 9 for t in topics)
    assert all(t["spec"]["replicas"] == 3 for t in topics)
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == "prod" for t in topics)
    assert all(t["metadata"]["namespace"] == "shop" for t in topics)
    assert all(t["metadata"]["labels"]["app.kubernetes.io/instance"] == "reviews-prod"
               for t in topics)


def test_seldon_manifest_with_bindings_and_a_plan_json_render_the_same(tmp_path):
    manifest = EXAMPLES / "seldon" / "tfsimples-join.yaml"
    bindings = EXAMPLES / "seldon" / "bindings.yaml"
    from_manifest = tmp_path / "a"
    assert _run("render", str(manifest), "--bindings", str(bindings), "-o",
                str(from_manifest)).exit_code == 0
    plan_file = tmp_path / "plan.json"
    assert _run("plan", str(manifest), "--bindings", str(bindings), "-o",
                str(plan_file)).exit_code == 0
    from_plan = tmp_path / "b"
    assert _run("render", str(plan_file), "-o", str(from_plan)).exit_code == 0
    assert _objects(from_manifest) == _objects(from_plan)
    plan = compile_plan(load_pipeline(str(manifest), bindings=load_bindings(str(bindings))))
    assert _topics(_objects(from_plan)) == sorted(plan.created_topics())


def test_with_services_serves_the_rendered_plan_configmap(tmp_path):
    result = _run("render", str(EXAMPLES / "hello.yaml"), "-o", str(tmp_path),
                  "--with-services", "--set", "auth.existingSecret=hello-keys")
    assert result.exit_code == 0, result.output
    (plan_cm,) = [o for o in _objects(tmp_path / "algorail-pipeline")
                  if o["kind"] == "ConfigMap" and "plan.json" in o["data"]]
    services = _objects(tmp_path / "algorail")
    gateways = [o for o in services if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(gateways) == 2
    for deployment in gateways:
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert volumes[0]["configMap"]["name"] == plan_cm["metadata"]["name"]
    mapping = next(o for o in _objects(tmp_path / "algorail-pipeline") if o["kind"] == "Mapping")
    gateway_service = next(o for o in services if o["kind"] == "Service"
                           and o["metadata"]["name"].endswith("-gateway"))
    assert mapping["spec"]["service"].split(".")[0] == gateway_service["metadata"]["name"]


def test_rerender_replaces_stale_files(tmp_path):
    plan = compile_plan(load_pipeline(str(EXAMPLES / "reviews.yaml")))
    render_pipeline(plan, tmp_path, engine="sdk")
    stale = tmp_path / "algorail-pipeline" / "old.yaml"
    stale.write_text("kind: Stale\n")
    written = render_pipeline(plan, tmp_path, set_values=["mappings.enabled=false"],
                              engine="sdk")
    assert not stale.exists()
    assert "mappings.yaml" not in {p.name for p in written}


def test_bad_values_are_one_message_without_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES / "hello.yaml"), "-o",
                                      str(tmp_path), "--set", "topics.partitions=0"])
    assert result.exit_code == 1
    assert "topics/partitions" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "algorail-pipeline").exists()


def test_a_plan_missing_from_values_says_how_to_pass_it():
    with pytest.raises(RenderError, match=r"plan: empty.*algorail render"):
        render_chart("algorail-pipeline", {}, release="x", engine="sdk")


def test_no_helm_cli_and_no_sdk_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RenderError, match="helm CLI is not on PATH"):
        render_chart("algorail", {}, release="x", engine="cli")
    monkeypatch.setitem(sys.modules, "helm_python", None)
    with pytest.raises(RenderError, match=r"pip install 'algorail\[helm\]'"):
        render_chart("algorail", {}, release="x", engine="auto")


def test_unknown_chart_folder_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("ALGORAIL_CHARTS_DIR", str(tmp_path))
    with pytest.raises(RenderError, match="ALGORAIL_CHARTS_DIR"):
        render_chart("algorail", {}, release="x", engine="sdk")


def test_helm_template_output_splits_back_into_its_templates():
    """The helm CLI path reads `helm template` stdout; no helm binary here, so the SDK's
    rendering is printed the way `helm template` prints it and split back."""
    plan = compile_plan(load_pipeline(str(EXAMPLES / "reviews.yaml")))
    rendered = render_chart("algorail-pipeline", pipeline_values(plan), release="r",
                            engine="sdk")
    stdout = "".join(  # one "# Source:" header per document, as helm prints them
        "---\n# Source: algorail-pipeline/" + name + "\n" + doc.strip("-\n") + "\n"
        for name, text in rendered.items()
        for doc in text.split("\n---\n") if doc.strip("-\n ")
    )
    split = _split_sources(stdout, "algorail-pipeline/")
    assert sorted(split) == sorted(rendered)
    assert manifests(split) == manifests(rendered)


def test_with_services_gives_each_chart_the_values_it_knows(tmp_path):
    """One values file and --set for both charts: each chart takes its own keys, and a key
    neither chart knows still fails, named."""
    shared = tmp_path / "values.yaml"
    shared.write_text("networkPolicy: {gatewayFrom: [{podSelector: {}}], metricsFrom: []}\n"
                      "commonLabels: {env: prod}\n")
    out = tmp_path / "out"
    result = _run("render", str(EXAMPLES / "hello.yaml"), "-o", str(out), "--with-services",
                  "-f", str(shared), "--set", "gateway.replicas=3",
                  "--set", "auth.existingSecret=hello-keys", "--set", "runner.metricsPort=9200")
    assert result.exit_code == 0, result.output
    objects = _objects(out)
    assert all(o["metadata"]["labels"]["env"] == "prod" for o in objects)
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    runners = next(p for name, p in policies.items() if name.endswith("-runners"))
    assert "from" not in runners["spec"]["ingress"][0]  # metricsFrom: [] reached the runners
    assert runners["spec"]["ingress"][0]["ports"][0]["port"] == 9200
    failed = CliRunner().invoke(cli, ["render", str(EXAMPLES / "hello.yaml"), "-o",
                                      str(tmp_path / "bad"), "--with-services",
                                      "--set", "gateway.replicaz=3"])
    assert failed.exit_code == 1 and "replicaz" in failed.output


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml")) + sorted(
        p for p in (EXAMPLES / "seldon").glob("*.yaml") if p.name != "bindings.yaml")


@pytest.mark.parametrize("example", _example_files(), ids=lambda p: p.stem)
def test_every_example_renders_with_services_into_valid_objects(example, tmp_path):
    """`algorail render --with-services` of each example: core kinds pass the newest
    Kubernetes schema strictly, custom resources their upstream CRDs."""
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version
    from test_charts import SCHEMAS, _crd_errors, _is_builtin

    bindings = load_bindings(str(EXAMPLES / "seldon" / "bindings.yaml")) if (
        example.parent.name == "seldon") else None
    plan = compile_plan(load_pipeline(str(example), bindings=bindings))
    render_pipeline(plan, tmp_path, with_services=True, engine="sdk",
                    set_values=["connect.enabled=false"] if plan.connectors else [])
    objects = _objects(tmp_path)
    assert {"StatefulSet", "ConfigMap", "Service", "NetworkPolicy"} <= {o["kind"] for o in objects}
    for obj in objects:
        if _is_builtin(obj):
            kubernetes_validate.validate(obj, latest_version(), strict=True)
    if SCHEMAS is None:
        pytest.skip("upstream CRD schemas not found at ../shared/schemas")
    assert _crd_errors(objects) == []
