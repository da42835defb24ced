"""Helm releases built one way: pinned chart, explicit release name, overridable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_kubernetes.helm.v3 import Release, ReleaseArgs, RepositoryOptsArgs

from algorail.render import deep_merge
from algorail_infra.versions import ChartSource

# Long enough for an operator or database to become ready on a fresh cluster.
RELEASE_TIMEOUT_S = 900


@dataclass(kw_only=True)
class ChartArgs:
    """What every component installing one upstream chart is given; subclasses add
    their service's settings."""

    namespace: pulumi.Input[str]
    chart: ChartSource
    values: dict[str, Any] = field(default_factory=dict)  # overrides of the program's values


def upstream_release(resource_name: str, source: ChartSource, namespace: pulumi.Input[str],
                     values: dict[str, Any], overrides: dict[str, Any] | None,
                     opts: pulumi.ResourceOptions, create_namespace: bool = False,
                     skip_crds: bool = False) -> Release:
    """A release of a pinned upstream chart, named `resource_name` in the cluster too;
    `skip_crds` when the program applies the chart's CRDs itself."""
    return Release(
        resource_name,
        ReleaseArgs(
            name=resource_name,
            chart=source.chart,
            version=source.version,
            repository_opts=RepositoryOptsArgs(repo=source.repo) if source.repo else None,
            namespace=namespace,
            create_namespace=create_namespace,
            skip_crds=skip_crds,
            values=deep_merge(values, overrides or {}),
            timeout=RELEASE_TIMEOUT_S,
        ),
        opts,
    )


def local_release(resource_name: str, chart: Path, namespace: pulumi.Input[str],
                  values: pulumi.Input[dict[str, Any]], opts: pulumi.ResourceOptions,
                  skip_crds: bool = False) -> Release:
    """A release of one of algorail's own charts from this checkout."""
    return Release(
        resource_name,
        ReleaseArgs(
            name=resource_name,
            chart=str(chart),
            namespace=namespace,
            skip_crds=skip_crds,
            values=values,
            timeout=RELEASE_TIMEOUT_S,
        ),
        opts,
    )
