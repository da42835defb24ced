"""MinIO: an S3-compatible store in the cluster, with algorail's bucket and its own user."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from algorail_infra.config import ObjectStoreSettings
from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.helm import ChartArgs, upstream_release

RELEASE = "minio"
APP_USER = "algorail"  # MinIO user (access key) the platform uses; not the root user


@dataclass(kw_only=True)
class MinioArgs(ChartArgs):
    settings: ObjectStoreSettings


class Minio(pulumi.ComponentResource):
    """`endpoint`, `bucket`, and the app user's keys as secret Outputs."""

    def __init__(self, name: str, args: MinioArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Minio", name, None, opts)
        self.access_key_id = pulumi.Output.secret(APP_USER)
        self.secret_access_key = password(f"{name}-app-key", self)
        self.secret = kubernetes_secret(
            f"{name}-credentials", args.namespace,
            {
                "rootUser": password(f"{name}-root-user", self, 16),
                "rootPassword": password(f"{name}-root-password", self),
                "secretKey": self.secret_access_key,
            },
            self,
        )
        self.bucket = args.settings.bucket
        self.release = upstream_release(
            RELEASE, args.chart, args.namespace,
            {
                "mode": "standalone",
                "existingSecret": self.secret.metadata.name,
                "persistence": {"size": args.settings.storage_size},
                "resources": {"requests": {"memory": "1Gi"}},
                "buckets": [{"name": self.bucket, "policy": "none", "purge": False}],
                "users": [{"accessKey": APP_USER, "existingSecret": self.secret.metadata.name,
                           "existingSecretKey": "secretKey", "policy": "readwrite"}],
            },
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.secret]),
        )
        self.endpoint = pulumi.Output.concat("http://", RELEASE, ".", args.namespace, ".svc:9000")
        self.register_outputs({"endpoint": self.endpoint, "bucket": self.bucket})
