"""One single-replica StatefulSet with its data volume and a Service: how the program runs
a backing service from its project's official image, with no third-party chart between."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.apps.v1 import StatefulSet
from pulumi_kubernetes.core.v1 import Service

DATA_VOLUME = "data"


@dataclass
class Workload:
    """What differs between the services: image, port, command and where data lives."""

    name: str
    namespace: pulumi.Input[str]
    image: str
    port: int
    storage_size: str
    data_path: str
    args: list[str] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    secret_files: dict[str, Any] = field(default_factory=dict)  # mount path -> Secret name
    fs_group: int | None = None  # the image's own non-root group, owner of the data volume


def stateful_service(spec: Workload, parent: pulumi.Resource,
                     depends_on: list[pulumi.Resource]) -> tuple[StatefulSet, Service]:
    """The StatefulSet (data on a PersistentVolumeClaim kept across restarts) and a
    ClusterIP Service named `spec.name` on `spec.port`."""
    labels = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": "algorail"}
    mounts = [{"name": DATA_VOLUME, "mountPath": spec.data_path}]
    volumes = []
    for index, (path, secret) in enumerate(spec.secret_files.items()):
        mounts.append({"name": f"secret-{index}", "mountPath": path, "readOnly": True})
        volumes.append({"name": f"secret-{index}", "secret": {"secretName": secret}})
    container: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "args": spec.args,
        "env": spec.env,
        "ports": [{"name": "main", "containerPort": spec.port}],
        "volumeMounts": mounts,
        "readinessProbe": {"tcpSocket": {"port": spec.port}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": spec.port}, "initialDelaySeconds": 30,
                          "periodSeconds": 10},
    }
    pod_spec: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if spec.fs_group is not None:
        pod_spec["securityContext"] = {"fsGroup": spec.fs_group}
    opts = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    statefulset = StatefulSet(
        spec.name,
        metadata={"name": spec.name, "namespace": spec.namespace, "labels": labels},
        spec={
            "serviceName": spec.name,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            "volumeClaimTemplates": [{
                "metadata": {"name": DATA_VOLUME},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": spec.storage_size}}},
            }],
        },
        opts=opts,
    )
    service = Service(
        spec.name,
        metadata={"name": spec.name, "namespace": spec.namespace, "labels": labels},
        spec={"selector": labels, "ports": [{"name": "main", "port": spec.port,
                                             "targetPort": spec.port}]},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return statefulset, service
