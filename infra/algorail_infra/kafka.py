"""Kafka in KRaft mode: a Strimzi `KafkaNodePool` of dual-role nodes and the `Kafka` CR."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from algorail_infra.config import KafkaSettings
from algorail_infra.strimzi import StrimziOperator

PLAIN_PORT = 9092


@dataclass
class KafkaArgs:
    namespace: pulumi.Input[str]
    operator: StrimziOperator
    settings: KafkaSettings


class Kafka(pulumi.ComponentResource):
    """A Kafka cluster; `bootstrap_servers` is its in-cluster plain listener."""

    def __init__(self, name: str, args: KafkaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Kafka", name, None, opts)
        cfg = args.settings
        cluster = cfg.cluster_name
        replication = min(3, cfg.replicas)
        operator = args.operator
        after_operator = pulumi.ResourceOptions(parent=self, depends_on=operator.ready)
        self.node_pool = CustomResource(
            f"{name}-node-pool",
            api_version=operator.api_version,
            kind="KafkaNodePool",
            metadata={"name": "dual-role", "namespace": args.namespace,
                      "labels": {"strimzi.io/cluster": cluster}},
            spec={
                "replicas": cfg.replicas,
                "roles": ["controller", "broker"],
                "storage": {"type": "jbod", "volumes": [{
                    "id": 0, "type": "persistent-claim", "size": cfg.storage_size,
                    "deleteClaim": False, "kraftMetadata": "shared",
                }]},
            },
            opts=after_operator,
        )
        self.cluster = CustomResource(
            f"{name}-cluster",
            api_version=operator.api_version,
            kind="Kafka",
            metadata={"name": cluster, "namespace": args.namespace,
                      "annotations": {"strimzi.io/node-pools": "enabled",
                                      "strimzi.io/kraft": "enabled"}},
            spec={
                "kafka": {
                    # The metadata version follows: Strimzi sets this version's default.
                    "version": operator.kafka_version,
                    "listeners": [
                        {"name": "plain", "port": PLAIN_PORT, "type": "internal", "tls": False},
                        {"name": "tls", "port": 9093, "type": "internal", "tls": True},
                    ],
                    "config": {
                        "offsets.topic.replication.factor": replication,
                        "transaction.state.log.replication.factor": replication,
                        "transaction.state.log.min.isr": max(1, replication - 1),
                        "default.replication.factor": replication,
                        "min.insync.replicas": max(1, replication - 1),
                    },
                },
                "entityOperator": {"topicOperator": {}, "userOperator": {}},
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[*operator.ready, self.node_pool]
            ),
        )
        self.cluster_name = cluster
        self.bootstrap_servers = pulumi.Output.concat(
            cluster, "-kafka-bootstrap.", args.namespace, f".svc:{PLAIN_PORT}"
        )
        self.register_outputs({"bootstrap_servers": self.bootstrap_servers})
