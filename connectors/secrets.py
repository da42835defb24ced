"""Credentials in pipelines: references to secrets, never the secret itself.

The one parser of secret references in algorail: connector configs, Kafka connections,
webhook secrets and headers, and algo environment variables all use it. A reference is a
Kafka Connect config-provider placeholder, resolved by the Connect worker on the cluster
and by `resolve` in dev mode and in algorail's own services:

- ``${secrets:NAMESPACE/SECRET:KEY}`` Strimzi's Kubernetes secret provider; in dev mode the
  file ``$ALGORAIL_SECRETS_DIR/SECRET/KEY`` (the layout of a mounted Kubernetes secret);
- ``${file:/path/file.properties:KEY}`` a Java properties file;
- ``${directory:/path:FILE}`` one file's content;
- ``${env:VAR}`` an environment variable of the worker (or of `algorail connect`).

`inline_secret_problems` is the rule for what is rendered for a cluster (Helm values, the
Pulumi program, the registry's kubernetes target): a webhook secret, a credential header
and a secret-looking algo environment variable must be references there, because plans
end up in ConfigMaps and algo env in pod specs. `algorail dev` only warns.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from algorail.errors import AlgorailError, PipelineError, Problem

# Plain groups (provider, path), so the pattern is valid in JSON Schema (ECMA-262) too.
REFERENCE_RE = re.compile(r"^\$\{(secrets|file|directory|env):([^}]+)\}$")
REFERENCE_SCHEMA = {"type": "string", "pattern": REFERENCE_RE.pattern}
# ${secrets:NAMESPACE/SECRET:KEY}, with Kubernetes' rules for each part
KUBERNETES_REFERENCE_RE = re.compile(
    r"^\$\{secrets:(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/"
    r"(?P<name>[a-z0-9]([-.a-z0-9]*[a-z0-9])?):(?P<key>[-._a-zA-Z0-9]+)\}$")
# Names of values that are secrets: env variables (DB_PASSWORD, HF_TOKEN, OPENAI_API_KEY,
# SIGNING_KEY), header names (Authorization, X-API-Key, Cookie, X-Auth-Token), config keys
# (secret). Not TOKENIZER_PATH or KEYBOARD: token and key count as words.
SECRET_NAME_RE = re.compile(
    r"passw(or)?d|secret|credential|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|(^|[-_.])(tokens?|cookie|authorization)($|[-_.])|(^|[-_.])key$", re.I)
RULE = "inline-secret"
SECRETS_DIR_ENV = "ALGORAIL_SECRETS_DIR"
REFERENCE_HINT = (
    "write a reference such as ${secrets:NAMESPACE/SECRET:KEY}, ${file:/path/creds.properties:KEY} "
    "or ${env:VAR}, never the secret itself"
)


class SecretNotFound(AlgorailError):
    """A secret reference that cannot be resolved in dev mode."""


class KubernetesSecretRef(NamedTuple):
    namespace: str
    name: str
    key: str


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE_RE.match(value) is not None


def kubernetes_reference(value: Any) -> KubernetesSecretRef | None:
    """The Secret a ``${secrets:NAMESPACE/SECRET:KEY}`` reference names, else None."""
    match = KUBERNETES_REFERENCE_RE.match(value) if isinstance(value, str) else None
    return KubernetesSecretRef(match["namespace"], match["name"], match["key"]) if match else None


def is_secret_name(name: str) -> bool:
    """A variable, header or config key whose value is a credential, by its name."""
    return SECRET_NAME_RE.search(name) is not None


class InlineSecret(NamedTuple):
    component: str  # as `Problem.component` names it: "algo 'score'", "hook 'notify'"
    field: str  # "env.DB_PASSWORD", "config.headers.Authorization"
    how: str  # what to write instead
    inline: bool = True  # False: a reference of a kind the component cannot resolve there


KUBERNETES_HINT = "${secrets:NAMESPACE/SECRET:KEY}"


def webhook_secret_hint(hook: str) -> str:
    return (f"write secret: {KUBERNETES_HINT}, or set secretEnv: VAR, or leave it out and add "
            f"key {hook} to the Secret named by the algorail chart's "
            "hooks.webhookSecrets.existingSecret")


def inline_secrets(plan: Any) -> list[InlineSecret]:
    """Every secret a plan holds inline, or as a reference its component cannot use on a
    cluster, with what to write instead."""
    found = []
    for runner in plan.runners:
        component = f"algo {runner.component!r}"
        for name, value in runner.env.items():
            if is_reference(value) and not kubernetes_reference(value):
                found.append(InlineSecret(component, f"env.{name}", (
                    f"only {KUBERNETES_HINT} references become pod environment variables "
                    f"(secretKeyRef); write one instead of {value}"), inline=False))
            elif is_secret_name(name) and not is_reference(value):
                found.append(InlineSecret(component, f"env.{name}", (
                    "store it in a Kubernetes Secret (kubectl create secret generic SECRET "
                    f"--from-literal=KEY=...) and write {name}: {KUBERNETES_HINT} (the chart "
                    "makes it a secretKeyRef)")))
        found += _inline_headers(component, runner.config, lambda name: (
            f"write {name}: ${{env:VAR}} and add VAR: {KUBERNETES_HINT} to the algo's env"))
    for hook in plan.hooks:
        component = f"hook {hook.name!r}"
        found += [InlineSecret(component, f"config.{key}",
                               webhook_secret_hint(hook.name) if key == "secret"
                               else f"write {key}: {KUBERNETES_HINT}", not is_reference(value))
                  for key, value in hook.config.items()
                  if key != "headers" and not key.endswith("Env") and is_secret_name(key)
                  and value and not _usable_reference(value)]
        found += _inline_headers(component, hook.config, lambda name: (
            f"store it in a Kubernetes Secret and write {name}: {KUBERNETES_HINT}"))
    return found


def _usable_reference(value: Any) -> bool:
    """A reference a service can resolve on a cluster (a ${secrets:...} one must name the
    namespace, Secret and key, since the Secret is mounted by that name)."""
    return is_reference(value) and (not value.startswith("${secrets:")
                                    or kubernetes_reference(value) is not None)


def _inline_headers(component: str, config: dict[str, Any], how) -> list[InlineSecret]:
    headers = config.get("headers")
    return [InlineSecret(component, f"config.headers.{name}", how(name), not is_reference(value))
            for name, value in (headers.items() if isinstance(headers, dict) else ())
            if is_secret_name(name) and not _usable_reference(value)]


def inline_secret_problems(plan: Any) -> list[Problem]:
    """`inline_secrets` as problems of rule ``inline-secret``."""
    return [Problem(RULE, (f"{s.field} holds a secret inline (a plan is a ConfigMap, algo "
                           f"env is in pod specs); {s.how}") if s.inline else f"{s.field}: {s.how}",
                    component=s.component, file=plan.source_file)
            for s in inline_secrets(plan)]


def require_secret_references(plan: Any) -> None:
    """Refuse a plan about to be rendered for a cluster that holds a secret inline; each
    problem names the line of its component when the pipeline file is at hand."""
    problems = inline_secret_problems(plan)
    if not problems:
        return
    from algorail.spec import component_lines

    try:
        lines = component_lines(Path(plan.source_file).read_text(encoding="utf-8"))
    except (OSError, TypeError, UnicodeError):
        lines = {}
    raise PipelineError([replace(p, line=lines.get(p.component)) for p in problems])


def inline_secrets_warning(plan: Any) -> str | None:
    """One line for `algorail dev`, which keeps inline secrets, naming where they are."""
    found = inline_secrets(plan)
    if not found:
        return None
    where = ", ".join(f"{s.component} {s.field}" for s in found)
    return (f"warning: {len(found)} inline secret(s) ({where}): fine for dev, refused by "
            "validate, render and deployments; `algorail validate` says how to move them")


def hook_secrets(plan: Any) -> list[dict[str, str]]:
    """The Kubernetes Secrets (namespace, name) the plan's hooks reference: the hook
    dispatcher mounts them where `resolve` finds them."""
    found = set()
    for hook in plan.hooks:
        headers = hook.config.get("headers")
        values = [*hook.config.values(), *(headers.values() if isinstance(headers, dict) else ())]
        found |= {(ref.namespace, ref.name) for ref in map(kubernetes_reference, values) if ref}
    return [{"namespace": namespace, "name": name} for namespace, name in sorted(found)]


def value_of(value: Any) -> str:
    """The secret a reference points to, or a plain value as it is (dev mode's inline ones)."""
    return resolve(value) if is_reference(value) else str(value)


def resolved(values: dict[str, Any]) -> dict[str, str]:
    """A mapping (headers) with each reference replaced by the secret it points to."""
    return {name: value_of(value) for name, value in values.items()}


def env_values(env: dict[str, str]) -> dict[str, str]:
    """An algo's environment with its references resolved: from the variable of the same
    name when the pod has it (the chart sets it from the Secret), else as `resolve` does."""
    return {name: (os.environ[name] if name in os.environ else resolve(value))
            if is_reference(value) else value for name, value in env.items()}


def secret_problems(config: dict[str, Any], keys: tuple[str, ...],
                    where: str = "config") -> list[str]:
    """Sentences for each credential key holding an inline value instead of a reference."""
    return [
        f"{where}.{key}: an inline secret is not allowed; {REFERENCE_HINT}"
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
    provider, path = match[1], match[2]
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
