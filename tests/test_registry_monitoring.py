"""The monitoring arithmetic: runner metrics parsed per component, percentiles
interpolated in histogram buckets, one point per pair of samples."""

from __future__ import annotations

import math

from algorail.registry.monitoring import parse, points, quantile
from algorail.runtime.metrics import RunnerMetrics


def test_a_quantile_is_interpolated_in_its_bucket_as_prometheus_does():
    buckets = {0.001: 0.0, 0.01: 10.0, 0.1: 20.0, math.inf: 20.0}
    assert math.isclose(quantile(0.5, buckets), 0.01)
    assert math.isclose(quantile(0.75, buckets), 0.01 + 0.09 * 0.5)
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {0.1: 1.0, math.inf: 5.0}) == 0.1  # past the last finite bound


def test_points_are_the_differences_of_real_runner_metrics():
    metrics = RunnerMetrics("score")
    before = parse(metrics.render().decode())
    for seconds in (0.002, 0.004, 0.02, 0.03):
        metrics.algo_seconds.labels("score").observe(seconds)
        metrics.messages_out.labels("score", "out", "data").inc()
    metrics.errors.labels("score").inc()
    metrics.dead_letters.labels("score").inc()
    after = parse(metrics.render().decode())
    [point] = points([(100.0, before), (102.0, after)])["score"]
    assert point["throughput"] == 2.0 and point["errors"] == 2.0 and point["t"] == 102_000
    assert 2.5 <= point["p50"] <= 5.0 and 25.0 <= point["p99"] <= 50.0
    assert points([(100.0, after), (101.0, after)])["score"][0]["p50"] is None  # no calls


def test_the_algo_time_histogram_counts_as_a_prometheus_histogram_does():
    """A duration on a bucket's bound counts in that bucket (``le``), one past every bound
    only in +Inf; each component has its own series."""
    metrics = RunnerMetrics("score")
    for seconds in (0.0005, 0.0004, 0.003, 99.0):
        metrics.algo_seconds.labels("score").observe(seconds)
    metrics.algo_seconds.labels("other").observe(0.2)
    value = metrics.registry.get_sample_value
    bucket = "algorail_runner_algo_seconds_bucket"
    assert value(bucket, {"component": "score", "le": "0.0005"}) == 2
    assert value(bucket, {"component": "score", "le": "0.005"}) == 3
    assert value(bucket, {"component": "score", "le": "30.0"}) == 3
    assert value(bucket, {"component": "score", "le": "+Inf"}) == 4
    assert value("algorail_runner_algo_seconds_count", {"component": "score"}) == 4
    assert math.isclose(value("algorail_runner_algo_seconds_sum", {"component": "score"}),
                        99.0039)
    assert value("algorail_runner_algo_seconds_count", {"component": "other"}) == 1
