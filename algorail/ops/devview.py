"""What `algorail dev` shows of its components: the table printed once it is ready,
every runner's metrics merged into the gateway's ``/metrics``, and ``GET /v1/dev``, which
tells the ops commands (`--dev URL`) its plan, broker and work folder.

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
DEV_INFO_PATH = "/v1/dev"
REDACTED = "<redacted>"


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


def dev_info(plan: Any, bootstrap_servers: str, work_folder: str | os.PathLike) -> dict[str, Any]:
    """What ``GET /v1/dev`` answers: the plan as a cluster gets it, with every secret it
    holds inline (dev mode allows them) replaced by ``<redacted>``, and where its broker
    and work folder are."""
    return {"plan": plan_without_secrets(plan), "bootstrapServers": bootstrap_servers,
            "workFolder": str(work_folder)}


def plan_without_secrets(plan: Any) -> dict[str, Any]:
    """`Plan.to_cluster_dict` with the inline secrets `inline_secrets` finds redacted;
    references stay, since they hold no secret."""
    from algorail.connectors.secrets import inline_secrets

    served = plan.to_cluster_dict()
    holders = {**{f"algo {r['component']!r}": r for r in served["runners"]},
               **{f"hook {h['name']!r}": h for h in served["hooks"]}}
    for secret in inline_secrets(plan):
        if not secret.inline:
            continue
        parent, _, key = secret.field.partition(".")  # env.NAME, config.KEY
        holder = holders[secret.component][parent]
        if parent == "config" and key.startswith("headers."):  # config.headers.NAME
            holder, key = holder["headers"], key.removeprefix("headers.")
        holder[key] = REDACTED
    return served
