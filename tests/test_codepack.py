"""Python algos without an image, packed for a cluster: what `algorail.codepack` packs, its
bound, and a runner started as its rendered pod would start it (the plan and the code
ConfigMaps laid out as kubelet mounts them, the container's args and env) running the
example's algo from the packed module against a real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, read_topic

from algorail import codepack
from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.render import helm_values, manifests, render_chart
from algorail.runtime import codec
from algorail.runtime.kafka_io import ensure_topics, make_producer


def _plan(folder: Path, entrypoint: str = "algos:upper", image: str | None = None):
    algo = {"name": "upper", "runtime": "python", "entrypoint": entrypoint,
            "inputs": [{"name": "text"}], "outputs": [{"name": "result"}],
            **({"image": image} if image else {})}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "pack", "name": "p", "version": "1.0.0"},
        "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
                 "algos": [algo], "hooks": [{"name": "result", "type": "response"}],
                 "pipes": [{"from": "api.in", "to": "upper.text"},
                           {"from": "upper.result", "to": "result"}]},
    }))
    return compile_plan(load_pipeline(folder / "pipeline.yaml"))


def test_the_entry_module_and_the_local_modules_it_imports_are_packed(tmp_path):
    (tmp_path / "algos.py").write_text("import json\nfrom helpers import shout\n"
                                       "from tools.text import clean\n"
                                       "def upper(p):\n    return shout(clean(p))\n")
    (tmp_path / "helpers.py").write_text("def shout(p):\n    return p\n")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("")
    (tmp_path / "tools" / "text.py").write_text("from . import util\ndef clean(p):\n"
                                               "    return p\n")
    (tmp_path / "tools" / "util.py").write_text("X = 1\n")
    (tmp_path / "unused.py").write_text("Y = 2\n")
    files = codepack.pack(_plan(tmp_path))
    assert sorted(files) == ["algos.py", "helpers.py", "tools/__init__.py", "tools/text.py",
                             "tools/util.py"]
    assert files["helpers.py"] == (tmp_path / "helpers.py").read_text()


def test_nothing_is_packed_for_an_image_or_an_installed_module(tmp_path):
    (tmp_path / "algos.py").write_text("def upper(p):\n    return p\n")
    assert codepack.pack(_plan(tmp_path, image="ghcr.io/acme/upper:1")) == {}
    assert codepack.pack(_plan(tmp_path, entrypoint="copy:copy")) == {}
    assert codepack.pack(_plan(tmp_path).model_copy(update={"base_dir": None, "runners": [
        r.model_copy(update={"base_dir": None}) for r in _plan(tmp_path).runners]})) == {}


def test_beyond_the_bound_the_error_points_to_the_algo_template(tmp_path):
    (tmp_path / "algos.py").write_text("def upper(p):\n    return p\n" + "#" * 2000 + "\n")
    with pytest.raises(codepack.CodePackError) as error:
        codepack.pack(_plan(tmp_path), max_bytes=1000)
    message = str(error.value)
    assert "algo 'upper'" in message and "algos.py" in message and "1000" in message
    assert "templates/algo/{{cookiecutter.distribution}}/Dockerfile" in message
    assert "set the algo's `image`" in message


@pytest.mark.parametrize("example", ["hello.yaml", "reviews.yaml"])
def test_examples_render_with_their_modules_mounted(example):
    plan = compile_plan(load_pipeline(EXAMPLES / example))
    values = helm_values(plan)
    objects = manifests(render_chart("algorail-pipeline", values.pipeline,
                                     release=values.release))
    (code,) = [o for o in objects if o["kind"] == "ConfigMap" and
               o["metadata"]["name"].endswith("-code")]
    assert code["data"] == {"hello_algos.py": (EXAMPLES / "hello_algos.py").read_text()}
    packed = {r.id for r in plan.runners if codepack.packed(r)}
    runners = [o for o in objects if o["kind"] == "Deployment"
               and o["metadata"]["annotations"]["algorail.io/id"] in packed]
    assert runners
    for runner in runners:
        pod = runner["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"name": "PYTHONPATH", "value": codepack.CODE_DIR} in container["env"]
        assert {"name": "code", "mountPath": codepack.CODE_DIR, "readOnly": True} in (
            container["volumeMounts"])
        (volume,) = [v for v in pod["volumes"] if v["name"] == "code"]
        assert volume["configMap"] == {"name": code["metadata"]["name"], "items": [
            {"key": "hello_algos.py", "path": "hello_algos.py"}]}


@pytest.mark.slow
def test_a_runner_started_as_its_pod_runs_the_packed_module(broker, tmp_path):
    """The stock image holds algorail but not hello_algos: run the rendered container's
    command with nothing on the path but what the pod mounts."""
    plan = compile_plan(load_pipeline(EXAMPLES / "hello.yaml"), deployment="packed")
    values = helm_values(plan)
    objects = manifests(render_chart("algorail-pipeline", values.pipeline,
                                     release=values.release))
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    root = tmp_path / "pod"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    for volume in pod["volumes"]:  # lay the ConfigMaps out as kubelet mounts them
        if "configMap" not in volume:
            continue
        data = config_maps[volume["configMap"]["name"]]["data"]
        for item in volume["configMap"]["items"]:
            target = root / mounts[volume["name"]].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(ALGORAIL_BOOTSTRAP_SERVERS=broker.bootstrap_servers, ALGORAIL_METRICS_PORT="0",
               PYTHONPATH=str(root / env["PYTHONPATH"].lstrip("/")))
    args = [a if not a.startswith("/etc/algorail") else str(root / a.lstrip("/"))
            for a in container["args"]]
    ensure_topics(broker.bootstrap_servers, plan.created_topics())
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "algorail.cli", *args], cwd=workdir,
                                env={**{k: v for k, v in os.environ.items()
                                        if k != "PYTHONPATH"}, **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        run_id = uuid.uuid4().hex
        producer = make_producer(broker.bootstrap_servers)
        producer.send(plan.routes[0].topic, value=json.dumps({"text": "packed"}).encode(),
                      headers=codec.Envelope(run_id=run_id, deployment="packed",
                                                source="api.in").to_headers()).get(timeout=10)
        producer.close()
        topic = plan.runner("upper").outputs["result"]
        records = []
        for _ in range(20):
            records = read_topic(broker.bootstrap_servers, topic)
            if records or proc.poll() is not None:
                break
        assert records, log.read_text()
        assert json.loads(records[0].value) == {"text": "PACKED"}
    finally:
        proc.terminate()
        proc.wait(15)
