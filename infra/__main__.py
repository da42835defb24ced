"""algorail on Kubernetes: `pulumi up` installs the stack and deploys the configured pipelines.

Every config key, its default and what it does: docs/deploy.md (and algorail_infra/config.py).
"""

import pulumi
from algorail_infra.config import load_settings
from algorail_infra.stack import build

stack = build(load_settings(pulumi.Config("algorail")))
for key, value in stack.outputs.items():
    pulumi.export(key, value)
