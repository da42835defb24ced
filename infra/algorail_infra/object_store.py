"""An S3-compatible store in the cluster: SeaweedFS (master, volume server, filer and S3
gateway in one process) from the project's official image, with one S3 identity for
algorail. The gateway and runners create the bucket on first use."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from algorail_infra.config import ObjectStoreSettings
from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.workload import Workload, stateful_service

NAME = "seaweedfs"
S3_PORT = 8333
APP_USER = "algorail"  # the S3 access key the platform uses
CONFIG_PATH = "/etc/algorail-s3"  # not /etc/seaweedfs: the image keeps its filer.toml there
CONFIG_KEY = "s3.json"


@dataclass
class ObjectStoreArgs:
    namespace: pulumi.Input[str]
    image: str
    settings: ObjectStoreSettings


class ObjectStore(pulumi.ComponentResource):
    """`endpoint`, `bucket`, and the app user's keys as secret Outputs; pipelines wait for
    `ready` (the StatefulSet)."""

    def __init__(self, name: str, args: ObjectStoreArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:ObjectStore", name, None, opts)
        self.access_key_id = pulumi.Output.secret(APP_USER)
        self.secret_access_key = password(f"{name}-app-key", self)
        self.secret = kubernetes_secret(f"{name}-credentials", args.namespace, {
            CONFIG_KEY: self.secret_access_key.apply(_s3_config),
            "secretKey": self.secret_access_key,
        }, self)
        self.bucket = args.settings.bucket
        self.ready, self.service = stateful_service(Workload(
            name=NAME, namespace=args.namespace, image=args.image, port=S3_PORT,
            storage_size=args.settings.storage_size, data_path="/data",
            # 1 GB volumes, as many as the disk holds (weed's own defaults, 8 of 30 GB, would
            # outgrow the claim); set here, not left to the image's entrypoint.
            args=["server", "-dir=/data", "-master.volumeSizeLimitMB=1024", "-volume.max=0",
                  "-s3", f"-s3.port={S3_PORT}", f"-s3.config={CONFIG_PATH}/{CONFIG_KEY}"],
            secret_files={CONFIG_PATH: self.secret.metadata.name},
        ), self, [self.secret])
        self.endpoint = pulumi.Output.concat(
            "http://", NAME, ".", args.namespace, f".svc:{S3_PORT}"
        )
        self.register_outputs({"endpoint": self.endpoint, "bucket": self.bucket})


def _s3_config(secret_key: str) -> str:
    """SeaweedFS's S3 identities: only algorail's key, allowed to create its bucket."""
    return json.dumps({"identities": [{
        "name": APP_USER,
        "credentials": [{"accessKey": APP_USER, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]})
