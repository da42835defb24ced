"""Each configured pipeline as two Helm releases from this checkout's charts:
`algorail-pipeline` (topics, runners, routes, connectors; `values.plan` is exactly the
compiled plan) and `algorail` (the gateway and hook dispatcher serving that plan).

The plan is compiled here, at `pulumi up` time, by the same code `algorail plan` runs,
and turned into chart values by the same code `algorail render` runs; this module only
adds where the stack's services are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from algorail.connectors.secrets import require_secret_references

from algorail import render
from algorail.plan import Plan, compile_plan
from algorail.spec import load_bindings, load_pipeline
from algorail_infra.config import InfraConfigError, PipelineEntry
from algorail_infra.helm import deep_merge, local_release
from algorail_infra.platform import Platform

# The `algorail` chart cuts object names at 50 characters: "{release}-algorail" must fit.
MAX_RELEASE_NAME = 50 - len("-algorail")


def compile_entry(entry: PipelineEntry) -> Plan:
    """The plan of one configured pipeline (PipelineError names file, component, rule)."""
    pipeline = load_pipeline(entry.file, bindings=load_bindings(entry.bindings))
    plan = compile_plan(pipeline, deployment=entry.deployment)
    require_secret_references(plan)  # before any resource: the plan goes into a ConfigMap
    name = render.release_name(plan)
    if len(name) > MAX_RELEASE_NAME:
        raise InfraConfigError(
            f"{entry.file}: release name {name!r} is longer than {MAX_RELEASE_NAME} "
            "characters; give it a shorter deployment name: "
            "pulumi config set --path 'pipelines[N].deployment' SHORT-NAME"
        )
    return plan


@dataclass
class PipelineArgs:
    namespace: pulumi.Input[str]
    pipeline_chart: Path
    services_chart: Path
    plan: Plan
    platform: Platform
    wiring: dict[str, Any]  # where Kafka and Connect are, which CRs to create
    ingress: bool
    monitoring: bool
    values: dict[str, Any] = field(default_factory=dict)  # this pipeline's own overrides
    services_values: dict[str, Any] = field(default_factory=dict)  # every `algorail` release
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PipelineDeployment(pulumi.ComponentResource):
    """A deployed pipeline; `routes` are its endpoint paths on the gateway."""

    def __init__(self, name: str, args: PipelineArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Pipeline", name, None, opts)
        services_name = f"{name}-algorail"
        wiring = deep_merge(args.wiring, {
            "mappings": {"gatewayService": f"{services_name}-gateway"},
            "runner": {"extraEnv": args.platform.runner_env()},
        })
        after = pulumi.ResourceOptions(
            parent=self, depends_on=[args.platform.secret, *args.depends_on]
        )
        self.release = local_release(
            name, args.pipeline_chart, args.namespace,
            deep_merge(deep_merge(wiring, args.values), render.pipeline_values(args.plan)),
            after,
        )
        services = deep_merge(
            args.platform.services_values(services_name, args.ingress, args.monitoring),
            render.services_values(f"{name}-plan", plan=args.plan),  # the plan's ConfigMap
        )
        self.services = local_release(
            services_name, args.services_chart, args.namespace,
            deep_merge(services, args.services_values),
            pulumi.ResourceOptions(parent=self, depends_on=[
                self.release, args.platform.secret, args.platform.api_keys, *args.depends_on,
            ]),
        )
        self.routes = [route.url for route in args.plan.routes]
        self.register_outputs({"routes": self.routes})

