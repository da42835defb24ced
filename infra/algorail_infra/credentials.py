"""Generated passwords and the Kubernetes Secrets that carry them.

A password exists only as a pulumi_random secret Output and inside a Kubernetes Secret;
charts are given the Secret's name (`existingSecret`), never the value.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random
from pulumi_kubernetes.core.v1 import Secret
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs


def password(name: str, parent: pulumi.Resource, length: int = 32) -> pulumi.Output[str]:
    """A new random password (letters and digits, safe inside URLs), as a secret."""
    generated = random.RandomPassword(
        name, length=length, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(generated.result)


def kubernetes_secret(name: str, namespace: pulumi.Input[str],
                      data: dict[str, pulumi.Input[str]], parent: pulumi.Resource,
                      secret_type: str = "Opaque") -> Secret:
    """A Secret named `name` whose every value is kept secret in Pulumi's state."""
    return Secret(
        name,
        metadata=ObjectMetaArgs(name=name, namespace=namespace),
        type=secret_type,
        string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
        opts=pulumi.ResourceOptions(parent=parent),
    )
