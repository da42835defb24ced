"""The results store of the gateway and hook dispatcher: Valkey (Redis protocol) from the
Valkey project's official image, with a generated password."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from algorail_infra.config import RedisSettings
from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.workload import Workload, stateful_service

NAME = "valkey"
PORT = 6379
PASSWORD_KEY = "redis-password"


@dataclass
class RedisArgs:
    namespace: pulumi.Input[str]
    image: str
    settings: RedisSettings


class Redis(pulumi.ComponentResource):
    """`url` is a secret `redis://` URL with the generated password; pipelines wait for
    `ready` (the StatefulSet)."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Redis", name, None, opts)
        secret_value = password(f"{name}-password", self)
        self.secret = kubernetes_secret(
            f"{name}-auth", args.namespace, {PASSWORD_KEY: secret_value}, self
        )
        self.ready, self.service = stateful_service(Workload(
            name=NAME, namespace=args.namespace, image=args.image, port=PORT,
            storage_size=args.settings.storage_size, data_path="/data",
            # Kubernetes expands $(PASSWORD) from the Secret; the Pod spec holds no password.
            args=["valkey-server", "--appendonly", "yes", "--requirepass", "$(PASSWORD)"],
            env=[{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": self.secret.metadata.name, "key": PASSWORD_KEY}}}],
        ), self, [self.secret])
        self.url = pulumi.Output.secret(pulumi.Output.concat(
            "redis://:", secret_value, "@", NAME, ".", args.namespace, f".svc:{PORT}/0"
        ))
        self.register_outputs({"url": self.url})
