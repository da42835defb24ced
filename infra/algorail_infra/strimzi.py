"""The Strimzi cluster operator: installs the Kafka CRDs and reconciles the Kafka CRs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from algorail_infra.helm import ChartArgs, upstream_release

STRIMZI_API = "kafka.strimzi.io/v1beta2"


@dataclass(kw_only=True)
class StrimziOperatorArgs(ChartArgs):
    """The operator needs nothing beyond its chart."""


class StrimziOperator(pulumi.ComponentResource):
    """One operator watching the stack's namespace; Kafka and Kafka Connect depend on it."""

    def __init__(self, name: str, args: StrimziOperatorArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:StrimziOperator", name, None, opts)
        self.release = upstream_release(
            "strimzi", args.chart, args.namespace,
            {"replicas": 1, "resources": {"requests": {"cpu": "200m", "memory": "384Mi"},
                                          "limits": {"memory": "384Mi"}}},
            args.values,
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release": self.release.name})
