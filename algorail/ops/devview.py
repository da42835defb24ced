"""What `algorail dev` shows of its components: the table printed once it is ready, and
every runner's metrics merged into the gateway's ``/metrics``.

Each runner serves its own ``/metrics`` on a loopback port (its metrics carry a
``component`` label); `ChildMetrics` scrapes them when the gateway's ``/metrics`` is read
and merges families of the same name, so one scrape sees the whole pipeline.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from typing import Any

SCRAPE_TIMEOUT = 2.0


class ChildMetrics:
    """A Prometheus collector of the metrics that child processes serve over HTTP."""

    def __init__(self, urls: Callable[[], Iterable[str]]):
        self.urls = urls

    def collect(self) -> Iterable[Any]:
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        merged: dict[str, Any] = {}
        for url in self.urls():
            try:
                text = httpx.get(url, timeout=SCRAPE_TIMEOUT).text
            except httpx.HTTPError:
                continue  # a child that is down has no metrics; its state says why
            for family in text_string_to_metric_families(text):
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return list(merged.values())


def component_table(plan: Any, children: Iterable[Any], gateway_url: str) -> str:
    """Every component of the plan with its state, process and metrics, as text lines."""
    from rich.console import Console
    from rich.table import Table

    here, gateway_metrics = str(os.getpid()), f"{gateway_url}/metrics"
    table = Table("component", "kind", "state", "pid", "metrics", box=None,
                  title=f"components of {plan.owner}/{plan.pipeline}:{plan.version}",
                  title_justify="left")
    for route in plan.routes:
        table.add_row(route.endpoint, f"endpoint {route.url}", "running", here,
                      gateway_metrics)
    for child in children:
        pid = str(child.process.pid) if child.process else "-"
        table.add_row(child.name, child.kind, child.state, pid, child.metrics_url or "-")
    for hook in plan.hooks:
        table.add_row(hook.name, f"hook ({hook.type})", "running", here, gateway_metrics)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
