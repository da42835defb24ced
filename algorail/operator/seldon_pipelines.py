"""Seldon Core 2 `Pipeline` resources (mlops.seldon.io/v1alpha1) as algorail Pipelines, for
`algorail operator --watch-seldon`: a Seldon user applies the same manifests.

Each Seldon Pipeline becomes an algorail.io/v1 Pipeline of the same name and namespace,
converted by `algorail.seldon.seldon_to_algorail` with the namespace's bindings (the
ConfigMap `BINDINGS_CONFIG_MAP`, key `bindings.yaml`, in the format of a `--bindings` file;
the manifest's own ``algorail.io/bindings`` annotation wins) and owned by the Seldon one
(so it goes when the Seldon one goes); the operator then reconciles it like any other.
Pure: no API calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from algorail.errors import PipelineError, Problem
from algorail.operator.resource import pipeline_resource

SELDON_GROUP = "mlops.seldon.io"
SELDON_VERSION = "v1alpha1"
SELDON_API_VERSION = f"{SELDON_GROUP}/{SELDON_VERSION}"
BINDINGS_CONFIG_MAP = "algorail-seldon-bindings"
BINDINGS_KEY = "bindings.yaml"
SOURCE_LABEL = "algorail.io/seldon-pipeline"  # on the algorail Pipeline: the Seldon one's name


def bindings_of(config_map: Mapping[str, Any] | None, where: str) -> dict[str, Any] | None:
    """The bindings the ConfigMap holds (None without one); a `PipelineError` if they do
    not parse."""
    from algorail.spec import check_bindings

    if not config_map:
        return None
    text = (config_map.get("data") or {}).get(BINDINGS_KEY)
    if text is None:
        return None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PipelineError([Problem("bindings", f"{BINDINGS_KEY} is not YAML: {exc}",
                                     file=where)]) from None
    if not isinstance(data, dict):
        raise PipelineError([Problem("bindings", f"{BINDINGS_KEY} must be a mapping",
                                     file=where)])
    return check_bindings(data.get("bindings", data), "bindings", where)


def derived_pipeline(seldon: Mapping[str, Any],
                     bindings_config_map: Mapping[str, Any] | None) -> dict[str, Any]:
    """The algorail Pipeline resource standing for Seldon Pipeline `seldon`; raises
    `PipelineError` with what `algorail validate --bindings` would say."""
    from algorail.seldon import seldon_to_algorail

    meta = seldon["metadata"]
    namespace = meta.get("namespace", "default")
    where = f"{namespace}/{BINDINGS_CONFIG_MAP}"
    manifest = {**dict(seldon), "metadata": {**meta}}
    document = seldon_to_algorail(manifest, bindings_of(bindings_config_map, where),
                                  file=f"{namespace}/{meta['name']} ({SELDON_API_VERSION})")
    resource = pipeline_resource(document, namespace)
    resource["metadata"]["name"] = meta["name"]
    resource["metadata"].setdefault("labels", {})[SOURCE_LABEL] = meta["name"]
    resource["metadata"]["ownerReferences"] = [{
        "apiVersion": SELDON_API_VERSION, "kind": "Pipeline", "name": meta["name"],
        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]
    return resource
