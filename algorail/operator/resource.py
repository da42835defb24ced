"""The `Pipeline` custom resource: the pipeline file's spec plus how to deploy it.

Its `spec` is `PipelineSpec` (the file format's model) with the file's metadata that is
not Kubernetes metadata (owner, version, description) and the deployment settings; the
resource's own `metadata.name` is the pipeline's name. The CRD is generated from
`PipelineResourceSpec`, so the file format and the resource cannot drift apart.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from algorail.spec import API_VERSION, SELDON_API_VERSION, Metadata, Model, PipelineSpec

if TYPE_CHECKING:
    from algorail.plan import Plan

GROUP = "algorail.io"
VERSION = "v1"
KIND = "Pipeline"
PLURAL = "pipelines"
CRD_NAME = f"{PLURAL}.{GROUP}"
RESOURCE_API_VERSION = API_VERSION  # algorail.io/v1: the file format's apiVersion too

# Label on every object the operator creates for a Pipeline: the resource's uid (a valid
# label value whatever the resource's name), so observed objects are listed by it.
OWNER_LABEL = "algorail.io/pipeline-uid"
# A pipeline file's annotations of this prefix are the pipeline's (algorail.io/name-rules);
# a resource carries them in its metadata.
ANNOTATION_PREFIX = f"{GROUP}/"
CODE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.py")


class RunnerImage(Model):
    """The image runners run (`algorail runner`); the algorail-pipeline chart's `image`."""

    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    pull_policy: str | None = Field(default=None, pattern="^(Always|IfNotPresent|Never)$")


class Kafka(Model):
    """Where the Kafka cluster is; the chart's `kafka` values."""

    bootstrap_servers: str | None = None
    cluster_name: str | None = None


class Autoscaling(Model):
    """Scale each algo's runners on its consumer group's lag (a KEDA ScaledObject)."""

    enabled: bool = False
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    lag_threshold: int = Field(default=100, ge=1)


class DeploymentSettings(Model):
    """How the pipeline runs on the cluster, beyond what the pipeline file says."""

    image: RunnerImage | None = None
    resources: dict[str, dict[str, str]] | None = None  # runner container requests/limits
    kafka: Kafka | None = None
    autoscaling: Autoscaling | None = None
    # Python modules of algos without an image (path -> source), packed where the files
    # are (`algorail render --resource`, algorail.codepack); runners mount them.
    code: dict[str, str] | None = None

    @field_validator("code")
    @classmethod
    def _module_paths(cls, code: dict[str, str] | None) -> dict[str, str] | None:
        for path in code or {}:
            if not CODE_PATH.fullmatch(path):
                raise ValueError(f"{path!r} is not a relative path of a .py file "
                                 "(folders and names of letters, digits, '_', '.' and '-', "
                                 "not starting with '.')")
        return code


class PipelineResourceSpec(PipelineSpec):
    """`spec` of a Pipeline resource."""

    owner: str | None = None  # default: the resource's namespace
    version: str = Metadata.model_fields["version"].default
    description: str | None = None
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)


def pipeline_document(resource: dict[str, Any]) -> dict[str, Any]:
    """The pipeline file a Pipeline resource stands for (what `algorail validate` reads)."""
    meta = resource.get("metadata", {})
    spec = dict(resource.get("spec") or {})
    spec.pop("deployment", None)
    metadata = {
        "owner": spec.pop("owner", None) or meta.get("namespace") or "default",
        "name": meta.get("name"),
        "version": spec.pop("version", Metadata.model_fields["version"].default),
    }
    if description := spec.pop("description", None):
        metadata["description"] = description
    # the pipeline's own (Seldon name rules), not what Kubernetes and kopf add
    if own := {k: v for k, v in (meta.get("annotations") or {}).items()
               if k.startswith(ANNOTATION_PREFIX)}:
        metadata["annotations"] = own
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def deployment_settings(resource: dict[str, Any]) -> DeploymentSettings:
    return DeploymentSettings.model_validate((resource.get("spec") or {}).get("deployment") or {})


def pipeline_resource(document: dict[str, Any], namespace: str | None = None,
                      code: dict[str, str] | None = None) -> dict[str, Any]:
    """The Pipeline resource for a pipeline file (the inverse of `pipeline_document`), with
    the algos' packed modules `code` (`codepack.pack`) in its deployment settings."""
    meta = document.get("metadata", {})
    spec = {"owner": meta.get("owner"), "version": meta.get("version", "1.0.0"),
            **({"description": meta["description"]} if meta.get("description") else {}),
            **document.get("spec", {})}
    if code:
        spec["deployment"] = {**spec.get("deployment", {}), "code": dict(code)}
    metadata = {"name": meta.get("name"), **({"namespace": namespace} if namespace else {})}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    return {"apiVersion": RESOURCE_API_VERSION, "kind": KIND, "metadata": metadata,
            "spec": spec}


def deployment_resource(document: dict[str, Any], plan: Plan, namespace: str | None = None,
                        bindings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Pipeline resource that deploys `plan`, compiled from pipeline file `document`
    (algorail, or Seldon with `bindings`): named after the plan's deployment, with the
    plan's owner and version, its algos' local modules packed from the plan's folder
    (`codepack.pack`). What `algorail render --resource`, Pulumi and the registry create.
    A plan holding a secret inline is refused: the resource is stored as it is."""
    from algorail import codepack
    from algorail.connectors.secrets import require_secret_references
    from algorail.spec import apply_bindings

    require_secret_references(plan)

    if document.get("apiVersion") == SELDON_API_VERSION:
        from algorail.seldon import seldon_to_algorail

        document = seldon_to_algorail(document, bindings=bindings)
    elif bindings:
        document = apply_bindings(document, bindings)
    resource = pipeline_resource(document, namespace, code=codepack.pack(plan))
    resource["metadata"]["name"] = plan.deployment
    resource["spec"].update(owner=plan.owner, version=plan.version)
    return resource
