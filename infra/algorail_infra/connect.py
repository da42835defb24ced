"""Kafka Connect: a Strimzi `KafkaConnect` that builds its image with the connector plugins.

The build section (plugin artifacts) and the worker's config providers come from
`algorail.kafka_connect`, next to the connectors that need them. Connectors reference
credentials as `${secrets:NAMESPACE/SECRET:KEY}`; the Strimzi Kubernetes secret config
provider resolves them, and a Role lets Connect read exactly the Secrets listed in
`readable_secrets`, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.rbac.v1 import PolicyRuleArgs, Role, RoleBinding, RoleRefArgs, SubjectArgs

from algorail.kafka_connect import kafka_connect_build, worker_group
from algorail_infra.config import KafkaConnectSettings
from algorail_infra.strimzi import StrimziOperator


@dataclass
class KafkaConnectArgs:
    namespace: pulumi.Input[str]
    operator: StrimziOperator
    bootstrap_servers: pulumi.Input[str]
    settings: KafkaConnectSettings
    image: str  # registry image Strimzi pushes the built Connect image to
    readable_secrets: list[str] = field(default_factory=list)
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # the Kafka cluster


class KafkaConnect(pulumi.ComponentResource):
    """A Connect cluster running the `KafkaConnector` CRs labelled with `cluster_name`."""

    def __init__(self, name: str, args: KafkaConnectArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:KafkaConnect", name, None, opts)
        self.cluster_name = name
        operator = args.operator
        self.cluster = CustomResource(
            f"{name}-cluster",
            api_version=operator.api_version,
            kind="KafkaConnect",
            metadata={"name": name, "namespace": args.namespace,
                      "annotations": {"strimzi.io/use-connector-resources": "true"}},
            spec={
                "version": operator.kafka_version,
                "replicas": args.settings.replicas,
                "bootstrapServers": args.bootstrap_servers,
                **worker_group(name, operator.api_version),
                "build": kafka_connect_build(args.image, args.settings.push_secret or None),
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*operator.ready, *args.depends_on]
            ),
        )
        self._grant_secrets(name, args)
        self.rest_url = pulumi.Output.concat(
            "http://", name, "-connect-api.", args.namespace, ".svc:8083"
        )
        self.register_outputs({"rest_url": self.rest_url})

    def _grant_secrets(self, name: str, args: KafkaConnectArgs) -> None:
        if not args.readable_secrets:
            return
        metadata = ObjectMetaArgs(name=f"{name}-secrets", namespace=args.namespace)
        role = Role(
            f"{name}-secrets",
            metadata=metadata,
            rules=[PolicyRuleArgs(api_groups=[""], resources=["secrets"], verbs=["get"],
                                  resource_names=args.readable_secrets)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        RoleBinding(
            f"{name}-secrets",
            metadata=metadata,
            role_ref=RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role",
                                 name=role.metadata.name),
            subjects=[SubjectArgs(kind="ServiceAccount", name=f"{name}-connect",
                                  namespace=args.namespace)],
            opts=pulumi.ResourceOptions(parent=self),
        )
