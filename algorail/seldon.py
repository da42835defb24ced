"""Seldon Core 2 `Pipeline` manifests, mapped onto the algorail model.

The mapping (documented in docs/pipeline-format.md):
- the pipeline input is an endpoint `inputs` with one http path `inputs` (protocol v2), so
  it is served at /{namespace}/{pipeline}/inputs and at Seldon's
  /v2/pipelines/{pipeline}/infer, and its topic is {namespace}.{pipeline}.inputs;
- each step is an algo named after the step, with one input per upstream component and
  one output port `outputs`; it receives the merged tensors (``inputMode: merged``);
- a reference to one tensor (`step.outputs.T`) is a pipe with ``fields: [T]``, so data
  flows only when that tensor is present: Seldon's conditional routing;
- `tensorMap` becomes the pipe's ``map``; `inputsJoinType`/`joinWindowMs` the algo's
  ``join``; `triggers`/`triggersJoinType` its triggers; `batch` its batch;
- `output.steps` become a `response` hook named `outputs`, whose result a sync call
  returns and which republishes to {namespace}.{pipeline}.outputs for other pipelines;
- `input.externalInputs`/`externalTriggers` become external inputs on other pipelines'
  topics.
A step binds to an implementation through a bindings mapping (``--bindings FILE`` or the
annotation ``algorail.io/bindings``, YAML; the binding ``*`` applies to every step without
its own); a step left unbound calls the V2 inference server at the URL template in the
annotation ``algorail.io/model-url`` (``{name}`` = step name), and without it is an error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from algorail import naming
from algorail.errors import PipelineError, Problem
from algorail.extensions import TRANSIENT_FAILURES
from algorail.parsing import ParseError, loads_yaml
from algorail.spec import check_bindings, error_message

BINDINGS_ANNOTATION = "algorail.io/bindings"
DEFAULT_BINDING = "*"
INPUT_ENDPOINT = "inputs"
INPUT_PATH = "inputs"
OUTPUT_HOOK = "outputs"
STEP_OUTPUT = "outputs"

SeldonJoin = Literal["inner", "outer", "any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SeldonBatch(_Strict):
    size: int | None = Field(default=None, ge=1)
    windowMs: int | None = Field(default=None, ge=1)
    rolling: bool = False


class SeldonStep(_Strict):
    name: str
    inputs: list[str] = Field(default_factory=list)
    joinWindowMs: int | None = Field(default=None, ge=0)
    tensorMap: dict[str, str] = Field(default_factory=dict)
    triggers: list[str] = Field(default_factory=list)
    inputsJoinType: SeldonJoin | None = None
    triggersJoinType: SeldonJoin | None = None
    batch: SeldonBatch | None = None


class SeldonInput(_Strict):
    externalInputs: list[str] = Field(default_factory=list)
    externalTriggers: list[str] = Field(default_factory=list)
    joinWindowMs: int | None = Field(default=None, ge=0)
    joinType: SeldonJoin | None = None
    triggersJoinType: SeldonJoin | None = None
    tensorMap: dict[str, str] = Field(default_factory=dict)


class SeldonOutput(_Strict):
    steps: list[str] = Field(default_factory=list)
    joinWindowMs: int | None = Field(default=None, ge=0)
    stepsJoin: SeldonJoin | None = None
    tensorMap: dict[str, str] = Field(default_factory=dict)


class SeldonDataflow(_Strict):
    cleanTopicsOnDelete: bool = False


class SeldonMetadata(BaseModel):
    """The parts of a Kubernetes object's metadata algorail reads; others are ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    namespace: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class SeldonSpec(_Strict):
    input: SeldonInput | None = None
    steps: list[SeldonStep] = Field(min_length=1)
    output: SeldonOutput | None = None
    dataflow: SeldonDataflow | None = None
    allowCycles: bool = False
    maxStepRevisits: int | None = Field(default=None, ge=0)


class _Ref:
    """A parsed Seldon reference: which algorail component and port, which tensor."""

    def __init__(self, component: str, port: str, tensor: str | None,
                 written: tuple[str, str] | None = None):
        self.component, self.port, self.tensor = component, port, tensor
        self.written = written  # (step, "inputs") for a step's inputs: tensorMap keys use it

    @property
    def source(self) -> str:
        return f"{self.component}.{self.port}"


class _Converter:
    def __init__(self, doc: dict[str, Any], bindings: dict[str, Any] | None, file: str | None):
        self.file = file
        self.problems: list[Problem] = []
        meta = self._validated(SeldonMetadata, doc.get("metadata") or {}, "metadata", doc)
        self.name = meta.name
        self.namespace = meta.namespace or "default"
        self.annotations = meta.annotations
        self.labels = meta.labels
        self.spec = self._validated(SeldonSpec, doc.get("spec") or {}, "spec", doc)
        if not self.name:
            raise PipelineError([Problem("schema", "metadata.name is required", file=file)])
        self.bindings = dict(self._annotation_bindings())
        self.bindings.update(bindings or {})
        self.step_names = {s.name for s in self.spec.steps}
        self.steps = {s.name: s for s in self.spec.steps}
        self.ext_input_refs: list[_Ref] = []
        self.externals: dict[str, dict[str, Any]] = {}

    def _validated(self, model: type[BaseModel], value: Any, key: str, doc: dict[str, Any]):
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise PipelineError(
                [
                    Problem(
                        "schema",
                        ".".join([key, *(str(p) for p in e["loc"])]) + f": {error_message(e)}",
                        component=self._step_label(e["loc"], doc) if key == "spec" else None,
                        file=self.file,
                    )
                    for e in exc.errors()
                ]
            ) from None

    def _step_label(self, loc: tuple, doc: dict[str, Any]) -> str | None:
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            try:
                return f"step {doc['spec']['steps'][loc[1]]['name']!r}"
            except (KeyError, IndexError, TypeError):
                return f"step #{loc[1] + 1}"
        return None

    def _annotation_bindings(self) -> dict[str, Any]:
        text = self.annotations.get(BINDINGS_ANNOTATION)
        if not text:
            return {}
        where = f"annotation {BINDINGS_ANNOTATION}"
        try:
            data = loads_yaml(text)
        except ParseError as exc:
            raise PipelineError(
                [Problem("bindings", f"{where} is not YAML: {exc}", file=self.file)]
            ) from None
        return check_bindings(data, where, self.file)

    def problem(self, message: str, component: str | None = None) -> None:
        self.problems.append(Problem("seldon-ref", message, component=component, file=self.file))

    # -- references -----------------------------------------------------------------------

    def parse_ref(self, ref: str, where: str, seen: set[str] | None = None) -> _Ref | None:
        """`step`, `step.outputs[.T]`, `step.inputs[.T]`, `pipeline.inputs[.T]`."""
        parts = ref.split(".")
        head = parts[0]
        kind = parts[1] if len(parts) > 1 else "outputs"
        tensor = ".".join(parts[2:]) or None
        if kind not in ("inputs", "outputs") or len(parts) > 3:
            self.problem(f"reference {ref!r}: expected NAME, NAME.inputs[.TENSOR] or "
                         "NAME.outputs[.TENSOR]", where)
            return None
        if head == self.name and head not in self.step_names:
            if kind != "inputs":
                self.problem(
                    f"reference {ref!r}: a pipeline's own outputs cannot feed a step", where
                )
                return None
            return self._pipeline_input(tensor, ref, where)
        if head not in self.step_names:
            self.problem(
                f"reference {ref!r}: no step named {head!r} and not this pipeline "
                f"({self.name!r}); steps: {', '.join(sorted(self.step_names))}",
                where,
            )
            return None
        if kind == "inputs":
            return self._step_inputs(head, tensor, ref, where, seen or set())
        return _Ref(head, STEP_OUTPUT, tensor)

    def _step_inputs(self, name: str, tensor: str | None, ref: str, where: str,
                     seen: set[str]) -> _Ref | None:
        """`step.inputs[.T]`: what the step receives, as a reference to where it comes from."""
        if name in seen:
            self.problem(f"reference {ref!r}: the inputs of {name!r} refer back to themselves",
                         where)
            return None
        step = self.steps[name]
        if step.inputs:
            sources = [self.parse_ref(x, where, seen | {name}) for x in step.inputs]
            renamed = {new for key, new in step.tensorMap.items() if key.count(".") >= 2}
        else:
            sources = list(self.ext_input_refs) or [_Ref(INPUT_ENDPOINT, INPUT_PATH, None)]
            renamed = set(self.spec.input.tensorMap.values()) if self.ext_input_refs else set()
        if tensor in renamed:
            self.problem(f"reference {ref!r}: {name!r} renames a tensor to {tensor!r} with its "
                         "tensorMap; reference the tensor it comes from instead", where)
            return None
        candidates = [r for r in sources if r is not None and r.tensor in (None, tensor)]
        if len(candidates) != 1:
            self.problem(f"reference {ref!r}: the inputs of {name!r} come from "
                         f"{len(candidates)} sources here, not one; reference the source", where)
            return None
        [source] = candidates
        return _Ref(source.component, source.port, tensor or source.tensor, (name, "inputs"))

    def _pipeline_input(self, tensor: str | None, ref: str, where: str) -> _Ref | None:
        if self.externals:
            if len(self.externals) != 1:
                self.problem(
                    f"reference {ref!r}: with several externalInputs, reference one of "
                    "them in the step's inputs instead of the pipeline's inputs",
                    where,
                )
                return None
            return _Ref(next(iter(self.externals)), "out", tensor)
        return _Ref(INPUT_ENDPOINT, INPUT_PATH, tensor)

    def parse_external(self, ref: str) -> _Ref | None:
        """`pipeline[.outputs|.inputs][.T]`, `pipeline.step.STEP[.outputs[.T]]`, as Seldon's
        scheduler reads them (a pipeline alone is its outputs, a step alone its outputs)."""
        parts = ref.split(".")
        expected = ("expected PIPELINE[.outputs|.inputs][.TENSOR] or "
                    "PIPELINE.step.STEP[.outputs[.TENSOR]] (Seldon's scheduler needs the "
                    "'.outputs' before a tensor)")
        if len(parts) == 1:
            parts.append("outputs")
        pipeline, kind = parts[0], parts[1]
        if kind == "step" and len(parts) >= 3:
            if len(parts) == 3:
                parts.append("outputs")
            if parts[3] == "inputs":
                self.problem(f"external input {ref!r}: another pipeline's step inputs are not "
                             "read here; reference the step or pipeline that feeds them")
                return None
            if parts[3] != "outputs" or len(parts) > 5:
                self.problem(f"external input {ref!r}: {expected}")
                return None
            step, tensor = parts[2], ".".join(parts[4:]) or None
            name = f"{pipeline}-{step}"
            ext = {"name": name, "pipeline": pipeline, "component": step, "port": STEP_OUTPUT}
        elif kind in ("inputs", "outputs") and len(parts) <= 3:
            tensor = ".".join(parts[2:]) or None
            name = pipeline if kind == "outputs" else f"{pipeline}-inputs"
            ext = {"name": name, "pipeline": pipeline, "port": kind}
        else:
            self.problem(f"external input {ref!r}: {expected}")
            return None
        ext["owner"] = self.namespace
        self.externals.setdefault(name, ext)
        return _Ref(name, "out", tensor)

    def tensor_map(self, mapping: dict[str, str], source: _Ref) -> dict[str, str]:
        """The part of a Seldon tensorMap that renames tensors of `source`."""
        out = {}
        for key, new in mapping.items():
            parts = key.split(".")
            head = parts[0]
            tensor = parts[-1] if len(parts) >= 3 else None
            if tensor is None:
                continue
            matches_step = (head == source.component and parts[1] == "outputs") or (
                source.written == (head, parts[1]))
            matches_input = source.component in (INPUT_ENDPOINT, *self.externals) and (
                head == self.name or head in self.externals or head == source.component
            )
            if matches_step or matches_input:
                out[tensor] = new
        return out

    # -- Seldon's own rules -----------------------------------------------------------------

    def check_names(self) -> None:
        """What Seldon's operator and scheduler refuse: names that are not Kubernetes names
        (DNS labels: lower case, digits, hyphens, at most 63), a step named like its
        pipeline, a step with the same source as input and as trigger."""
        for what, name, where in [("pipeline name", self.name, None),
                                  *(("step name", s.name, f"step {s.name!r}")
                                    for s in self.spec.steps)]:
            if not naming.is_seldon_name(name):
                self.problems.append(Problem(
                    "name", f"{what} {name!r} is not a valid name: {naming.SELDON_NAME_RULE}",
                    component=where, file=self.file))
        for step in self.spec.steps:
            label = f"step {step.name!r}"
            if step.name == self.name:
                self.problem(f"a step may not be named like its pipeline ({self.name!r})",
                             label)
            sources = {ref.split(".")[0] for ref in step.inputs}
            for trigger in step.triggers:
                if trigger in sources:
                    self.problem(f"{trigger!r} is both an input and a trigger of this step; "
                                 "Seldon refuses that: keep one", label)

    # -- building -------------------------------------------------------------------------

    def group(self, refs: list[_Ref]) -> dict[str, tuple[_Ref, list[str] | None]]:
        """One pipe per upstream port; tensors referenced from it become `fields`."""
        grouped: dict[str, tuple[_Ref, list[str] | None]] = {}
        for ref in refs:
            if ref.source not in grouped:
                grouped[ref.source] = (ref, [] if ref.tensor else None)
            fields = grouped[ref.source][1]
            if fields is not None:
                if ref.tensor is None:
                    grouped[ref.source] = (ref, None)
                elif ref.tensor not in fields:
                    fields.append(ref.tensor)
        return grouped

    def algo_for(self, step: SeldonStep) -> dict[str, Any]:
        """A step's algo: a V2 call to its model, unless its binding says otherwise. The
        binding named ``*`` applies to every step without one of its own, ``{name}`` in its
        strings standing for the step's name."""
        url = self.annotations.get("algorail.io/model-url")
        binding = self.bindings.get(step.name)
        if binding is None and isinstance(self.bindings.get(DEFAULT_BINDING), dict):
            binding = _with_name(self.bindings[DEFAULT_BINDING], step.name)
        if binding is None and url is None:
            self.problems.append(Problem(
                "bindings", "this step is bound to no model: bind it (--bindings FILE, "
                "a binding named '*' for all steps) or set the annotation "
                "algorail.io/model-url", component=f"step {step.name!r}", file=self.file))
        algo: dict[str, Any] = {
            "name": step.name,
            "runtime": "http",
            "url": (url or "").replace("{name}", step.name),
            "config": {"protocol": "v2"},
            "inputMode": "merged",
            "outputs": [{"name": STEP_OUTPUT}],
            "retry": {"retryOn": list(TRANSIENT_FAILURES)},  # Seldon aborts a run on an error
        }
        if isinstance(binding, dict):
            if "runtime" in binding:
                for key in ("url", "config"):
                    algo.pop(key, None)
            algo.update(binding)
        return algo

    def convert(self) -> dict[str, Any]:
        spec = self.spec
        ext_input_refs = self.ext_input_refs = [
            r
            for r in (
                self.parse_external(x) for x in (spec.input.externalInputs if spec.input else [])
            )
            if r
        ]
        self.check_names()
        if spec.input is not None and not spec.input.externalInputs:
            self.problem("input: name at least one of externalInputs (Seldon refuses an input "
                         "section without them)")
        ext_trigger_refs = [
            r
            for r in (
                self.parse_external(x) for x in (spec.input.externalTriggers if spec.input else [])
            )
            if r
        ]
        algos, pipes = [], []
        for step in spec.steps:
            label = f"step {step.name!r}"
            algo = self.algo_for(step)
            if step.inputs:
                refs = [r for r in (self.parse_ref(x, label) for x in step.inputs) if r]
                mapping = step.tensorMap
            elif ext_input_refs:
                refs, mapping = ext_input_refs, spec.input.tensorMap
            else:
                refs, mapping = [_Ref(INPUT_ENDPOINT, INPUT_PATH, None)], {}
            grouped = self.group(refs)
            algo["inputs"] = [{"name": ref.component} for ref, _ in grouped.values()]
            for ref, fields in grouped.values():
                pipe: dict[str, Any] = {"from": ref.source, "to": f"{step.name}.{ref.component}"}
                if fields:
                    pipe["fields"] = fields
                renames = self.tensor_map(mapping, ref)
                if renames:
                    pipe["map"] = renames
                pipes.append(pipe)
            join_type = step.inputsJoinType
            window = step.joinWindowMs
            if not step.inputs and ext_input_refs and spec.input:
                join_type, window = spec.input.joinType, spec.input.joinWindowMs
            if len(grouped) > 1:
                join: dict[str, Any] = {"type": join_type or "inner"}
                if window is not None:
                    join["windowMs"] = window
                algo["join"] = join
            trigger_refs = [r for r in (self.parse_ref(x, label) for x in step.triggers) if r]
            if not step.inputs and ext_trigger_refs:
                trigger_refs += ext_trigger_refs
            if trigger_refs:
                algo["triggers"] = [
                    {"from": ref.source, **({"fields": [ref.tensor]} if ref.tensor else {})}
                    for ref in trigger_refs
                ]
                triggers_join = step.triggersJoinType or (
                    spec.input.triggersJoinType if spec.input and not step.inputs else None
                )
                if triggers_join:
                    algo["triggersJoin"] = triggers_join
            if step.batch:
                algo["batch"] = step.batch.model_dump(exclude_none=True)
            algos.append(algo)

        hooks = []
        if spec.output and spec.output.steps:
            join = spec.output.stepsJoin or "inner"
            hook: dict[str, Any] = {
                "name": OUTPUT_HOOK,
                "type": "response",
                "config": {},
                "join": "inner" if join == "outer" else join,
            }
            hooks.append(hook)
            for ref in self.group(
                [r for r in (self.parse_ref(x, "output") for x in spec.output.steps) if r]
            ).values():
                src, fields = ref
                pipe = {"from": src.source, "to": OUTPUT_HOOK}
                if fields:
                    pipe["fields"] = fields
                renames = self.tensor_map(spec.output.tensorMap, src)
                if renames:
                    pipe["map"] = renames
                pipes.append(pipe)

        if self.problems:
            raise PipelineError(self.problems)
        uses_endpoint = any(p["from"].startswith(f"{INPUT_ENDPOINT}.") for p in pipes)
        endpoints = (
            [{"name": INPUT_ENDPOINT, "paths": [{"name": INPUT_PATH, "protocol": "v2"}]}]
            if uses_endpoint
            else []
        )
        return {
            "apiVersion": "algorail.io/v1",
            "kind": "Pipeline",
            "metadata": {
                "owner": self.namespace,
                "name": self.name,
                "version": self.annotations.get("algorail.io/version", "1.0.0"),
                "description": self.annotations.get("algorail.io/description"),
                "labels": self.labels,
                "annotations": {
                    **{k: v for k, v in self.annotations.items() if k != BINDINGS_ANNOTATION},
                    naming.NAME_RULES_ANNOTATION: "seldon",
                },
            },
            "spec": {
                "endpoints": endpoints,
                "algos": algos,
                "hooks": hooks,
                "pipes": pipes,
                "externalInputs": list(self.externals.values()),
                "allowCycles": spec.allowCycles,
                # Seldon's default: with cycles allowed, no step is revisited
                **({"maxStepRevisits": spec.maxStepRevisits or 0} if spec.allowCycles else {}),
                "cleanTopicsOnDelete": bool(spec.dataflow and spec.dataflow.cleanTopicsOnDelete),
            },
        }


def _with_name(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value.replace("{name}", name)
    if isinstance(value, dict):
        return {k: _with_name(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_name(v, name) for v in value]
    return value


def seldon_to_algorail(
    doc: dict[str, Any], bindings: dict[str, Any] | None = None, file: str | None = None
) -> dict[str, Any]:
    """Translate a Seldon Core 2 Pipeline manifest into an algorail.io/v1 document."""
    if doc.get("kind") != "Pipeline":
        raise PipelineError(
            [Problem("schema", f"kind must be 'Pipeline', not {doc.get('kind')!r}", file=file)]
        )
    return _Converter(doc, bindings, file).convert()
