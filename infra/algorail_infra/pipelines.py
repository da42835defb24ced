"""Each configured pipeline as two Helm releases from this checkout's charts:
`algorail-pipeline` (topics, runners, routes, connectors; `values.plan` is exactly the
compiled plan) and `algorail` (the gateway and hook dispatcher serving that plan).

The plan is compiled here, at `pulumi up` time, by the same code `algorail plan` runs,
and turned into chart values by `algorail.render.helm_values`, as `algorail render` does;
this module only adds where the stack's services are. Release and object names come
from the plan (`Plan.helm`).
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
from algorail_infra.config import PipelineEntry
from algorail_infra.helm import local_release
from algorail_infra.platform import Platform


def compile_entry(entry: PipelineEntry) -> Plan:
    """The plan of one configured pipeline (PipelineError names file, component, rule)."""
    pipeline = load_pipeline(entry.file, bindings=load_bindings(entry.bindings))
    plan = compile_plan(pipeline, deployment=entry.deployment)
    require_secret_references(plan)  # before any resource: the plan goes into a ConfigMap
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
        names = args.plan.helm
        values = render.helm_values(
            args.plan,
            render.deep_merge(render.deep_merge(args.wiring, {
                "runner": {"extraEnv": args.platform.runner_env()},
            }), args.values),
            render.deep_merge(
                args.platform.services_values(names.services_release, args.ingress,
                                              args.monitoring),
                args.services_values,
            ),
        )
        after = [args.platform.secret, *args.depends_on]
        self.release = local_release(
            values.release, args.pipeline_chart, args.namespace, values.pipeline,
            pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.services = local_release(
            values.services_release, args.services_chart, args.namespace, values.services,
            pulumi.ResourceOptions(parent=self, depends_on=[
                self.release, args.platform.api_keys, *after,
            ]),
        )
        self.routes = [route.url for route in args.plan.routes]
        self.gateway_service = pulumi.Output.concat(
            names.gateway_service, ".", args.namespace, ".svc")
        self.register_outputs({"routes": self.routes})
