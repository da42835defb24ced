"""The compiled plan: names, subscriptions, routes and what sync calls wait for."""

from __future__ import annotations

from conftest import EXAMPLES

from algorail.plan import Plan, compile_plan
from algorail.spec import load_pipeline


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
    from algorail.spec import validate_document

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

    from algorail.errors import AlgorailError
    from algorail.plan import load_plan

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
