"""Seldon Core 2 Pipeline manifests: every example from the Seldon docs validates and
plans, and maps onto algorail's model as documented in algorail/seldon.py."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES

from algorail.compiler import compile_plan
from algorail.errors import PipelineError
from algorail.loader import load_pipeline, validate_document
from algorail.spec import load_bindings, parse_document

SELDON = EXAMPLES / "seldon"
MANIFESTS = sorted(p for p in SELDON.glob("*.yaml") if p.name != "bindings.yaml")
BINDINGS = load_bindings(SELDON / "bindings.yaml")
SERVER = {"*": {"url": "http://models:9000/v2/models/{name}/infer"}}  # every step, one server


def plan_of(name, bindings=BINDINGS):
    return compile_plan(load_pipeline(SELDON / name, bindings=bindings))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_every_docs_example_validates_and_plans(path):
    for bindings in (SERVER, BINDINGS):
        plan = compile_plan(load_pipeline(path, bindings=bindings))
        assert plan.runners, path
        assert plan.error_topic == f"{plan.owner}.{plan.deployment}.errors"


def test_docs_examples_are_all_here():
    names = {p.stem for p in MANIFESTS}
    assert {
        "chain",
        "tfsimples",
        "tfsimples-join",
        "conditional",
        "error",
        "joincheck",
        "trigger-joins",
        "tfsimple",
        "tfsimple-extended",
    } <= names


def test_a_default_binding_points_every_step_at_a_v2_server():
    plan = plan_of("chain.yaml", bindings=SERVER)
    model1 = plan.runner("model1")
    assert model1.runtime == "http"
    assert model1.url == "http://models:9000/v2/models/model1/infer"
    assert model1.config == {"protocol": "v2"}
    assert plan.owner == "seldon-mesh"
    assert plan.runner("model2").url == "http://models:9000/v2/models/model2/infer"


def test_unbound_steps_are_an_error_not_a_call_to_localhost():
    with pytest.raises(PipelineError) as info:
        plan_of("chain.yaml", bindings=None)
    assert [(p.rule, p.component) for p in info.value.problems] == [
        ("bindings", "step 'model1'"), ("bindings", "step 'model2'")]
    assert "algorail.io/model-url" in info.value.problems[0].message


def test_the_model_url_annotation_binds_the_steps_left():
    text = SELDON_HEAD + "spec:\n  steps: [{name: a}]\n"
    plan = compile_plan(validate_document(parse_document(text, "p.yaml"), "p.yaml"))
    assert plan.runner("a").url == "http://m:8000/v2/models/a/infer"


def test_bindings_choose_the_implementation():
    model1 = plan_of("chain.yaml").runner("model1")
    assert (model1.runtime, model1.entrypoint, model1.url) == ("python", "stubs:identity", None)


def test_chain_wires_pipeline_input_to_first_step_and_output_hook():
    plan = plan_of("chain.yaml")
    (route,) = plan.routes
    assert route.url == "/seldon-mesh/chain/inputs"
    assert route.hooks == ["outputs"]
    assert plan.runner("model1").inputs[0].topic == route.topic == "seldon-mesh.chain.inputs"
    assert plan.runner("model2").inputs[0].topic == "seldon-mesh.chain.model1.outputs"
    (hook,) = plan.hooks
    assert (hook.type, hook.publish_topic) == ("response", "seldon-mesh.chain.outputs")
    assert [i.topic for i in hook.inputs] == ["seldon-mesh.chain.model2.outputs"]


def test_join_selects_tensors_and_renames_them():
    step = plan_of("tfsimples-join.yaml").runner("tfsimple3")
    assert step.input_mode == "merged"
    assert step.join.type == "inner"
    assert [(i.name, i.fields, i.map) for i in step.inputs] == [
        ("tfsimple1", ["OUTPUT0"], {"OUTPUT0": "INPUT0"}),
        ("tfsimple2", ["OUTPUT1"], {"OUTPUT1": "INPUT1"}),
    ]


def test_chain_tensor_map_renames_whole_output():
    step = plan_of("tfsimples.yaml").runner("tfsimple2")
    (inp,) = step.inputs
    assert inp.fields is None
    assert inp.map == {"OUTPUT0": "INPUT0", "OUTPUT1": "INPUT1"}


def test_conditional_routes_by_tensor_presence():
    plan = plan_of("conditional.yaml")
    (mul,) = plan.runner("mul10").inputs
    (add,) = plan.runner("add10").inputs
    assert (mul.fields, mul.map) == (["OUTPUT0"], {"OUTPUT0": "INPUT"})
    assert (add.fields, add.map) == (["OUTPUT1"], {"OUTPUT1": "INPUT"})
    (hook,) = plan.hooks
    assert hook.join == "any"
    assert len(hook.inputs) == 2


def test_trigger_is_not_an_input():
    step = plan_of("joincheck.yaml").runner("tfsimple3")
    assert [i.name for i in step.inputs] == ["tfsimple1", "tfsimple2"]
    (trigger,) = step.triggers
    assert trigger.topic == "default.joincheck.check.outputs"
    assert trigger.fields == ["OUTPUT"]


def test_trigger_joins_on_pipeline_inputs():
    plan = plan_of("trigger-joins.yaml")
    mul10 = plan.runner("mul10")
    assert mul10.triggers_join == "any"
    assert [t.fields for t in mul10.triggers] == [["ok1"], ["ok2"]]
    assert [i.fields for i in mul10.inputs] == [["INPUT"]]
    assert plan.runner("add10").triggers_join == "inner"


def test_pipeline_to_pipeline_uses_the_other_pipelines_output_topic():
    upstream = plan_of("tfsimple.yaml")
    downstream = plan_of("tfsimple-extended.yaml")
    (inp,) = downstream.runner("tfsimple2").inputs
    assert inp.topic == upstream.output_topic == "default.tfsimple.outputs"
    assert inp.map == {"OUTPUT0": "INPUT0", "OUTPUT1": "INPUT1"}
    external = [t for t in downstream.topics if t.external]
    assert [t.name for t in external] == ["default.tfsimple.outputs"]
    assert "default.tfsimple.outputs" not in downstream.created_topics()
    assert downstream.routes == []


def test_external_step_reference():
    data = parse_document(
        """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: ext, namespace: team, annotations: {algorail.io/model-url: "http://m"}}
spec:
  input:
    externalInputs: [other.step.tfsimple1.outputs.OUTPUT0]
  steps: [{name: s}]
  output: {steps: [s]}
""",
        "ext.yaml",
    )
    plan = compile_plan(validate_document(data, "ext.yaml"))
    (inp,) = plan.runner("s").inputs
    assert inp.topic == "team.other.tfsimple1.outputs"
    assert inp.fields == ["OUTPUT0"]


@pytest.mark.parametrize("spec, message", [
    ("  input: {externalTriggers: [other.outputs]}\n", "name at least one of externalInputs"),
    ("  input: {externalInputs: [other.step.s1.OUTPUT0]}\n",
     "needs the '.outputs' before a tensor"),
    ("  input: {externalInputs: [other.step.s1.inputs]}\n", "step inputs are not read here"),
    ("  input: {externalInputs: [other.outputs.T.x]}\n", "expected PIPELINE[.outputs|"),
])
def test_external_inputs_seldons_scheduler_refuses_are_refused(spec, message):
    (p,) = seldon_problems("spec:\n" + spec + "  steps: [{name: a}]\n")
    assert message in p.message


def test_external_inputs_default_to_outputs_as_in_seldon():
    doc = validate_document(parse_document(
        SELDON_HEAD + "spec:\n  input: {externalInputs: [other, other2.step.s1]}\n"
        "  steps: [{name: a}]\n", "p.yaml"), "p.yaml")
    plan = compile_plan(doc)
    assert sorted(i.topic for i in plan.runner("a").inputs) == [
        "default.other.outputs", "default.other2.s1.outputs"]


SELDON_HEAD = ("apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p, "
               "annotations: {algorail.io/model-url: 'http://m:8000/v2/models/{name}/infer'}}\n")


def seldon_problems(spec_yaml):
    with pytest.raises(PipelineError) as info:
        validate_document(parse_document(SELDON_HEAD + spec_yaml, "p.yaml"), "p.yaml")
    return info.value.problems


def test_unknown_step_reference():
    (p,) = seldon_problems("spec:\n  steps: [{name: a}, {name: b, inputs: [c.outputs]}]\n")
    assert p.rule == "seldon-ref"
    assert p.component == "step 'b'"
    assert p.message == (
        "reference 'c.outputs': no step named 'c' and not this pipeline ('p'); steps: a, b"
    )


def test_unknown_key_in_a_step():
    (p,) = seldon_problems("spec:\n  steps: [{name: a, input: [b]}]\n")
    assert p.rule == "schema"
    assert p.component == "step 'a'"
    assert "steps.0.input" in p.message


def test_a_steps_inputs_are_what_it_receives():
    """Seldon's tfsimples-input: tfsimple2 takes INPUT0 as tfsimple1 received it."""
    step = plan_of("tfsimples-input.yaml").runner("tfsimple2")
    assert [(i.name, i.topic, i.fields, i.map) for i in step.inputs] == [
        ("inputs", "default.tfsimples-input.inputs", ["INPUT0"], {}),
        ("tfsimple1", "default.tfsimples-input.tfsimple1.outputs", ["OUTPUT1"],
         {"OUTPUT1": "INPUT1"}),
    ]
    renamed = seldon_problems(
        "spec:\n  steps: [{name: a, inputs: [p.inputs.X], tensorMap: {p.inputs.X: Y}},"
        " {name: b, inputs: [a.inputs.Y]}]\n")
    assert "renames a tensor to 'Y'" in renamed[0].message


@pytest.mark.parametrize("name", ["tf--simple", "m" * 63, "0model"])
def test_seldon_names_follow_seldons_rule(name):
    text = SELDON_HEAD + f"spec:\n  steps: [{{name: {name}}}]\n"
    plan = compile_plan(validate_document(parse_document(text, "p.yaml"), "p.yaml"))
    assert plan.runner(name).component == name


@pytest.mark.parametrize("steps, message", [
    ("[{name: Model}]", "step name 'Model' is not a valid name: Seldon names"),
    ("[{name: " + "m" * 64 + "}]", "at most 63 characters"),
    ("[{name: p}]", "may not be named like its pipeline"),
    ("[{name: a}, {name: b, inputs: [a.outputs.X], triggers: [a]}]",
     "'a' is both an input and a trigger"),
    ("[{name: a}, {name: b, inputs: [a.outputs.X.Y]}]", "expected NAME, NAME.inputs"),
])
def test_what_seldon_refuses_is_refused(steps, message):
    problems = seldon_problems(f"spec:\n  steps: {steps}\n")
    assert any(message in p.message for p in problems), problems


def test_max_step_revisits_and_a_batch_after_an_any_join_are_accepted():
    text = SELDON_HEAD + (
        "spec:\n  allowCycles: true\n  maxStepRevisits: 5\n"
        "  steps: [{name: a}, {name: b}, {name: c, inputs: [a, b], inputsJoinType: any,"
        " batch: {size: 2}}]\n")
    plan = compile_plan(validate_document(parse_document(text, "p.yaml"), "p.yaml"))
    assert plan.runner("c").join.type == "any" and plan.runner("c").batch.size == 2
    assert plan.max_step_revisits == 5


def test_cycles_detected_unlike_seldon():
    spec = "spec:\n  steps: [{name: a, inputs: [b]}, {name: b, inputs: [a]}]\n"
    (p,) = seldon_problems(spec)
    assert p.rule == "cycle"
    assert "'a', 'b' form a cycle" in p.message
    data = parse_document(SELDON_HEAD + spec + "  allowCycles: true\n", "p.yaml")
    pipeline = validate_document(data, "p.yaml")
    # Seldon's default: a cyclic pipeline revisits no step unless maxStepRevisits says so
    assert pipeline.spec.allow_cycles and pipeline.spec.max_step_revisits == 0


def test_batch_and_clean_topics_carry_over():
    data = parse_document(
        SELDON_HEAD
        + "spec:\n  steps: [{name: a, batch: {size: 4, windowMs: 100, rolling: true}}]\n"
        + "  dataflow: {cleanTopicsOnDelete: true}\n",
        "p.yaml",
    )
    plan = compile_plan(validate_document(data, "p.yaml"))
    batch = plan.runner("a").batch
    assert (batch.size, batch.window_ms, batch.rolling) == (4, 100, True)
    assert plan.clean_topics_on_delete


def test_bindings_annotation():
    text = (
        SELDON_HEAD.replace(
            "annotations: {",
            "annotations: {algorail.io/bindings: '{a: {runtime: exec, command: [cat]}}', ",
        )
        + "spec:\n  steps: [{name: a}]\n"
    )
    plan = compile_plan(validate_document(parse_document(text, "p.yaml"), "p.yaml"))
    assert plan.runner("a").command == ["cat"]


def test_stub_models_take_1xN_tensors_like_the_real_ones():
    from algorail.plugins.runtimes import load_module

    stubs = load_module("stubs", str(SELDON))
    nested = stubs.tfsimple({"INPUT0": [[1, 2, 3]], "INPUT1": [[1, 1, 1]]})
    assert nested == {"OUTPUT0": [[2, 3, 4]], "OUTPUT1": [[0, 1, 2]]}
    typed = {"datatype": "INT32", "shape": [1, 2], "data": [5, 6]}
    assert stubs.mul10({"INPUT": typed}) == {"OUTPUT": {**typed, "data": [50, 60]}}
    assert stubs.conditional({"CHOICE": [[1]], "INPUT0": typed}) == {"OUTPUT1": typed}
