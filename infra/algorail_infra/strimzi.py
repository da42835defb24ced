"""The Strimzi cluster operator: its CRDs (applied by this program, so a Strimzi upgrade
upgrades them: Helm never upgrades a chart's crds/), then the operator from its chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.yaml.v2 import ConfigFile

from algorail_infra.helm import upstream_release
from algorail_infra.versions import StrimziRelease


@dataclass
class StrimziOperatorArgs:
    namespace: pulumi.Input[str]
    release: StrimziRelease  # which Strimzi line, hence which CR API, chart and CRDs
    values: dict[str, Any] = field(default_factory=dict)


class StrimziOperator(pulumi.ComponentResource):
    """One operator watching the stack's namespace; Kafka and Kafka Connect depend on it.
    `api_version` is the CR API its CRDs serve; `ready` is what CRs must wait for."""

    def __init__(self, name: str, args: StrimziOperatorArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:StrimziOperator", name, None, opts)
        self.api_version = args.release.api_version
        self.kafka_version = args.release.kafka_version
        self.crds = ConfigFile(
            f"{name}-crds", file=args.release.crds_url, opts=pulumi.ResourceOptions(parent=self)
        )
        self.release = upstream_release(
            "strimzi", args.release.chart, args.namespace,
            {"replicas": 1, "resources": {"requests": {"cpu": "200m", "memory": "384Mi"},
                                          "limits": {"memory": "384Mi"}}},
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.crds]),
            skip_crds=True,
        )
        self.ready: list[pulumi.Resource] = [self.crds, self.release]
        self.register_outputs({"release": self.release.name})
