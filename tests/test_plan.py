"""The compiled plan: names, subscriptions, routes and what sync calls wait for."""

from __future__ import annotations

from conftest import EXAMPLES

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.plan import Plan


def reviews_plan(deployment=None):
    return compile_plan(load_pipeline(EXAMPLES / "reviews.yaml"), deployment=deployment)


def test_topic_names_follow_the_conventions():
    plan = reviews_plan()
    roles = {t.name: t.role for t in plan.topics}
    assert roles["alice.reviews.review"] == "endpoint"
    assert roles["alice.reviews.router.short"] == "output"
    assert roles["alice.reviews.router.long"] == "output"
    assert roles["alice.reviews.errors"] == "error"
    assert roles["alice.reviews.combine.dead-letter"] == "dead-letter"
    assert len(roles) == len(plan.topics), "topics are unique"


def test_deployment_name_changes_topics_routes_and_groups():
    plan = reviews_plan(deployment="reviews-canary")
    assert plan.routes[0].url == "/alice/reviews-canary/review"
    assert plan.routes[0].topic == "alice.reviews-canary.review"
    assert plan.runner("upper").consumer_group == "algorail.alice.reviews-canary.upper"
    assert all(".reviews-canary." in t for t in plan.topic_names())


def test_runner_subscriptions_and_outputs():
    combine = reviews_plan().runner("combine")
    assert [(i.name, i.topic, i.source) for i in combine.inputs] == [
        ("upper", "alice.reviews.upper.result", "upper.result"),
        ("count", "alice.reviews.count.result", "count.result"),
    ]
    assert combine.join.type == "inner" and combine.join.window_ms == 5000
    assert combine.outputs == {"result": "alice.reviews.combine.result"}
    assert combine.id == "alice/combine:1.2.0[5]"
    assert combine.runtime == "exec" and combine.command[0] == "python3"


def test_every_component_has_a_unique_index():
    plan = reviews_plan()
    ids = [r.id for r in plan.runners] + [h.id for h in plan.hooks] + [r.id for r in plan.routes]
    indexes = [int(i.rsplit("[", 1)[1].rstrip("]")) for i in ids]
    assert sorted(indexes) == list(range(1, len(indexes) + 1))


def test_route_waits_for_hooks_reachable_from_it_only():
    pipeline = load_pipeline(EXAMPLES / "reviews.yaml")
    data = pipeline.to_dict()
    data["spec"]["endpoints"][0]["paths"].append({"name": "ping"})
    data["spec"]["algos"].append(
        {
            "name": "pong",
            "runtime": "python",
            "entrypoint": "hello_algos:upper",
            "inputs": [{"name": "in"}],
            "outputs": [{"name": "out"}],
        }
    )
    data["spec"]["hooks"].append({"name": "pong-hook", "type": "response"})
    data["spec"]["pipes"] += [
        {"from": "api.ping", "to": "pong"},
        {"from": "pong", "to": "pong-hook"},
    ]
    from algorail.loader import validate_document

    plan = compile_plan(validate_document(data))
    hooks = {r.path: r.hooks for r in plan.routes}
    assert hooks == {"review": ["summary", "long-reviews"], "ping": ["pong-hook"]}


def test_plan_round_trips_through_json(tmp_path):
    plan = reviews_plan()
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    assert Plan.from_file(path) == plan


def test_unknown_runner_names_the_known_ones():
    try:
        reviews_plan().runner("nope")
    except KeyError as exc:
        assert "algos: upper, count, router, combine" in str(exc)
    else:
        raise AssertionError("expected KeyError")


def test_base_dir_points_at_the_pipeline_folder():
    assert reviews_plan().base_dir == str(EXAMPLES.resolve())


def test_load_plan_takes_a_plan_file_as_it_is_or_compiles_a_pipeline(tmp_path):
    import json

    import pytest

    from algorail.compiler import load_plan
    from algorail.errors import AlgorailError

    compiled = reviews_plan(deployment="canary")
    path = tmp_path / "plan.json"
    path.write_text(compiled.to_json())
    assert load_plan(path) == compiled
    assert load_plan(EXAMPLES / "reviews.yaml", deployment="canary") == compiled
    stale = compiled.to_dict()
    stale["routes"][0]["topicc"] = stale["routes"][0].pop("topic")
    path.write_text(json.dumps(stale))
    with pytest.raises(AlgorailError, match="recompile it with `algorail plan PIPELINE.yaml"):
        load_plan(path)


def test_the_plan_carries_every_derived_name():
    plan = reviews_plan(deployment="rv")
    assert plan.runs_url == "/alice/rv/runs"
    assert plan.errors_consumer_group == "algorail.alice.rv._errors"
    assert {h.name: h.consumer_group for h in plan.hooks} == {
        "summary": "algorail.alice.rv.summary", "long-reviews": "algorail.alice.rv.long-reviews"}
    route = plan.routes[0]
    assert (route.source, route.object_prefix) == ("api.review", "alice/rv/review")
    upper = plan.runner("upper")
    assert upper.output_sources == {"result": "upper.result"}
    assert upper.error_source == "upper.errors"
    assert {h.name: (h.publish_topic, h.publish_source) for h in plan.hooks} == {
        "summary": ("alice.rv.outputs", "summary.outputs"),
        "long-reviews": ("alice.rv.outputs", "long-reviews.outputs")}
    assert plan.helm.model_dump() == {
        "release": "alice-rv", "services_release": "alice-rv-algorail",
        "plan_config_map": "alice-rv-plan", "gateway_service": "alice-rv-algorail-gateway"}
    pipes = {t.pipe: t.name for t in plan.topics if t.pipe}
    assert pipes["api.review"] == "alice.rv.review"
    assert pipes["router.short"] == "alice.rv.router.short"
    assert pipes["combine.dead-letter"] == "alice.rv.combine.dead-letter"
    assert (pipes["errors"], pipes["outputs"]) == ("alice.rv.errors", "alice.rv.outputs")


def test_sinks_carry_their_report_names(tmp_path):
    from algorail.loader import validate_document

    pipeline = validate_document({
        "apiVersion": "algorail.io/v1", "kind": "Pipeline",
        "metadata": {"name": "p", "owner": "o", "version": "1.0.0"},
        "spec": {"endpoints": [{"name": "api", "paths": [{"name": "in"}]}],
                 "dataSinks": [{"name": "store", "connector": "http",
                                "config": {"url": "http://127.0.0.1:1/"}}],
                 "pipes": [{"from": "api.in", "to": "store.in"}]}})
    [sink] = compile_plan(pipeline).connectors
    assert (sink.report_topic, sink.report_source, sink.report_consumer_group) == (
        "o.p.store.written", "store.written", "algorail.o.p._store-reports")


def test_downstream_reads_names_from_the_plan():
    """The gateway's OpenAPI document, the Helm values and `algorail tail` take the names
    the plan holds; none derives its own."""
    from algorail.ops.tail import _pipe_names
    from algorail.render import pipeline_values
    from algorail.runtime.openapi import document

    plan = reviews_plan()
    moved = plan.model_copy(update={"runs_url": "/elsewhere/runs", "topics": [
        t.model_copy(update={"pipe": f"x-{t.pipe}"}) if t.pipe else t for t in plan.topics]})
    assert "/elsewhere/runs/{runId}" in document(moved, 30)["paths"]
    assert pipeline_values(moved)["mappings"]["runsPrefix"] == "/elsewhere/runs/"
    assert _pipe_names(moved)["x-router.short"] == "alice.reviews.router.short"


def test_plan_summary_shows_the_derived_names():
    from click.testing import CliRunner

    from algorail.cli import cli

    result = CliRunner().invoke(cli, ["plan", str(EXAMPLES / "reviews.yaml")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("algorail.alice.reviews._errors", "algorail.alice.reviews.summary",
                 "GET /alice/reviews/runs/{runId}", "alice-reviews-algorail-gateway",
                 "alice-reviews-plan"):
        assert name in result.output


def test_a_compiled_plan_is_plain_data():
    """No pipeline model instance reaches the plan: every nested model is a plan type."""
    from pydantic import BaseModel

    from algorail.plan import PlanModel

    def models(value):
        if isinstance(value, BaseModel):
            yield value
            for name in type(value).model_fields:
                yield from models(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                yield from models(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from models(item)

    found = {type(m).__name__ for m in models(reviews_plan())}
    assert {"JoinPlan", "RetryPlan", "RunnerPlan", "RoutePlan"} <= found
    assert all(isinstance(m, PlanModel) for m in models(reviews_plan()))
