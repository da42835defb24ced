"""Every validation rule, each with a broken pipeline and the message a user sees."""

from __future__ import annotations

import copy
import json

import pytest

from algorail.errors import PipelineError
from algorail.loader import validate_document
from algorail.spec import parse_document, read_document

BASE = {
    "apiVersion": "algorail.io/v1",
    "kind": "Pipeline",
    "metadata": {"owner": "alice", "name": "hello", "version": "1.0.0"},
    "spec": {
        "endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
        "algos": [
            {
                "name": "upper",
                "runtime": "python",
                "entrypoint": "hello_algos:upper",
                "inputs": [{"name": "text"}],
                "outputs": [{"name": "result"}],
            }
        ],
        "hooks": [{"name": "result", "type": "response"}],
        "pipes": [
            {"from": "api.in", "to": "upper.text"},
            {"from": "upper.result", "to": "result"},
        ],
    },
}


def doc(**changes):
    """BASE with dotted-path changes, e.g. doc(**{"spec.algos.0.runtime": "nope"})."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def problems(data, file="p.yaml"):
    with pytest.raises(PipelineError) as info:
        validate_document(data, file=file)
    return info.value.problems


def only(data, rule):
    found = problems(data)
    assert [p.rule for p in found] == [rule], [str(p) for p in found]
    return found[0]


def test_base_is_valid():
    pipeline = validate_document(copy.deepcopy(BASE), file="p.yaml")
    assert pipeline.name == "hello"


def test_yaml_syntax_error_names_the_line():
    text = "apiVersion: algorail.io/v1\nkind: Pipeline\nmetadata: {owner: [alice\n"
    with pytest.raises(PipelineError) as info:
        parse_document(text, "bad.yaml")
    (problem,) = info.value.problems
    assert problem.rule == "syntax"
    assert problem.line == 4
    assert str(problem).startswith("bad.yaml:4: [syntax] invalid YAML")


def test_json_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{\n "apiVersion": "algorail.io/v1",\n "kind": }\n')
    with pytest.raises(PipelineError) as info:
        read_document(path)
    assert info.value.problems[0].line == 3
    assert "invalid JSON" in info.value.problems[0].message


def test_json_and_yaml_load_the_same(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(BASE))
    assert read_document(tmp_path / "p.json") == BASE


def test_unreadable_file_is_a_pipeline_error(tmp_path):
    with pytest.raises(PipelineError) as info:
        read_document(tmp_path / "missing.yaml")
    assert info.value.problems[0].rule == "file"


def test_unknown_api_version():
    p = only(doc(apiVersion="v2"), "api-version")
    assert p.message == (
        "apiVersion must be 'algorail.io/v1' or 'mlops.seldon.io/v1alpha1', not 'v2'"
    )


def test_unknown_key_names_the_component():
    data = doc()
    data["spec"]["algos"][0]["comand"] = ["x"]
    p = only(data, "schema")
    assert p.component == "algo 'upper'"
    assert p.message == "unknown key 'comand'"


def test_missing_key():
    data = doc()
    del data["spec"]["algos"][0]["runtime"]
    p = only(data, "schema")
    assert p.message == "missing required key 'runtime'"
    assert str(p) == "p.yaml: algo 'upper': [schema] missing required key 'runtime'"


def test_bad_enum_value():
    p = only(doc(**{"spec.endpoints.0.paths.0.type": "ftp"}), "schema")
    assert p.component == "endpoint 'api'"
    assert "ftp" in p.message and "'http', 'grpc' or 'kafka'" in p.message


@pytest.mark.parametrize("name", ["-lead", "trail-", "dou--ble", "under_score", "x" * 51, "sp ace"])
def test_path_names_follow_the_rule(name):
    data = doc(**{"spec.endpoints.0.paths.0.name": name})
    data["spec"]["pipes"][0]["from"] = f"api.{name}"
    p = only(data, "name")
    assert p.message == (
        f"path {name!r} is not a valid name: use letters, digits and single hyphens, "
        "not starting or ending with a hyphen, at most 50 characters"
    )


def test_fifty_character_path_is_fine():
    name = "a" * 50
    data = doc(**{"spec.endpoints.0.paths.0.name": name})
    data["spec"]["pipes"][0]["from"] = f"api.{name}"
    validate_document(data)


def test_owner_name_and_version():
    found = problems(doc(**{"metadata.owner": "al_ice", "metadata.version": "1.0"}))
    assert sorted(p.rule for p in found) == ["name", "version"]
    assert "owner 'al_ice' is not a valid name" in str(found)
    assert "version '1.0' is not a semantic version like 1.0.0" in str(found)


def test_duplicate_component_names():
    data = doc()
    data["spec"]["hooks"].append({"name": "upper", "type": "response"})
    found = problems(data)
    assert "unique-name" in {p.rule for p in found}
    p = next(p for p in found if p.rule == "unique-name")
    assert p.message == (
        "name 'upper' is already used by algo 'upper'; component names must be unique in a pipeline"
    )


def test_paths_unique_across_endpoints():
    data = doc()
    data["spec"]["endpoints"].append({"name": "api2", "paths": [{"name": "in"}]})
    p = only(data, "unique-name")
    assert p.component == "endpoint 'api2'"
    assert "path 'in' is also defined by endpoint 'api'" in p.message


def test_duplicate_port():
    data = doc(**{"spec.algos.0.outputs": [{"name": "result"}, {"name": "result"}]})
    p = only(data, "unique-name")
    assert p.message == "output 'result' is declared twice"


def test_bad_ref():
    p = only(doc(**{"spec.algos.0.ref": "upper-1.0"}), "ref")
    assert p.message == "ref 'upper-1.0' must look like owner/name:version, e.g. alice/upper:1.0.0"


def test_unknown_component_in_pipe():
    p = only(doc(**{"spec.pipes.1": {"from": "uper.result", "to": "result"}}), "unknown-component")
    assert p.message == (
        "pipe uper.result -> result: no component named 'uper' (components: api, result, upper)"
    )


def test_unknown_port_in_pipe():
    p = only(doc(**{"spec.pipes.1": {"from": "upper.reslt", "to": "result"}}), "unknown-port")
    assert p.message == (
        "pipe upper.reslt -> result: algo 'upper' has no output port 'reslt' (output ports: result)"
    )


def test_ambiguous_port_must_be_named():
    data = doc(**{"spec.algos.0.outputs": [{"name": "a"}, {"name": "b"}]})
    data["spec"]["pipes"][1] = {"from": "upper", "to": "result"}
    found = problems(data)
    assert found[0].rule == "unknown-port"
    assert "has several output ports (a, b); name one as upper.PORT" in found[0].message


def test_pipe_direction():
    data = doc()
    data["spec"]["pipes"].append({"from": "result", "to": "upper.text"})
    found = problems(data)
    assert found[0].rule == "pipe-direction"
    assert found[0].message == (
        "pipe result -> upper.text: hook 'result' has no output ports; it only receives data"
    )


def test_input_accepts_one_pipe():
    data = doc()
    data["spec"]["endpoints"][0]["paths"].append({"name": "other"})
    data["spec"]["pipes"].append({"from": "api.other", "to": "upper.text"})
    p = only(data, "one-pipe-per-input")
    assert p.message == (
        "pipe api.other -> upper.text: input upper.text already has a pipe from api.in; "
        "an input port accepts one pipe (an output may feed many)"
    )


def test_output_may_feed_many():
    data = doc()
    data["spec"]["hooks"].append({"name": "copy", "type": "response"})
    data["spec"]["pipes"].append({"from": "upper.result", "to": "copy"})
    validate_document(data)


def test_content_types_must_match():
    data = doc(**{"spec.endpoints.0.paths.0.contentType": "image/png"})
    p = only(data, "content-type")
    assert p.message == (
        "pipe api.in -> upper.text: api.in produces 'image/png' but upper.text accepts "
        "'application/json'"
    )


def test_content_type_wildcards_and_parameters():
    data = doc(**{"spec.endpoints.0.paths.0.contentType": "image/png"})
    data["spec"]["algos"][0]["inputs"][0]["contentType"] = "image/*"
    validate_document(data)
    data = doc(**{"spec.endpoints.0.paths.0.contentType": "application/json; charset=utf-8"})
    validate_document(data)


def test_fields_need_json():
    data = doc(**{"spec.endpoints.0.paths.0.contentType": "text/plain"})
    data["spec"]["algos"][0]["inputs"][0]["contentType"] = "text/plain"
    data["spec"]["pipes"][0]["fields"] = ["text"]
    p = only(data, "content-type")
    assert "'fields' and 'map' select JSON fields, but api.in produces 'text/plain'" in p.message


def test_unconnected_input_and_hook():
    data = doc()
    data["spec"]["pipes"] = [{"from": "api.in", "to": "upper.text"}]
    p = only(data, "unconnected")
    assert p.component == "hook 'result'"
    data = doc()
    data["spec"]["algos"][0]["inputs"].append({"name": "extra"})
    data["spec"]["algos"][0]["join"] = {"type": "inner"}
    p = only(data, "unconnected")
    assert p.message == "input 'extra' has no pipe; add one with to: upper.extra"


def cyclic():
    data = doc()
    data["spec"]["algos"].append(
        {
            "name": "loop",
            "runtime": "python",
            "entrypoint": "m:f",
            "inputs": [{"name": "in"}],
            "outputs": [{"name": "out"}],
        }
    )
    data["spec"]["algos"][0]["inputs"].append({"name": "back"})
    data["spec"]["algos"][0]["join"] = {"type": "any"}
    data["spec"]["pipes"] += [
        {"from": "upper.result", "to": "loop.in"},
        {"from": "loop.out", "to": "upper.back"},
    ]
    return data


def test_cycle_names_its_components():
    p = only(cyclic(), "cycle")
    assert p.message == (
        "components 'upper', 'loop' form a cycle (upper -> loop -> upper); "
        "break it or set allowCycles: true"
    )


def test_cycle_allowed_when_asked():
    data = cyclic()
    data["spec"]["allowCycles"] = True
    validate_document(data)


def test_join_needs_several_inputs():
    p = only(doc(**{"spec.algos.0.join": {"type": "inner"}}), "join")
    assert p.message == ("join is set but the algo has one input and no triggers; a join "
                         "needs two or more inputs, or triggers (whose window it sets)")


def test_a_join_sets_the_window_of_an_algos_triggers():
    data = doc(**{"spec.algos.0.join": {"type": "inner", "windowMs": 5000}})
    data["spec"]["endpoints"][0]["paths"].append({"name": "go"})
    data["spec"]["algos"][0]["triggers"] = ["api.go"]
    validate_document(data, file="p.yaml")


def test_outer_join_needs_a_window():
    data = cyclic()
    data["spec"]["allowCycles"] = True
    data["spec"]["algos"][0]["join"] = {"type": "outer", "windowMs": 0}
    p = only(data, "join")
    assert p.message == "an outer join waits for its window; windowMs must be above 0"


def test_triggers_join_without_triggers():
    p = only(doc(**{"spec.algos.0.triggersJoin": "any"}), "triggers")
    assert p.message == "triggersJoin is set but the algo has no triggers"


def test_trigger_from_unknown_component():
    p = only(doc(**{"spec.algos.0.triggers": ["nope.out"]}), "unknown-component")
    assert p.message.startswith("trigger nope.out of algo 'upper': no component named 'nope'")


def test_batch_needs_size_or_window():
    p = only(doc(**{"spec.algos.0.batch": {"rolling": True}}), "batch")
    assert p.message == "batch needs size, windowMs, or both"


def test_batch_after_outer_join():
    data = cyclic()
    data["spec"]["allowCycles"] = True
    data["spec"]["algos"][0]["join"] = {"type": "outer", "windowMs": 10}
    data["spec"]["algos"][0]["batch"] = {"size": 2}
    p = only(data, "batch")
    assert p.message == "batch combines whole runs; it cannot follow a outer join"


def test_invalid_json_schema():
    p = only(doc(**{"spec.endpoints.0.paths.0.schema": {"type": "objekt"}}), "schema")
    assert p.message.startswith("path 'in': invalid JSON Schema:")


def test_schema_needs_json_content_type():
    data = doc(**{"spec.endpoints.0.paths.0.schema": {"type": "object"}})
    data["spec"]["endpoints"][0]["paths"][0]["contentType"] = "text/plain"
    data["spec"]["algos"][0]["inputs"][0]["contentType"] = "text/plain"
    p = only(data, "schema")
    assert p.message == "path 'in': a JSON Schema needs a JSON contentType, not 'text/plain'"


def test_external_input_needs_topic_or_pipeline():
    data = doc()
    data["spec"]["externalInputs"] = [{"name": "other"}]
    data["spec"]["hooks"].append({"name": "copy", "type": "response"})
    data["spec"]["pipes"].append({"from": "other", "to": "copy"})
    p = only(data, "external-input")
    assert p.message == "give either topic, or pipeline (with optional component and port)"


def test_unknown_runtime_lists_installed():
    p = only(doc(**{"spec.algos.0.runtime": "cobol"}), "unknown-runtime")
    assert p.message.startswith("no runtime named 'cobol' is installed (installed: ")
    assert "exec" in p.message and "python" in p.message and "http" in p.message


def test_unknown_hook_type_lists_installed():
    p = only(doc(**{"spec.hooks.0.type": "pager"}), "unknown-hook-type")
    assert "no hook type named 'pager' is installed" in p.message
    assert "response" in p.message and "webhook" in p.message


def test_unknown_connector():
    data = doc()
    data["spec"]["dataSinks"] = [{"name": "db", "connector": "nope"}]
    data["spec"]["pipes"].append({"from": "upper.result", "to": "db"})
    p = only(data, "unknown-connector")
    assert p.message.startswith("no connector named 'nope' is installed")


def test_runtime_config_is_checked_by_the_runtime():
    data = doc()
    del data["spec"]["algos"][0]["entrypoint"]
    p = only(data, "runtime-config")
    assert p.message == "the python runtime needs entrypoint: 'module.path:function'"


def test_hook_config_is_checked_by_the_hook_type():
    p = only(doc(**{"spec.hooks.0.type": "webhook"}), "hook-type-config")
    assert p.message == "the webhook hook needs config.urls: a list of http(s) URLs"


def test_all_problems_reported_at_once():
    found = problems(doc(**{"metadata.version": "x", "spec.algos.0.runtime": "cobol"}))
    assert {p.rule for p in found} == {"version", "unknown-runtime"}


def test_problems_in_a_file_name_the_line_of_their_component(tmp_path):
    from algorail.loader import load_pipeline

    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: algorail.io/v1\n"
        "kind: Pipeline\n"
        "metadata: {owner: alice, name: hello}\n"
        "spec:\n"
        "  endpoints:\n"
        "    - name: api\n"
        "      paths: [{name: in}]\n"
        "  algos:\n"
        "    - name: upper\n"
        "      runtime: cobol\n"
        "  hooks:\n"
        "    - {name: result, type: response, config: {}}\n"
        "  pipes:\n"
        "    - {from: api.in, to: upper}\n"
        "    - {from: upper, to: result}\n"
    )
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    (problem,) = info.value.problems
    assert (problem.component, problem.line) == ("algo 'upper'", 9)
    assert str(problem).startswith(f"{path}:9: algo 'upper': [unknown-runtime]")


def test_seldon_problems_name_the_line_of_their_step(tmp_path):
    from algorail.loader import load_pipeline

    path = tmp_path / "s.yaml"
    path.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p, "
        "annotations: {algorail.io/model-url: 'http://m/{name}'}}\n"
        "spec:\n  steps:\n    - name: a\n    - name: b\n      inputs: [c]\n"
    )
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    (problem,) = info.value.problems
    assert (problem.component, problem.line) == ("step 'b'", 7)
