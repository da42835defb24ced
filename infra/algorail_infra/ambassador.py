"""Ambassador (Emissary-ingress): its CRDs, then the ingress itself, then routes to services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core.v1 import Service
from pulumi_kubernetes.yaml.v2 import ConfigFile

from algorail_infra.helm import upstream_release
from algorail_infra.versions import EMISSARY_CRDS_URL, ChartSource

NAMESPACE = "emissary"
RELEASE = "emissary-ingress"
MAPPING_API = "getambassador.io/v3alpha1"


@dataclass
class AmbassadorArgs:
    chart: ChartSource
    host: str = ""  # DNS name for the ingress; empty: use the load balancer's address
    values: dict[str, Any] = field(default_factory=dict)


class Ambassador(pulumi.ComponentResource):
    """Emissary-ingress behind a LoadBalancer Service, with listeners on 8080/8443."""

    def __init__(self, name: str, args: AmbassadorArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Ambassador", name, None, opts)
        # The CRDs (and their conversion webhook) must exist before the chart or any Mapping.
        self.crds = ConfigFile(
            f"{name}-crds", file=EMISSARY_CRDS_URL, opts=pulumi.ResourceOptions(parent=self)
        )
        self.release = upstream_release(
            RELEASE, args.chart, NAMESPACE,
            {
                "createDefaultListeners": True,
                "replicaCount": 2,
                "service": {"type": "LoadBalancer"},
            },
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.crds]),
            create_namespace=True,
        )
        self.address: pulumi.Output[str] = (
            pulumi.Output.from_input(args.host) if args.host else self._load_balancer_address()
        )
        self.register_outputs({"address": self.address})

    def _load_balancer_address(self) -> pulumi.Output[str]:
        """The address a cloud gave Emissary's Service (hostname on AWS, IP elsewhere)."""
        status = self.release.status
        service = Service.get(
            f"{RELEASE}-service",
            pulumi.Output.concat(status.namespace, "/", status.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        return service.status.apply(_ingress_address)

    def route(self, name: str, namespace: pulumi.Input[str], prefix: str, service: str,
              depends_on: list[pulumi.Resource]) -> CustomResource:
        """A Mapping from URL `prefix` to `service` (host:port), created after the CRDs."""
        return CustomResource(
            f"{name}-mapping",
            api_version=MAPPING_API,
            kind="Mapping",
            metadata={"name": name, "namespace": namespace},
            spec={"hostname": "*", "prefix": prefix, "rewrite": "", "service": service},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crds, *depends_on]),
        )


def _ingress_address(status: Any) -> str:
    balancer = getattr(status, "load_balancer", None)
    ingress = getattr(balancer, "ingress", None) or []
    if not ingress:
        return f"<pending: kubectl -n {NAMESPACE} get service {RELEASE}>"
    return ingress[0].hostname or ingress[0].ip or ""
