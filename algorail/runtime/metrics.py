"""Prometheus metrics of a runner, and the small HTTP server for /metrics and /healthz."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString


class RunnerMetrics:
    """One registry per runner, so several runners can share a test process."""

    def __init__(self, component: str):
        self.registry = CollectorRegistry()
        r, c = self.registry, ["component"]
        self.messages_in = Counter("algorail_runner_messages_in", "Messages read, per input",
                                   ["component", "input"], registry=r)
        self.messages_out = Counter(
            "algorail_runner_messages_out", "Messages written per output port; kind is "
            "data or skip", ["component", "port", "kind"], registry=r)
        self.algo_seconds = ComponentHistogram(
            "algorail_runner_algo_seconds", "Duration of one algo call", registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                     5, 10, 30))
        self.errors = Counter("algorail_runner_errors", "Runs reported failed", c, registry=r)
        self.retries = Counter("algorail_runner_retries", "Algo calls retried", c, registry=r)
        self.dead_letters = Counter("algorail_runner_dead_letters",
                                    "Messages sent to the dead-letter topic", c, registry=r)
        self.duplicates = Counter("algorail_runner_duplicates_dropped",
                                  "Runs already written before a restart, dropped", c, registry=r)
        self.join_expired = Counter("algorail_runner_join_expired",
                                    "Runs whose join window closed before they could fire", c,
                                    registry=r)
        self.join_pending = Gauge("algorail_runner_join_pending", "Runs waiting in a join", c,
                                  registry=r)
        self.lag = Gauge("algorail_runner_consumer_lag", "Messages not read yet",
                         ["component", "topic", "partition"], registry=r)
        self.component = component

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ComponentHistogram:
    """A Prometheus histogram per component, written by one thread (the runner's loop): an
    observation adds to a list, where prometheus_client's `Histogram` takes a lock for its
    sum and one for a bucket (5 us a call, a tenth of a pass-through runner's CPU per
    message). A scrape reads the counts as they are."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self.children: dict[str, Durations] = {}
        registry.register(self)

    def labels(self, component: str) -> Durations:
        child = self.children.get(component)
        if child is None:
            child = self.children[component] = Durations(self.bounds)
        return child

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=["component"])]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["component"])
        for component, child in list(self.children.items()):
            family.add_metric([component], child.cumulative(), child.sum)
        yield family


class Durations:
    """One component's observations: a count per bucket (the last past every bound)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        buckets, total = [], 0
        for bound, count in zip((*self.bounds, math.inf), list(self.counts), strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))
        return buckets


class MetricsServer:
    """GET /metrics (Prometheus text) and /healthz (200 when healthy, else 503)."""

    def __init__(self, metrics: RunnerMetrics, healthy: Callable[[], bool],
                 host: str = "127.0.0.1", port: int = 0):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.startswith("/metrics"):
                    self._send(200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz"):
                    ok = outer.healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n",
                               "text/plain")
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.metrics, self.healthy = metrics, healthy
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="algorail-metrics")

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
