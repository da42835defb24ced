"""Names of components, topics, URLs, consumer groups and Kubernetes objects, in one place.

The compiler (`algorail.compiler`) asks here and stores every name in the plan; the runtime,
the renderers, the operator and the ops commands read the plan, so a name is derived
exactly once.
"""

from __future__ import annotations

import hashlib
import re

NAME_RE = re.compile(r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$")
NAME_MAX = 50
NAME_RULE = (
    "use letters, digits and single hyphens, not starting or ending with a hyphen, "
    f"at most {NAME_MAX} characters"
)
# Seldon manifests keep Seldon's rule: Kubernetes names (DNS labels); the converted
# document says so with this annotation
NAME_RULES_ANNOTATION = "algorail.io/name-rules"
SELDON_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SELDON_NAME_MAX = 63
SELDON_NAME_RULE = (
    "Seldon names are Kubernetes names: lower-case letters, digits and hyphens, starting and "
    f"ending with a letter or digit, at most {SELDON_NAME_MAX} characters"
)
VERSION_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
REF_RE = re.compile(r"^(?P<owner>[^/\s:]+)/(?P<name>[^/\s:]+):(?P<version>[^/\s:]+)$")


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name) <= NAME_MAX


def is_seldon_name(name: str) -> bool:
    return bool(SELDON_NAME_RE.match(name)) and len(name) <= SELDON_NAME_MAX


def component_id(owner: str, name: str, version: str, index: int) -> str:
    """AlgoRun's `{owner}/{name}:{version}[{index}]`."""
    return f"{owner}/{name}:{version}[{index}]"


def algo_ref(owner: str, name: str, version: str) -> str:
    """The registry reference of an algo that names none: `{owner}/{name}:{version}`."""
    return f"{owner}/{name}:{version}"


def source(component: str, port: str) -> str:
    """The `algorail-source` header of what `component` sends from `port`."""
    return f"{component}.{port}"


def error_source(component: str) -> str:
    """The `algorail-source` of `component`'s error reports."""
    return source(component, "errors")


def sink_report_source(sink: str) -> str:
    return source(sink, "written")


def pipe(role: str, component: str | None, port: str | None) -> str | None:
    """How people name a topic of the plan (`algorail tail upper.out`): `component.port`,
    `component.dead-letter`, `errors` or `outputs`; None for a sink's report topic."""
    if component and port:
        return source(component, port)
    if role == "dead-letter" and component:
        return source(component, "dead-letter")
    return {"error": "errors", "pipeline-output": "outputs"}.get(role)


def endpoint_topic(owner: str, deployment: str, path: str) -> str:
    return f"{owner}.{deployment}.{path}"


def output_topic(owner: str, deployment: str, component: str, port: str) -> str:
    return f"{owner}.{deployment}.{component}.{port}"


def error_topic(owner: str, deployment: str) -> str:
    return f"{owner}.{deployment}.errors"


def dead_letter_topic(owner: str, deployment: str, component: str) -> str:
    return f"{owner}.{deployment}.{component}.dead-letter"


def retry_topic(owner: str, deployment: str, component: str, step: int) -> str:
    """Where an algo's failed runs wait for retry `step` (1-based), one topic per wait."""
    return f"{owner}.{deployment}.{component}.retry.{step}"


def sink_report_topic(owner: str, deployment: str, sink: str) -> str:
    """Where a data sink run in Python reports each run it wrote, rejected or skipped."""
    return f"{owner}.{deployment}.{sink}.written"


def pipeline_output_topic(owner: str, deployment: str) -> str:
    """Where a pipeline's `response` hook republishes its result, for other pipelines."""
    return f"{owner}.{deployment}.outputs"


def route_url(owner: str, deployment: str, path: str) -> str:
    return f"/{owner}/{deployment}/{path}"


def object_prefix(owner: str, deployment: str, path: str) -> str:
    """The object store keys of a fileReference path's bodies start with this."""
    return f"{owner}/{deployment}/{path}"


def runs_url(owner: str, deployment: str) -> str:
    """Where the gateway serves a run's results: `GET {runs_url}/{runId}`."""
    return route_url(owner, deployment, "runs")


def consumer_group(owner: str, deployment: str, component: str) -> str:
    return f"algorail.{owner}.{deployment}.{component}"


# The hook dispatcher's own readers: "_" cannot start a component's name, so these groups
# never collide with a component's.
def errors_consumer_group(owner: str, deployment: str) -> str:
    """The error recorder's group: it reads the error topic and marks runs failed."""
    return consumer_group(owner, deployment, "_errors")


def sink_report_consumer_group(owner: str, deployment: str, sink: str) -> str:
    """The group reading a sink's report topic, recording each run's write."""
    return consumer_group(owner, deployment, f"_{sink}-reports")


def kafka_connector_name(owner: str, deployment: str, component: str) -> str:
    """A data source or sink on Kafka Connect; also its Strimzi `KafkaConnector` name,
    hence lower case (a Kubernetes resource name)."""
    return f"{owner}.{deployment}.{component}".lower()


# A Helm release name: a DNS label short enough that "{release}-algorail" (the services
# release, whose chart cuts names at 50) fits, so no object name is ever cut.
RELEASE_MAX = 50 - len("-algorail")
RELEASE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RELEASE_RULE = (f"lower-case letters, digits and hyphens, starting and ending with a letter "
                f"or digit, at most {RELEASE_MAX} characters")


def helm_release(owner: str, deployment: str) -> str:
    """The default Helm release of a deployment: `{owner}-{deployment}` as a DNS label; past
    RELEASE_MAX characters cut and suffixed with a hash of the whole, so it stays unique."""
    name = re.sub(r"[^a-z0-9]+", "-", f"{owner}-{deployment}".lower()).strip("-")
    if len(name) <= RELEASE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:RELEASE_MAX - 9].rstrip('-')}-{digest}"


def services_release(release: str) -> str:
    """The algorail chart's release (gateway, hook dispatcher) beside pipeline release
    `release`; also the prefix of its objects."""
    return f"{release}-algorail"


def plan_config_map(release: str) -> str:
    """The ConfigMap holding the plan: written by the pipeline release, mounted by the other."""
    return f"{release}-plan"


def gateway_service(services_release: str) -> str:
    return f"{services_release}-gateway"


def is_valid_release(name: str) -> bool:
    return bool(RELEASE_RE.match(name)) and len(name) <= RELEASE_MAX
