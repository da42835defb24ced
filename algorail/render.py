"""Plan -> Helm values -> Kubernetes manifests, for GitOps users and the Pulumi infra.

The charts derive nothing: `helm_values` hands them the compiled plan as ``.Values.plan``
plus what only Python knows (each connector plugin's Kafka Connect config, the run-results
path from `algorail.naming`) and the names the plan carries (`Plan.helm`). It is the one
place chart values are assembled: `algorail render`, the Pulumi program and the registry's
Kubernetes target all call it. Rendering uses the helm CLI when it is on PATH, else the
Python Helm SDK (``helm-python-sdk``); both are imported or run only when rendering.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from algorail.errors import AlgorailError
from algorail.plan import Plan

SERVICES_CHART = "algorail"
PIPELINE_CHART = "algorail-pipeline"
ENGINES = ("auto", "cli", "sdk")
SDK_HINT = "pip install 'algorail[helm]' (the helm-python-sdk package)"


class RenderError(AlgorailError):
    """A chart could not be rendered: no Helm available, bad values, or a template failure."""


def chart_dir(name: str) -> Path:
    """Where chart `name` lives: ALGORAIL_CHARTS_DIR, else the charts installed with algorail
    (package `algorail.charts`, the checkout's charts/ folder)."""
    root = Path(os.environ.get("ALGORAIL_CHARTS_DIR") or str(files("algorail.charts")))
    path = root / name
    if not (path / "Chart.yaml").is_file():
        raise RenderError(
            f"chart {name!r} not found in {root}; set ALGORAIL_CHARTS_DIR to the folder that "
            "holds algorail's charts (charts/ in a checkout)"
        )
    return path


# -- values -------------------------------------------------------------------------------


def connector_configs(plan: Plan, registry: Any = None) -> dict[str, dict[str, Any]]:
    """Kafka Connect settings per data source/sink, from each connector plugin.

    A connector without a Kafka Connect implementation is left out; the chart then says
    to set `connect.enabled=false` and run it with `algorail connect` instead."""
    if not plan.connectors:
        return {}
    from algorail.kafka_connect import connector_plugin

    configs = {}
    for connector in plan.connectors:
        plugin = connector_plugin(connector, registry)
        try:
            props = dict(plugin.kafka_connect_config(connector))
        except NotImplementedError:
            continue
        connector_class = props.pop("connector.class", None) or plugin.connector_class
        if not connector_class:
            continue
        tasks = int(props.pop("tasks.max", 1))
        configs[connector.name] = {"class": connector_class, "tasksMax": tasks, "config": props}
    return configs


def pipeline_values(plan: Plan, registry: Any = None,
                    code: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the algorail-pipeline chart needs of `plan` itself (no release names); refuses
    a plan holding a secret inline (`PipelineError`), since the plan goes into a ConfigMap
    and algo env into pods. `code` is the algos' packed modules (`codepack.pack`), packed
    here from the plan's folder when not given."""
    from algorail import codepack
    from algorail.connectors.secrets import require_secret_references

    require_secret_references(plan)
    values = {
        "plan": plan.to_cluster_dict(),
        "connectorConfigs": connector_configs(plan, registry),
        "mappings": {"runsPrefix": plan.runs_url + "/"},
    }
    files = codepack.pack(plan) if code is None else dict(code)
    if files:
        values["code"] = {"files": files}
    return values


def services_values(plan_config_map: str, fullname: str | None = None,
                    plan: Plan | None = None) -> dict[str, Any]:
    """What the algorail chart needs to serve the plan in ConfigMap `plan_config_map`;
    `fullname` prefixes its objects' names (default: the chart picks from the release).
    With `plan`, the hook dispatcher mounts the Secrets its hooks reference."""
    values: dict[str, Any] = {"plan": {"configMap": plan_config_map}}
    if plan is not None:
        from algorail.connectors.secrets import hook_secrets

        if secrets := hook_secrets(plan):
            values["hooks"] = {"secrets": secrets}
    if fullname:
        values["fullnameOverride"] = fullname
    return values


@dataclass(frozen=True)
class HelmValues:
    """Both charts' values for one plan, and the Helm release each is installed as."""

    release: str  # algorail-pipeline: topics, runners, routes, connectors, plan ConfigMap
    pipeline: dict[str, Any]
    services_release: str  # algorail: the gateway and hook dispatcher serving the plan
    services: dict[str, Any]


# Values the plan owns: an override of one would point a chart at objects that do not exist.
DERIVED_KEYS = ("fullnameOverride", "plan", "code", "mappings.gatewayService",
                "mappings.runsPrefix")


def helm_values(plan: Plan, overrides: Mapping[str, Any] | None = None,
                services_overrides: Mapping[str, Any] | None = None,
                registry: Any = None, code: Mapping[str, str] | None = None) -> HelmValues:
    """The values of both charts for `plan`, each chart's overrides merged on top.

    Every name one chart uses to find the other's objects comes from `plan.helm`, so a
    pipeline rendered, deployed by Pulumi or by the registry gets the same objects.
    Overrides may hold any value of the charts except DERIVED_KEYS (and may hold
    Pulumi Outputs: nothing is copied but dicts and lists). `code`: see `pipeline_values`."""
    names = plan.helm
    for chart, given in ((PIPELINE_CHART, overrides), (SERVICES_CHART, services_overrides)):
        for key in DERIVED_KEYS:
            if _has_path(given or {}, key):
                raise RenderError(
                    f"{chart} value {key} comes from the plan ({names.release!r}); choose the "
                    "release name instead (--release, or the deployment name)")
    pipeline = pipeline_values(plan, registry, code)  # refuses a plan holding a secret inline
    pipeline["fullnameOverride"] = names.release
    pipeline["mappings"]["gatewayService"] = names.gateway_service
    pipeline = deep_merge(pipeline, overrides or {})
    services = deep_merge(services_values(names.plan_config_map, names.services_release, plan),
                          services_overrides or {})
    # The values both releases get, final: a check of what a release may hold goes here.
    return HelmValues(release=names.release, pipeline=pipeline,
                      services_release=names.services_release, services=services)


def _has_path(values: Mapping[str, Any], dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    if head not in values:
        return False
    return not rest or (isinstance(values[head], Mapping) and _has_path(values[head], rest))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, merging nested mappings as Helm merges values. Dicts and
    lists are copied, other values (strings, numbers, Pulumi Outputs) are shared."""
    merged = _copy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def load_values_files(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Merge YAML values files in order, later files winning (like `helm -f a -f b`)."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RenderError(f"{path}: cannot read values file: {exc}") from exc
        if not isinstance(data, dict):
            raise RenderError(f"{path}: a values file must be a YAML mapping")
        merged = deep_merge(merged, data)
    return merged


# -- rendering ----------------------------------------------------------------------------


def render_chart(chart: str | Path, values: Mapping[str, Any], *, release: str,
                 namespace: str = "default", set_values: Iterable[str] = (),
                 engine: str = "auto") -> dict[str, str]:
    """Render a chart (a name from charts/, or a Path) offline: template path -> manifest
    text, NOTES.txt and empty templates left out. `set_values` are Helm `--set`
    expressions applied last."""
    path = chart if isinstance(chart, Path) else chart_dir(chart)
    which = _choose_engine(engine)
    if which == "cli":
        rendered = _render_cli(path, values, release, namespace, list(set_values))
    else:
        rendered = _render_sdk(path, values, release, namespace, list(set_values))
    return {
        name: text for name, text in rendered.items()
        if not name.endswith("NOTES.txt") and text.strip()
    }


def manifests(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in rendered templates, in template order."""
    objects = []
    for text in rendered.values():
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def _choose_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise RenderError(f"unknown Helm engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine in ("auto", "cli") and shutil.which("helm"):
        return "cli"
    if engine == "cli":
        raise RenderError("the helm CLI is not on PATH; install Helm, or use --engine sdk")
    try:
        import helm_python  # noqa: F401
    except ImportError as exc:
        raise RenderError(
            f"rendering charts needs the helm CLI on PATH or the Python Helm SDK: {SDK_HINT}"
        ) from exc
    return "sdk"


def _render_sdk(path: Path, values: Mapping[str, Any], release: str, namespace: str,
                set_values: list[str]) -> dict[str, str]:
    import helm_python

    merged = dict(values)
    try:
        for expression in set_values:
            merged = deep_merge(merged, helm_python.parse_set_string(expression))
        with helm_python.Chart.load(path) as loaded:
            rendered = loaded.render(values=merged, name=release, namespace=namespace,
                                     is_install=True)
    except helm_python.HelmError as exc:
        raise RenderError(f"{path.name}: {_helm_message(str(exc))}") from exc
    prefix = f"{path.name}/"
    return {name.removeprefix(prefix): text for name, text in rendered.items()}


def _render_cli(path: Path, values: Mapping[str, Any], release: str, namespace: str,
                set_values: list[str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="algorail-render-") as tmp:
        values_file = Path(tmp) / "values.json"
        values_file.write_text(json.dumps(values), encoding="utf-8")
        cmd = ["helm", "template", release, str(path), "--namespace", namespace,
               "-f", str(values_file)]
        for expression in set_values:
            cmd += ["--set", expression]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RenderError(f"{path.name}: {_helm_message(proc.stderr)}")
    return _split_sources(proc.stdout, f"{path.name}/")


def _split_sources(output: str, prefix: str) -> dict[str, str]:
    """Split `helm template` output on its `# Source: chart/templates/x.yaml` comments."""
    rendered: dict[str, str] = {}
    current = None
    for line in output.splitlines(keepends=True):
        if line.startswith("# Source: "):
            current = line.removeprefix("# Source: ").strip().removeprefix(prefix)
            rendered[current] = rendered.get(current, "") + "---\n"
        elif current is not None:
            rendered[current] += line
    return {name: text.rstrip().removesuffix("---").rstrip() + "\n"
            for name, text in rendered.items()}


def _helm_message(text: str) -> str:
    """The part of a Helm error a user acts on (the chart's own `fail` text when present)."""
    text = text.strip()
    marker = "invalid values:"
    if marker in text:
        return text[text.index(marker):].replace("\\n", "\n").strip().rstrip('"').strip()
    return text


# -- algorail render ----------------------------------------------------------------------


def render_pipeline(plan: Plan, out_dir: str | Path, *, values_files: Iterable[str] = (),
                    set_values: Iterable[str] = (), release: str | None = None,
                    namespace: str = "default", with_services: bool = False,
                    engine: str = "auto") -> list[Path]:
    """Write the manifests of one pipeline under `out_dir`/algorail-pipeline/ (and, with
    `with_services`, the gateway and hook dispatcher for it under `out_dir`/algorail/).
    `release` replaces the plan's release name (every derived name follows). Returns the
    files written; the folder is ready for `kubectl apply -R -f`."""
    if release:
        plan = plan.with_release(release)
    overrides = load_values_files(values_files)
    charts = [PIPELINE_CHART, SERVICES_CHART] if with_services else [PIPELINE_CHART]
    routed = route_overrides(charts, overrides, list(set_values))
    values = helm_values(plan, routed[PIPELINE_CHART][0],
                         routed[SERVICES_CHART][0] if with_services else None)
    jobs = [(PIPELINE_CHART, values.release, values.pipeline)]
    if with_services:
        jobs.append((SERVICES_CHART, values.services_release, values.services))
    rendered = {
        chart: render_chart(chart, chart_values, release=name, namespace=namespace,
                            set_values=routed[chart][1], engine=engine)
        for chart, name, chart_values in jobs
    }
    written = []
    for chart, templates in rendered.items():
        written += _write(templates, Path(out_dir) / chart)
    return written


def route_overrides(charts: list[str], overrides: Mapping[str, Any], set_values: list[str]
                    ) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Split values and `--set` expressions between charts rendered together: each goes to
    the charts whose values.schema.json knows its key; one no chart knows goes to the charts
    that know most of its path, so their schemas (which refuse unknown keys) name the typo."""
    schemas = {c: json.loads((chart_dir(c) / "values.schema.json").read_text()) for c in charts}

    def owners(path: list[str]) -> list[str]:
        depth = {c: _known_depth(schemas[c], path) for c in charts}
        return [c for c in charts if depth[c] == max(depth.values())]

    routed: dict[str, tuple[dict[str, Any], list[str]]] = {c: ({}, []) for c in charts}
    for path, value in _leaf_values(overrides):
        for chart in owners(path):
            node = routed[chart][0]
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = value
    for expression in set_values:
        path = re.sub(r"\[\d+\]", "", expression.split("=", 1)[0]).split(".")
        for chart in owners(path):
            routed[chart][1].append(expression)
    return routed


def _known_depth(schema: Mapping[str, Any], path: list[str]) -> int:
    """How many keys of `path` a values schema accepts (all of them: the whole path)."""
    node = schema
    for depth, key in enumerate(path):
        properties = node.get("properties", {})
        if key in properties:
            node = properties[key]
        elif node.get("additionalProperties") is False:
            return depth
        else:
            break  # a free-form map (labels, plan, resources): any key
    return len(path)


def _leaf_values(values: Mapping[str, Any], prefix: tuple[str, ...] = ()):
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from _leaf_values(value, (*prefix, key))
        else:
            yield [*prefix, key], value


def _write(rendered: Mapping[str, str], folder: Path) -> list[Path]:
    if folder.exists():
        shutil.rmtree(folder)
    written = []
    for name, text in rendered.items():
        target = folder / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        body = text if text.lstrip().startswith("---") else "---\n" + text.lstrip("\n")
        target.write_text(body.rstrip() + "\n", encoding="utf-8")
        written.append(target)
    return written
