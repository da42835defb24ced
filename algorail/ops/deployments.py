"""A deployment's pipeline, Kafka and gateway, as the registry knows them (what
`--deployment NAME` means to the ops commands when no pipeline file is given) or as a
running `algorail dev` serves them (`--dev URL`)."""

from __future__ import annotations

from dataclasses import dataclass

from algorail import naming
from algorail.compiler import compile_plan
from algorail.ops.records import OpsError
from algorail.plan import Plan


@dataclass
class Deployment:
    plan: Plan
    bootstrap_servers: str | None  # None: dev mode's embedded broker, not recorded
    gateway_url: str | None
    log: str | None = None


def registry_deployment(name: str, registry_url: str, api_key: str | None) -> Deployment:
    """Look deployment `name` (or `owner/name`) up and compile its pipeline version."""
    from algorail.loader import validate_document
    from algorail.registry.client import RegistryClient

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
    return Deployment(
        plan=compile_plan(pipeline, deployment=deployment["name"]),
        bootstrap_servers=settings.get("bootstrapServers"),
        gateway_url=runtime.get("url"), log=runtime.get("log"))


def dev_deployment(url: str) -> Deployment:
    """The plan and broker of the `algorail dev` whose gateway is at `url`, from its
    ``GET /v1/dev``."""
    import httpx
    from pydantic import ValidationError

    from algorail.ops.devview import DEV_INFO_PATH

    base = url.rstrip("/")
    try:
        response = httpx.get(base + DEV_INFO_PATH, timeout=10)
    except httpx.HTTPError as exc:
        raise OpsError(f"cannot reach algorail dev at {url}: {exc}") from None
    try:
        info = response.json() if response.status_code == 200 else None
        plan = Plan.model_validate(info["plan"])
        servers = info["bootstrapServers"]
    except (ValueError, TypeError, KeyError, ValidationError):
        raise OpsError(f"{url} is not an `algorail dev` gateway this algorail can read "
                       f"(GET {DEV_INFO_PATH} answered {response.status_code}); give the URL "
                       "`algorail dev` printed") from None
    return Deployment(plan=plan, bootstrap_servers=servers, gateway_url=base)
