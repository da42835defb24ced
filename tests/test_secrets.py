"""Secrets never reach cluster objects as values: webhook secrets, credential headers and
secret algo env are references in everything rendered for a cluster (`algorail render`,
chart values, the Pulumi program, the registry's kubernetes target); the charts turn them
into secretKeyRef env entries and mounted Secrets. Inline ones are refused, saying how to
move them, except in `algorail dev`, which warns once and keeps them."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import sys
from types import SimpleNamespace

import pytest
import yaml
from algorail.connectors.secrets import env_values, inline_secret_problems
from algorail.plugins.hooks import WebhookHook, WebhookRefused
from click.testing import CliRunner
from test_hooks import Target

from algorail.cli import cli
from algorail.compiler import compile_plan
from algorail.errors import PipelineError
from algorail.extensions import DeliveryContext
from algorail.loader import validate_document
from algorail.registry.supervisor import KubernetesTarget
from algorail.render import RenderError, pipeline_values, render_pipeline
from algorail.runtime.broker import free_port

# What each Secret holds: none of these may appear in anything rendered
VALUES = {("db", "password"): "pw-9f1c", ("openai", "key"): "sk-77aa",
          ("hook-keys", "notify"): "hmac-51be", ("partner", "auth"): "Bearer tk-c0de"}

DOCUMENT = {
    "apiVersion": "algorail.io/v1", "kind": "Pipeline",
    "metadata": {"owner": "shop", "name": "secrets"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
        "algos": [
            {"name": "score", "runtime": "exec", "command": ["python", "score.py"],
             "env": {"DB_PASSWORD": "${secrets:shop/db:password}", "MODEL": "small",
                     "TOKENIZER_PATH": "/models/tok"}},
            {"name": "chat", "runtime": "http", "url": "http://localhost:9000/",
             "image": "ghcr.io/shop/chat:1.0", "config": {"headers": {
                 "X-Model": "chat", "Authorization": "${env:CHAT_AUTH}"}},
             "env": {"OPENAI_API_KEY": "${secrets:shop/openai:key}"}},
        ],
        "hooks": [{"name": "notify", "type": "webhook", "config": {
            "urls": ["https://hooks.example/x"], "secret": "${secrets:shop/hook-keys:notify}",
            "headers": {"Authorization": "${secrets:shop/partner:auth}", "X-Team": "search"}}}],
        "pipes": [{"from": "api.in", "to": "score.in"}, {"from": "api.in", "to": "chat.in"},
                  {"from": "score.out", "to": "notify"}],
    },
}


def plan_of(document: dict):
    return compile_plan(validate_document(document, file="shop.yaml"))


def with_value(path: tuple[str, ...], value) -> dict:
    """DOCUMENT with the value at spec path `path` (e.g. algos, 0, env, DB_PASSWORD) set."""
    document = copy.deepcopy(DOCUMENT)
    node = document["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


@pytest.fixture
def secrets_dir(tmp_path, monkeypatch):
    """The Secrets' values where dev mode and the mounted-Secret layout find them, and in
    the environment: a render that resolved anything would show them."""
    folder = tmp_path / "secrets"
    for (name, key), value in VALUES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / key).write_text(value + "\n")
    monkeypatch.setenv("ALGORAIL_SECRETS_DIR", str(folder))
    monkeypatch.setenv("DB_PASSWORD", VALUES["db", "password"])
    return folder


def test_rendered_objects_hold_references_and_no_secret_value(tmp_path, secrets_dir):
    out = tmp_path / "out"
    written = render_pipeline(plan_of(DOCUMENT), out, namespace="shop", with_services=True)
    texts = {path.name + "@" + path.parent.name: path.read_text() for path in written}
    for secret in VALUES.values():
        assert not [name for name, text in texts.items() if secret in text], secret
    objects = [o for text in texts.values() for o in yaml.safe_load_all(text) if o]
    for config_map in (o for o in objects if o["kind"] == "ConfigMap"):
        assert not any(secret in json.dumps(config_map) for secret in VALUES.values())
    env = {(d["metadata"]["name"], c["name"]): {e["name"]: e for e in c.get("env", [])}
           for d in objects if d["kind"] == "Deployment"
           for c in d["spec"]["template"]["spec"]["containers"]}
    score = env["shop-secrets-score", "runner"]
    assert score["DB_PASSWORD"] == {"name": "DB_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "db", "key": "password"}}}
    assert score["MODEL"] == {"name": "MODEL", "value": "small"}
    for container in ("runner", "algo"):
        assert env["shop-secrets-chat", container]["OPENAI_API_KEY"] == {
            "name": "OPENAI_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "openai", "key": "key"}}}
    # the hook dispatcher mounts the Secrets its hooks reference where `resolve` reads them
    [hooks] = [d for d in objects if d["kind"] == "Deployment"
               and d["metadata"]["name"].endswith("-algorail-hooks")]
    pod = hooks["spec"]["template"]["spec"]
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {volumes[m["name"]]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]
              if m["name"] in volumes}
    assert mounts == {"hook-keys": "/etc/algorail/secrets/hook-keys",
                      "partner": "/etc/algorail/secrets/partner"}
    [config] = [o for o in objects if o["metadata"]["name"] == "shop-secrets-algorail-config"]
    assert config["data"]["ALGORAIL_SECRETS_DIR"] == "/etc/algorail/secrets"
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for obj in (o for o in objects if o["kind"] in ("Deployment", "ConfigMap")):
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_values_for_helm_and_the_registry_hold_no_secret_value(tmp_path, secrets_dir):
    resource = KubernetesTarget(tmp_path).resource("shop", "secrets", DOCUMENT,
                                                   {"namespace": "shop"})
    for values in (pipeline_values(plan_of(DOCUMENT)), resource):
        text = json.dumps(values)
        assert "${secrets:shop/db:password}" in text
        assert not [s for s in VALUES.values() if s in text]


def test_the_dispatcher_resolves_references_from_the_mounted_layout(secrets_dir):
    target = Target(free_port())
    target.start()
    try:
        config = copy.deepcopy(DOCUMENT["spec"]["hooks"][0]["config"])
        config["urls"] = [f"http://127.0.0.1:{target.port}/"]
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                                  allow_private_urls=True)
        WebhookHook().deliver(SimpleNamespace(name="notify", config=config), {"x": 1}, context)
        [(headers, body)] = target.received
        assert headers["Authorization"] == VALUES["partner", "auth"]
        assert headers["X-Algorail-Signature"] == "sha256=" + hmac.new(
            VALUES["hook-keys", "notify"].encode(), body, hashlib.sha256).hexdigest()
    finally:
        target.stop()


def test_an_http_algo_and_a_webhook_resolve_header_references(secrets_dir, monkeypatch):
    from algorail.plugins.runtimes import HttpCall

    target = Target(free_port())
    target.start()
    monkeypatch.setenv("CHAT_AUTH", VALUES["openai", "key"])
    try:
        config = DOCUMENT["spec"]["algos"][1]["config"]
        call = HttpCall(f"http://127.0.0.1:{target.port}/", config, timeout=5)
        call({"q": 1})
        call.close()
        assert target.received[0][0]["Authorization"] == VALUES["openai", "key"]
        hook = SimpleNamespace(name="notify", config={
            "urls": [f"http://127.0.0.1:{target.port}/"],
            "headers": {"Authorization": "${secrets:shop/missing:auth}"}})
        context = DeliveryContext(run_id="r", deployment="d", owner="o", source="s.out",
                                  allow_private_urls=True)
        with pytest.raises(WebhookRefused, match="hook notify: .*missing/auth"):
            WebhookHook().deliver(hook, {"x": 1}, context)
        assert len(target.received) == 1
    finally:
        target.stop()


INLINE = [
    (("hooks", 0, "config", "secret"), "hmac-inline", "hook 'notify'", "config.secret",
     "hooks.webhookSecrets.existingSecret"),
    *[(("hooks", 0, "config", "headers", name), "inline-credential", "hook 'notify'",
       f"config.headers.{name}", f"write {name}: ${{secrets:NAMESPACE/SECRET:KEY}}")
      for name in ("Authorization", "Proxy-Authorization", "X-API-Key", "Cookie",
                   "X-Auth-Token", "X-Client-Secret", "X-Signing-Key")],
    *[(("algos", 0, "env", name), "inline-value", "algo 'score'", f"env.{name}",
       f"write {name}: ${{secrets:NAMESPACE/SECRET:KEY}} (the chart makes it a secretKeyRef)")
      for name in ("DB_PASSWORD", "PGPASSWD", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN",
                   "OPENAI_API_KEY", "GOOGLE_CREDENTIALS", "STRIPE_APIKEY", "SSH_PRIVATE_KEY",
                   "ENCRYPTION_KEY")],
    (("algos", 1, "config", "headers", "Authorization"), "Bearer inline", "algo 'chat'",
     "config.headers.Authorization", "write Authorization: ${env:VAR} and add VAR: "
     "${secrets:NAMESPACE/SECRET:KEY} to the algo's env"),
    (("hooks", 0, "config", "headers", "Authorization"), "${secrets:partner:auth}",
     "hook 'notify'", "config.headers.Authorization: ",  # no namespace: cannot be mounted
     "write Authorization: ${secrets:NAMESPACE/SECRET:KEY}"),
    (("algos", 0, "env", "DB_PASSWORD"), "${env:DB_PASSWORD}", "algo 'score'",
     "env.DB_PASSWORD", "only ${secrets:NAMESPACE/SECRET:KEY} references become pod"),
]


@pytest.mark.parametrize("path, value, component, where, how", INLINE,
                         ids=[f"{case[3]}={case[1]}" for case in INLINE])
def test_an_inline_secret_is_refused_saying_how_to_move_it(path, value, component, where,
                                                           how, tmp_path):
    plan = plan_of(with_value(path, value))
    with pytest.raises(PipelineError) as raised:
        pipeline_values(plan)
    [problem] = raised.value.problems
    assert (problem.rule, problem.component, problem.file) == ("inline-secret", component,
                                                               "shop.yaml")
    assert problem.message.startswith(where) and how in problem.message
    assert value not in problem.message or value.startswith("${")
    with pytest.raises(PipelineError, match="inline-secret"):
        KubernetesTarget(tmp_path).resource("shop", "secrets",
                                            with_value(path, value), {"namespace": "shop"})


def test_values_that_are_not_secrets_stay_literal():
    document = with_value(("hooks", 0, "config", "secretEnv"), "NOTIFY_SECRET")
    document["spec"]["hooks"][0]["config"].pop("secret")
    document["spec"]["hooks"][0]["config"]["headers"]["X-Request-Source"] = "algorail"
    document["spec"]["algos"][0]["env"] |= {"TOKENIZER_PATH": "/t", "KEYBOARD": "us"}
    assert inline_secret_problems(plan_of(document)) == []


def test_validate_and_render_report_inline_secrets_without_a_traceback(tmp_path):
    file = tmp_path / "shop.yaml"
    file.write_text(yaml.safe_dump(with_value(("hooks", 0, "config", "secret"), "hmac-x")))
    runner = CliRunner()
    validate = runner.invoke(cli, ["validate", str(file)])
    assert validate.exit_code == 1
    line = file.read_text().splitlines().index("  hooks:") + 2  # the hook's first line
    assert f"shop.yaml:{line}: hook 'notify': [inline-secret] config.secret" in validate.output
    render = runner.invoke(cli, ["render", str(file), "-o", str(tmp_path / "out")])
    assert render.exit_code == 1 and "Traceback" not in render.output
    assert "[inline-secret]" in render.output and not (tmp_path / "out").exists()


def test_a_secret_in_another_namespace_is_refused_by_the_chart(tmp_path):
    with pytest.raises(RenderError, match="create the Secret in other and write "
                                          r"\$\{secrets:other/db:password\}"):
        render_pipeline(plan_of(DOCUMENT), tmp_path, namespace="other")


def test_pulumi_refuses_inline_secrets_and_mounts_referenced_ones(tmp_path):
    from test_infra import PIPELINE, SERVICES, deploy

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(DOCUMENT))
    bad.write_text(yaml.safe_dump(with_value(("algos", 0, "env", "DB_PASSWORD"), "pw-inline")))
    with pytest.raises(PipelineError, match=r"algo 'score': \[inline-secret\] env.DB_PASSWORD"):
        deploy({"pipelines": [{"file": str(bad)}]})
    deployed = deploy({"pipelines": [{"file": str(good)}]})
    assert "${secrets:shop/partner:auth}" in json.dumps(deployed.of_type(PIPELINE))
    # the namespace's one hook dispatcher mounts what the pipelines' hooks reference
    assert deployed.release(SERVICES)["values"]["hooks"]["secrets"] == [
        {"namespace": "shop", "name": "hook-keys"}, {"namespace": "shop", "name": "partner"}]


def test_env_references_come_from_the_pod_environment_or_the_secrets_folder(secrets_dir,
                                                                           monkeypatch):
    env = {"DB_PASSWORD": "${secrets:shop/db:password}", "KEY": "${secrets:shop/openai:key}",
           "MODEL": "small"}
    monkeypatch.setenv("DB_PASSWORD", "from-secretKeyRef")
    assert env_values(env) == {"DB_PASSWORD": "from-secretKeyRef",
                               "KEY": VALUES["openai", "key"], "MODEL": "small"}


@pytest.mark.slow
def test_dev_keeps_inline_secrets_with_one_warning_and_resolves_references(tmp_path,
                                                                          secrets_dir):
    import httpx

    from algorail.runtime.testing import DevProcess

    document = {
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"owner": "shop", "name": "devsecrets"},
        "spec": {
            "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
            "algos": [{"name": "env", "runtime": "exec", "command": [
                sys.executable, "-c", "import json, os, sys; sys.stdin.read(); print(json.dumps("
                "{k: os.environ[k] for k in ('DB_PASSWORD', 'API_TOKEN')}))"],
                "env": {"DB_PASSWORD": "${secrets:shop/db:password}", "API_TOKEN": "tk-inline"}}],
            "hooks": [{"name": "result", "type": "response"}],
            "pipes": [{"from": "api.in", "to": "env.in"}, {"from": "env.out", "to": "result"}],
        },
    }
    file = tmp_path / "devsecrets.yaml"
    file.write_text(yaml.safe_dump(document))
    dev = DevProcess(str(file), work_dir=tmp_path / "work")
    try:
        output = dev.wait_ready()
        assert [line for line in output.splitlines() if "inline secret" in line] == [
            "warning: 1 inline secret(s) (algo 'env' env.API_TOKEN): fine for dev, refused by "
            "validate, render and deployments; `algorail validate` says how to move them"]
        answer = httpx.post(f"http://127.0.0.1:{dev.port}/shop/devsecrets/in?sync=true",
                            json={}, timeout=30)
        assert answer.json()["results"]["result"] == {"DB_PASSWORD": VALUES["db", "password"],
                                           "API_TOKEN": "tk-inline"}
    finally:
        dev.stop()
