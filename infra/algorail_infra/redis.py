"""Redis (Bitnami chart, standalone): the results store of the gateway and hook dispatcher."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.helm import ChartArgs, upstream_release

RELEASE = "redis"
PASSWORD_KEY = "redis-password"


@dataclass(kw_only=True)
class RedisArgs(ChartArgs):
    """Redis needs nothing beyond its chart; a password is generated."""


class Redis(pulumi.ComponentResource):
    """`url` is a secret `redis://` URL with the generated password."""

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Redis", name, None, opts)
        secret_value = password(f"{name}-password", self)
        self.secret = kubernetes_secret(
            f"{name}-auth", args.namespace, {PASSWORD_KEY: secret_value}, self
        )
        self.release = upstream_release(
            RELEASE, args.chart, args.namespace,
            {
                "architecture": "standalone",
                "auth": {"enabled": True, "existingSecret": self.secret.metadata.name,
                         "existingSecretPasswordKey": PASSWORD_KEY},
                "master": {"persistence": {"size": "8Gi"}},
            },
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.secret]),
        )
        self.url = pulumi.Output.secret(pulumi.Output.concat(
            "redis://:", secret_value, "@", RELEASE, "-master.", args.namespace, ".svc:6379/0"
        ))
        self.register_outputs({"url": self.url})
