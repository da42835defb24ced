"""The pipeline format (algorail.io/v1): its model, and parsing it from YAML or JSON.

Parsing checks shape (keys, types, enums). The rules that span components live in
`algorail.graph`; `algorail.loader.load_pipeline` runs both, so a `Pipeline` it returns is
valid. This module imports neither.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from algorail.errors import PipelineError, Problem
from algorail.parsing import ParseError, loads_json, loads_yaml

API_VERSION = "algorail.io/v1"
SELDON_API_VERSION = "mlops.seldon.io/v1alpha1"

JoinType = Literal["inner", "outer", "any"]


class Model(BaseModel):
    """Base: camelCase keys in files, snake_case in Python, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class Port(Model):
    name: str
    content_type: str = "application/json"
    description: str | None = None


class EndpointPath(Model):
    name: str
    type: Literal["http", "grpc", "kafka"] = "http"
    message_data_type: Literal["embedded", "fileReference"] = "embedded"
    content_type: str = "application/json"
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    protocol: Literal["json", "v2"] = "json"  # v2: also takes V2 inference requests
    description: str | None = None


class Endpoint(Model):
    name: str
    description: str | None = None
    paths: list[EndpointPath] = Field(min_length=1)


class Join(Model):
    """How an algo with several inputs waits for them (Seldon's inputsJoinType)."""

    type: JoinType = "inner"
    window_ms: int = Field(default=1000, ge=0)
    max_pending: int = Field(default=10_000, ge=1)


class Batch(Model):
    size: int | None = Field(default=None, ge=1)
    window_ms: int | None = Field(default=None, ge=1)
    rolling: bool = False


class Retry(Model):
    """Retries of a failed algo call before the message goes to the dead-letter topic;
    `retryOn` lists the kinds of failure retried (`algorail.extensions.AlgoFailed`); a client
    error (V2 4xx, or an exception marked non-retryable) is never retried."""

    attempts: int = Field(default=3, ge=0, le=100)
    backoff_ms: int = Field(default=200, ge=0)
    max_backoff_ms: int = Field(default=10_000, ge=0)
    retry_on: list[Literal["timeout", "connection", "server", "throttled", "error"]] = Field(
        default_factory=lambda: ["timeout", "connection", "server", "throttled", "error"])


class Trigger(Model):
    """An output that must appear (optionally with these fields) before an algo runs."""

    from_: str = Field(alias="from")
    fields: list[str] | None = None

    @classmethod
    def coerce(cls, value: Any) -> Any:
        return {"from": value} if isinstance(value, str) else value


class Algo(Model):
    name: str
    ref: str | None = None
    runtime: str
    description: str | None = None
    command: list[str] | None = None
    entrypoint: str | None = None
    url: str | None = None
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[Port] = Field(default_factory=lambda: [Port(name="in")])
    outputs: list[Port] = Field(default_factory=lambda: [Port(name="out")])
    input_mode: Literal["keyed", "merged"] = "keyed"
    file_input: Literal["bytes", "reference"] = "bytes"
    join: Join | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    triggers_join: JoinType = "inner"
    batch: Batch | None = None
    timeout_ms: int = Field(default=30_000, ge=1)
    retry: Retry = Field(default_factory=Retry)
    replicas: int = Field(default=1, ge=0)
    resources: dict[str, dict[str, str]] | None = None

    @field_validator("triggers", mode="before")
    @classmethod
    def _triggers(cls, value: Any) -> Any:
        return [Trigger.coerce(v) for v in value] if isinstance(value, list) else value


class DataSource(Model):
    name: str
    connector: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    outputs: list[Port] = Field(default_factory=lambda: [Port(name="out")])


class DataSink(Model):
    name: str
    connector: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[Port] = Field(default_factory=lambda: [Port(name="in")])


class Hook(Model):
    name: str
    type: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    join: Literal["any", "inner"] = "any"


class ExternalInput(Model):
    """Output of another pipeline (or any topic) used here as a source named `name`.

    Give `topic`, or `pipeline` plus optionally `component` and `port`:
    `pipeline` alone is that pipeline's `outputs`; `port: inputs` its endpoint input.
    """

    name: str
    topic: str | None = None
    owner: str | None = None
    pipeline: str | None = None
    component: str | None = None
    port: str = "outputs"
    content_type: str = "application/json"


class Pipe(Model):
    from_: str = Field(alias="from")
    to: str
    fields: list[str] | None = None
    map: dict[str, str] = Field(default_factory=dict)
    # Settings of the topic behind `from` (one topic per output port); unset: the chart's.
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1, le=32767)


class Metadata(Model):
    owner: str
    name: str
    version: str = "1.0.0"
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PipelineSpec(Model):
    endpoints: list[Endpoint] = Field(default_factory=list)
    algos: list[Algo] = Field(default_factory=list)
    data_sources: list[DataSource] = Field(default_factory=list)
    data_sinks: list[DataSink] = Field(default_factory=list)
    hooks: list[Hook] = Field(default_factory=list)
    pipes: list[Pipe] = Field(default_factory=list)
    external_inputs: list[ExternalInput] = Field(default_factory=list)
    allow_cycles: bool = False
    # with allowCycles: how often a run may come back to a step; unset, no limit
    max_step_revisits: int | None = Field(default=None, ge=0)
    clean_topics_on_delete: bool = False


class Pipeline(Model):
    api_version: Literal["algorail.io/v1"] = API_VERSION
    kind: Literal["Pipeline"] = "Pipeline"
    metadata: Metadata
    spec: PipelineSpec

    # Where it was loaded from; not part of the format.
    source_file: str | None = Field(default=None, exclude=True)
    base_dir: str | None = Field(default=None, exclude=True)

    @property
    def owner(self) -> str:
        return self.metadata.owner

    def to_dict(self) -> dict[str, Any]:
        return {"apiVersion": self.api_version, "kind": self.kind, **super().to_dict()}

    @property
    def name(self) -> str:
        return self.metadata.name


def read_document(path: str | Path) -> dict[str, Any]:
    """Read one YAML or JSON document; errors name the file and, for syntax, the line."""
    return parse_document(read_text(path), str(path))


def read_text(path: str | Path) -> str:
    """A file's text; a file that cannot be read or is not UTF-8 is a `PipelineError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PipelineError(
            [Problem("file", f"cannot read: {exc.strerror}", file=str(path))]
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            [
                Problem(
                    "file",
                    f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}",
                    file=str(path),
                    line=raw.count(b"\n", 0, exc.start) + 1,
                )
            ]
        ) from None
    return text


def parse_document(text: str, file: str | None = None) -> dict[str, Any]:
    """Parse YAML (JSON for a `.json` file) into a mapping; nesting is bounded."""
    try:
        if file and file.endswith(".json"):
            data = loads_json(text)
        else:
            data = loads_yaml(text)
    except ParseError as exc:
        raise PipelineError([Problem("syntax", str(exc), file=file, line=exc.line)]) from None
    if not isinstance(data, dict):
        raise PipelineError(
            [
                Problem(
                    "syntax", "expected a mapping with apiVersion, kind, metadata, spec", file=file
                )
            ]
        )
    return data


def parse_pipeline(
    data: dict[str, Any],
    file: str | None = None,
    bindings: dict[str, Any] | None = None,
) -> Pipeline:
    """Build a `Pipeline` from a loaded document, algorail or Seldon; shape checks only."""
    api_version = data.get("apiVersion")
    if api_version == SELDON_API_VERSION:
        from algorail.seldon import seldon_to_algorail

        data = seldon_to_algorail(data, bindings=bindings, file=file)
    elif api_version != API_VERSION:
        raise PipelineError(
            [
                Problem(
                    "api-version",
                    f"apiVersion must be {API_VERSION!r} or {SELDON_API_VERSION!r}, "
                    f"not {api_version!r}",
                    file=file,
                )
            ]
        )
    elif bindings:
        data = apply_bindings(data, bindings)
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise PipelineError(_shape_problems(exc, data, file)) from None
    pipeline.source_file = file
    pipeline.base_dir = str(Path(file).resolve().parent) if file else None
    return pipeline


def apply_bindings(data: dict[str, Any], bindings: dict[str, Any]) -> dict[str, Any]:
    """Overlay per-algo settings (runtime, entrypoint, url, ...) from a bindings mapping."""
    data = copy.deepcopy(data)
    spec = data.get("spec")
    algos = spec.get("algos") if isinstance(spec, dict) else None
    for algo in algos if isinstance(algos, list) else []:
        name = algo.get("name") if isinstance(algo, dict) else None
        if isinstance(name, str) and isinstance(bindings.get(name), dict):
            algo.update(bindings[name])
    return data


def load_bindings(path: str | Path | None) -> dict[str, dict[str, Any]] | None:
    """A bindings file maps algo or Seldon step names to algo settings, at its top level
    or under `bindings`."""
    if path is None:
        return None
    data = read_document(path)
    return check_bindings(data.get("bindings", data), "bindings", str(path))


def check_bindings(bindings: Any, where: str, file: str | None) -> dict[str, dict[str, Any]]:
    """`bindings` if it maps names to mappings of settings; else a `PipelineError`."""
    if not isinstance(bindings, dict):
        message = (
            f"{where} must be a mapping of algo or step names to settings, "
            f"not {json_type(bindings)}"
        )
        raise PipelineError([Problem("bindings", message, file=file)])
    problems = [
        Problem(
            "bindings",
            f"{where}: {name!r} must be a name bound to a mapping of settings "
            f"(runtime, entrypoint, url, ...), not {json_type(value)}",
            file=file,
        )
        for name, value in bindings.items()
        if not (isinstance(name, str) and isinstance(value, dict))
    ]
    if problems:
        raise PipelineError(problems)
    return bindings


def json_type(value: Any) -> str:
    """What a loaded value is, in the words of JSON: 'a list', 'a string', 'null'."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"),
                       (str, "a string"), (int | float, "a number")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def component_lines(text: str) -> dict[str, int]:
    """Line of each component in a YAML/JSON pipeline, keyed like `Problem.component`
    ("algo 'upper'", "pipe a.out -> b.in", "step 'model1'"), so problems can say where."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    spec = _mapping_value(root, "spec")
    lists = {**_KIND_OF_LIST, "steps": "step"}
    lines: dict[str, int] = {}
    for key, value in spec.value if isinstance(spec, yaml.MappingNode) else []:
        kind = lists.get(key.value)
        if kind is None or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            if kind == "pipe":
                label = f"pipe {_scalar(item, 'from')} -> {_scalar(item, 'to')}"
            else:
                label = f"{kind} {_scalar(item, 'name')!r}"
            lines.setdefault(label, item.start_mark.line + 1)
    return lines


def _mapping_value(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _scalar(node: Any, key: str) -> str | None:
    value = _mapping_value(node, key)
    return value.value if isinstance(value, yaml.ScalarNode) else None


_KIND_OF_LIST = {
    "endpoints": "endpoint",
    "algos": "algo",
    "dataSources": "data source",
    "dataSinks": "data sink",
    "hooks": "hook",
    "externalInputs": "external input",
    "pipes": "pipe",
}


def _shape_problems(exc: ValidationError, data: dict[str, Any], file: str | None) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        component = _component_at(data, loc)
        where = ".".join(str(p) for p in loc)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            message = f"missing required key {loc[-1]!r}"
        elif err["type"] == "literal_error":
            message = f"{where}: {message}, got {err.get('input')!r}"
        else:
            message = f"{where}: {error_message(err)}"
        problems.append(Problem("schema", message, component=component, file=file))
    return problems


def error_message(err: Any) -> str:
    """A pydantic error's message, in the file's terms rather than the model's."""
    if err["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, not {json_type(err.get('input'))}"
    return err["msg"]


def _component_at(data: dict[str, Any], loc: list[Any]) -> str | None:
    """Name the component a pydantic error location points into, e.g. "algo 'upper'"."""
    if len(loc) >= 3 and loc[0] == "spec" and loc[1] in _KIND_OF_LIST and isinstance(loc[2], int):
        kind = _KIND_OF_LIST[loc[1]]
        try:
            item = data["spec"][loc[1]][loc[2]]
        except (KeyError, IndexError, TypeError):
            return None
        if kind == "pipe" and isinstance(item, dict):
            return f"pipe {item.get('from')!s} -> {item.get('to')!s}"
        name = item.get("name") if isinstance(item, dict) else None
        return f"{kind} {name!r}" if name else f"{kind} #{loc[2] + 1}"
    return None
