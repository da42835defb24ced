"""Each configured pipeline as a `Pipeline` resource (algorail.io/v1) the operator reconciles.

The plan is compiled here, at `pulumi up` time, by the same code `algorail plan` runs, so a
pipeline that breaks a rule stops the program before anything changes; the resource is
`operator.resource.deployment_resource` of it, the object `algorail render --resource`
writes, with the modules of python algos without an image packed from the pipeline's
folder. Where the stack's services are is the operator's business (its `pipelineValues`,
services.py); a pipeline's own `settings` go in the resource's `spec.deployment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from algorail.connectors.secrets import require_secret_references
from pulumi_kubernetes.apiextensions import CustomResource
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from algorail.compiler import compile_plan
from algorail.loader import load_pipeline
from algorail.operator.resource import GROUP, KIND, VERSION, deployment_resource
from algorail.plan import Plan
from algorail.render import deep_merge
from algorail.spec import load_bindings, read_document
from algorail_infra.config import PipelineEntry


def compile_entry(entry: PipelineEntry) -> Plan:
    """The plan of one configured pipeline (PipelineError names file, component, rule)."""
    pipeline = load_pipeline(entry.file, bindings=load_bindings(entry.bindings))
    plan = compile_plan(pipeline, deployment=entry.deployment)
    require_secret_references(plan)  # before any resource: the plan goes into a ConfigMap
    return plan


def entry_resource(entry: PipelineEntry, plan: Plan) -> dict[str, Any]:
    """The Pipeline resource of `entry` (no namespace: the stack's is set on it), with
    the entry's `settings` in its `spec.deployment`."""
    resource = deployment_resource(read_document(entry.file), plan,
                                   bindings=load_bindings(entry.bindings))
    if entry.settings:
        spec = resource["spec"]
        spec["deployment"] = deep_merge(spec.get("deployment", {}), entry.settings)
    return resource


@dataclass
class PipelineArgs:
    namespace: pulumi.Input[str]
    plan: Plan
    resource: dict[str, Any]  # `entry_resource`
    gateway_service: pulumi.Input[str]  # the namespace's gateway, serving every pipeline
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PipelineDeployment(pulumi.ComponentResource):
    """A deployed pipeline; `routes` are its endpoint paths on the namespace's gateway."""

    def __init__(self, name: str, args: PipelineArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Pipeline", name, None, opts)
        meta = args.resource["metadata"]
        self.pipeline = CustomResource(
            name,
            api_version=f"{GROUP}/{VERSION}",
            kind=KIND,
            metadata=ObjectMetaArgs(name=meta["name"], namespace=args.namespace,
                                    labels=meta.get("labels"),
                                    annotations=meta.get("annotations")),
            spec=args.resource["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.routes = [route.url for route in args.plan.routes]
        self.gateway_service = args.gateway_service
        self.register_outputs({"routes": self.routes})
