"""Ambassador (Emissary-ingress 4, CNCF): its CRD chart, then the ingress itself, then
routes to services. Emissary 4 ships no Ambassador Cloud agent (chart 8.x, Emissary 3,
installed one by default and reported the cluster to a SaaS).

Nothing here narrows which Mappings Emissary serves: no `ambassador_id`, every namespace
watched, the default Listeners take Hosts from every namespace, and one Host routes
cleartext (without any Host, Emissary redirects all HTTP to HTTPS). So the Mappings the
charts create for every path the gateway serves (`/{owner}/{deployment}/...`, the
Seldon-compatible `/v2/...`, `/algorail/...`) are all reachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.core.v1 import Service

from algorail_infra.helm import upstream_release
from algorail_infra.versions import ChartSource

NAMESPACE = "emissary"
RELEASE = "emissary-ingress"
EMISSARY_API = "getambassador.io/v3alpha1"


@dataclass
class AmbassadorArgs:
    chart: ChartSource
    crds_chart: ChartSource  # at the same version as `chart`
    image: str  # repository:tag of Emissary itself
    host: str = ""  # DNS name for the ingress; empty: use the load balancer's address
    values: dict[str, Any] = field(default_factory=dict)


class Ambassador(pulumi.ComponentResource):
    """Emissary-ingress behind a LoadBalancer Service, with listeners on 8080/8443."""

    def __init__(self, name: str, args: AmbassadorArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Ambassador", name, None, opts)
        # The CRDs must exist before the chart or any Mapping. They are templates of their
        # own chart (not a crds/ folder), so Helm upgrades them with it. Only the current
        # v3alpha1 API is served: no conversion webhook for the legacy v1/v2 APIs.
        self.crds = upstream_release(
            "emissary-crds", args.crds_chart, NAMESPACE, {"enableLegacyVersions": False}, {},
            pulumi.ResourceOptions(parent=self), create_namespace=True,
        )
        repository, _, tag = args.image.rpartition(":")
        self.release = upstream_release(
            RELEASE, args.chart, NAMESPACE,
            {
                "createDefaultListeners": True,
                "replicaCount": 2,
                "service": {"type": "LoadBalancer"},
                "image": {"repository": repository, "tag": tag},
            },
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.crds]),
            create_namespace=True,
        )
        self.host = CustomResource(
            f"{name}-host",
            api_version=EMISSARY_API,
            kind="Host",
            metadata={"name": "algorail", "namespace": NAMESPACE},
            spec={"hostname": args.host or "*",
                  "requestPolicy": {"insecure": {"action": "Route"}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crds, self.release]),
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
            api_version=EMISSARY_API,
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
