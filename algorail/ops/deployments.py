"""A deployment's pipeline, Kafka and gateway, as the registry knows them: what
`--deployment NAME` means to the ops commands when no pipeline file is given."""

from __future__ import annotations

from dataclasses import dataclass

from algorail import naming
from algorail.ops.records import OpsError
from algorail.plan import Plan, compile_plan


@dataclass
class RegistryDeployment:
    plan: Plan
    bootstrap_servers: str | None  # None: dev mode's embedded broker, not recorded
    gateway_url: str | None
    log: str | None = None


def registry_deployment(name: str, registry_url: str, api_key: str | None
                        ) -> RegistryDeployment:
    """Look deployment `name` (or `owner/name`) up and compile its pipeline version."""
    from algorail.registry.client import RegistryClient
    from algorail.spec import validate_document

    if not api_key:
        raise OpsError("--deployment NAME without a pipeline file asks the registry: pass "
                       "--api-key or set ALGORAIL_API_KEY (or give --pipeline/--plan)")
    owner, _, short = name.rpartition("/")
    with RegistryClient(registry_url, api_key) as client:
        found = [d for d in client.deployments()
                 if d["name"] == short and (not owner or d["owner"] == owner)]
        if not found:
            raise OpsError(f"the registry at {registry_url} has no deployment {name!r} you can "
                           "see; list them with `algorail deployments list`")
        if len(found) > 1:
            raise OpsError(f"several owners have a deployment {short!r}: say OWNER/{short}")
        deployment = found[0]
        ref = naming.REF_RE.match(deployment["pipeline"])
        version = client.pipeline_version(ref["owner"], ref["name"], ref["version"])
    pipeline = validate_document(version["document"], file=f"registry:{deployment['pipeline']}")
    runtime, settings = deployment.get("runtime") or {}, deployment.get("settings") or {}
    return RegistryDeployment(
        plan=compile_plan(pipeline, deployment=deployment["name"]),
        bootstrap_servers=settings.get("bootstrapServers"),
        gateway_url=runtime.get("url"), log=runtime.get("log"))
