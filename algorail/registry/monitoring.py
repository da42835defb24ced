"""Per-component throughput, latency percentiles and errors of a deployment, from its
components' Prometheus metrics (the gateway's ``/metrics``, which merges every runner's).

Once a deployment's monitoring is first asked for, a thread scrapes it every
`SAMPLE_S` seconds and keeps the last hour of samples; it stops when no one has asked for
an hour, when the deployment stops answering, or when the registry closes. Each point is
the difference between two samples: messages written per second, the 50th/95th/99th
percentile of the algo call time in that interval (interpolated in the histogram's
buckets, as Prometheus' histogram_quantile does) and the errors and dead letters in it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

SAMPLE_S = 5.0
KEEP_S = 3600.0  # samples kept, and how long sampling goes on after the last look
SCRAPE_TIMEOUT_S = 5.0
MAX_FAILURES = 3  # scrapes in a row that fail before sampling stops
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class ComponentSample:
    written: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def parse(text: str) -> dict[str, ComponentSample]:
    """The runner metrics of a scrape, per component."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, ComponentSample] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            component = sample.labels.get("component")
            if not component or not sample.name.startswith("algorail_runner_"):
                continue
            into = found.setdefault(component, ComponentSample())
            if sample.name == "algorail_runner_messages_out_total":
                into.written += sample.value
            elif sample.name in ("algorail_runner_errors_total",
                                 "algorail_runner_dead_letters_total"):
                into.errors += sample.value
            elif sample.name == "algorail_runner_algo_seconds_bucket":
                le = float(sample.labels["le"])
                into.buckets[le] = into.buckets.get(le, 0.0) + sample.value
    return found


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative bucket counts, linearly interpolated in its bucket;
    None when there is no observation."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the largest finite bucket: its bound, as Prometheus does
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def points(samples: list[tuple[float, dict[str, ComponentSample]]]) -> dict[str, list[dict]]:
    """Per component, one point per pair of consecutive samples."""
    out: dict[str, list[dict]] = {}
    for (t0, before), (t1, after) in zip(samples, samples[1:], strict=False):
        seconds = max(t1 - t0, 1e-9)
        for component, now in after.items():
            then = before.get(component, ComponentSample())
            delta = {le: now.buckets[le] - then.buckets.get(le, 0.0) for le in now.buckets}
            point = {"t": int(t1 * 1000),
                     "throughput": round(max(now.written - then.written, 0.0) / seconds, 3),
                     "errors": max(now.errors - then.errors, 0.0)}
            for q in QUANTILES:
                value = quantile(q, delta)
                point[f"p{round(q * 100)}"] = None if value is None else round(value * 1000, 3)
            out.setdefault(component, []).append(point)
    return out


class DeploymentSampler:
    """The samples of one deployment, taken by a thread of its own."""

    def __init__(self, metrics_url: str, closing: threading.Event):
        self.metrics_url = metrics_url
        self.closing = closing
        self.samples: deque[tuple[float, dict[str, ComponentSample]]] = deque(
            maxlen=int(KEEP_S / SAMPLE_S) + 1)
        self.looked = time.monotonic()
        self.problem: str | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True, name="registry-monitor")
        self.thread.start()

    def _run(self) -> None:
        import httpx

        failures = 0
        while not self.closing.is_set() and time.monotonic() - self.looked < KEEP_S:
            try:
                text = httpx.get(self.metrics_url, timeout=SCRAPE_TIMEOUT_S).text
                sample = parse(text)
                with self.lock:
                    self.samples.append((time.time(), sample))
                    self.problem = None
                failures = 0
            except (httpx.HTTPError, ValueError) as exc:
                failures += 1
                with self.lock:
                    self.problem = f"cannot read {self.metrics_url}: {exc}"
                if failures >= MAX_FAILURES:
                    return
            self.closing.wait(SAMPLE_S)

    def view(self) -> dict[str, Any]:
        self.looked = time.monotonic()
        with self.lock:
            samples = list(self.samples)
            problem = self.problem
        series = points(samples)
        return {"sampleSeconds": SAMPLE_S, "samples": len(samples), "problem": problem,
                "components": [{"component": name, "points": series[name]}
                               for name in sorted(series)]}


class Monitor:
    """Every deployment's sampler, by deployment and metrics URL."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self.samplers: dict[tuple[str, str, str], DeploymentSampler] = {}
        self.lock = threading.Lock()

    def view(self, owner: str, name: str, metrics_url: str) -> dict[str, Any]:
        key = (owner, name, metrics_url)
        with self.lock:
            sampler = self.samplers.get(key)
            if sampler is None or not sampler.thread.is_alive():
                sampler = self.samplers[key] = DeploymentSampler(metrics_url, self.closing)
        return sampler.view()

    def close(self) -> None:
        self.closing.set()
