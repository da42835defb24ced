"""algorail's own services, once for the namespace: the `Pipeline` CRD, the operator that
reconciles Pipelines into their objects, and one gateway and hook dispatcher serving every
pipeline of the namespace (following the plan ConfigMaps the operator writes).

All but the CRD are one release of charts/algorail, named `algorail`: its gateway Service is
`algorail-gateway`, where the operator's Mappings point by default. The CRD is applied by
the program and the chart installed with `skipCrds`, because Helm never upgrades a chart's
`crds/` folder: a changed CRD then reaches the cluster on the next `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_kubernetes.yaml.v2 import ConfigFile

from algorail import naming
from algorail.render import deep_merge
from algorail_infra.helm import local_release
from algorail_infra.platform import Platform

RELEASE = "algorail"
GATEWAY_SERVICE = naming.gateway_service(RELEASE)
CRD_FILE = Path("crds") / "pipelines.algorail.io.yaml"  # inside charts/algorail


@dataclass
class AlgorailServicesArgs:
    namespace: pulumi.Input[str]
    chart: Path  # charts/algorail
    platform: Platform
    pipeline_values: dict[str, Any]  # algorail-pipeline chart values for every Pipeline
    ingress: bool
    monitoring: bool
    values: dict[str, Any] = field(default_factory=dict)  # the stack's `values.algorail`
    # Secrets the pipelines' hooks reference ({namespace, name}): the one hook dispatcher
    # mounts them all
    hook_secrets: list[dict[str, str]] = field(default_factory=list)
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class AlgorailServices(pulumi.ComponentResource):
    """`crd` and `release` (the operator, the gateway, the hook dispatcher): what a
    `Pipeline` resource needs to exist before it is created."""

    def __init__(self, name: str, args: AlgorailServicesArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:AlgorailServices", name, None, opts)
        self.crd = ConfigFile(f"{name}-crds", file=str(args.chart / CRD_FILE),
                              opts=pulumi.ResourceOptions(parent=self))
        values = deep_merge(self.values(args), args.values)
        self.release = local_release(
            RELEASE, args.chart, args.namespace, values,
            pulumi.ResourceOptions(parent=self, depends_on=[
                self.crd, args.platform.secret, args.platform.api_keys, *args.depends_on]),
            skip_crds=True,
        )
        self.gateway_service = pulumi.Output.concat(GATEWAY_SERVICE, ".", args.namespace,
                                                    ".svc")
        self.register_outputs({"gatewayService": self.gateway_service})

    @staticmethod
    def values(args: AlgorailServicesArgs) -> dict[str, Any]:
        """The operator watching this namespace with the stack's wiring for every pipeline,
        and the services following every plan of the namespace."""
        services = args.platform.services_values(RELEASE, args.ingress, args.monitoring)
        return deep_merge(services, {
            **({"hooks": {"secrets": args.hook_secrets}} if args.hook_secrets else {}),
            "plan": {"fromCluster": True},
            "operator": {"enabled": True, "watchNamespaces": [args.namespace],
                         "pipelineValues": args.pipeline_values},
        })
