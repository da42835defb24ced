"""Prometheus and Grafana (kube-prometheus-stack), set up to find algorail's monitors and
dashboards: ServiceMonitors in any namespace, dashboard ConfigMaps labelled
`grafana_dashboard: "1"` in any namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_kubernetes.core.v1 import ConfigMap
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.helm import ChartArgs, upstream_release

RELEASE = "monitoring"
GRAFANA_PATH = "/grafana/"
DASHBOARD_LABEL = "grafana_dashboard"


@dataclass(kw_only=True)
class PrometheusArgs(ChartArgs):
    grafana_behind_ingress: bool = True  # serve Grafana under GRAFANA_PATH
    dashboards: dict[str, str] = field(default_factory=dict)  # file name -> Grafana JSON


class Prometheus(pulumi.ComponentResource):
    """`grafana_service` is Grafana's in-cluster `host:port`."""

    def __init__(self, name: str, args: PrometheusArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Prometheus", name, None, opts)
        self.grafana_password = password(f"{name}-grafana-admin", self)
        self.secret = kubernetes_secret(
            f"{name}-grafana-admin", args.namespace,
            {"admin-user": "admin", "admin-password": self.grafana_password}, self,
        )
        grafana: dict[str, Any] = {
            "admin": {"existingSecret": self.secret.metadata.name,
                      "userKey": "admin-user", "passwordKey": "admin-password"},
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL,
                                       "labelValue": "1", "searchNamespace": "ALL"}},
        }
        if args.grafana_behind_ingress:
            grafana["grafana.ini"] = {"server": {
                "root_url": f"%(protocol)s://%(domain)s{GRAFANA_PATH}",
                "serve_from_sub_path": True,
            }}
        self.release = upstream_release(
            RELEASE, args.chart, args.namespace,
            {
                "grafana": grafana,
                "prometheus": {"prometheusSpec": {
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                }},
            },
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.secret]),
        )
        self.dashboards = ConfigMap(
            "algorail-dashboards",
            metadata=ObjectMetaArgs(name="algorail-dashboards", namespace=args.namespace,
                                    labels={DASHBOARD_LABEL: "1"}),
            data=args.dashboards,
            opts=pulumi.ResourceOptions(parent=self),
        ) if args.dashboards else None
        self.grafana_service = pulumi.Output.concat(
            RELEASE, "-grafana.", args.namespace, ".svc:80"
        )
        self.register_outputs({"grafana_service": self.grafana_service})


def read_dashboards(folder: Path) -> dict[str, str]:
    """algorail's Grafana dashboards (the `algorail` chart's dashboards/*.json)."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.json"))}
