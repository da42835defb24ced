"""Every upstream chart, operator and container image the stack installs, pinned here.

Upgrading a service is a change in this file (or, for one stack only,
`pulumi config set --path 'chartVersions.<service>' X.Y.Z` / `images.<name>`). Nothing
else in the program names a version. docs/deploy.md explains each choice and when it
was checked; tests/test_infra.py checks that every image the stack pulls by default is
one of IMAGES and pinned to a release tag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from algorail.kafka_connect import STRIMZI_API_VERSION, STRIMZI_API_VERSIONS

# When the tags and chart versions below were last checked against their projects.
CHECKED = "2026-12-01"


@dataclass(frozen=True)
class ChartSource:
    """Where a Helm chart comes from: an OCI reference, or a repository URL plus a name."""

    chart: str
    version: str
    repo: str | None = None  # None: `chart` is an oci:// reference


@dataclass(frozen=True)
class Image:
    """A container image at a release tag, and who maintains it."""

    repository: str
    tag: str
    maintainer: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


# Images the program itself runs (StatefulSets it writes) or pins in a chart or CR.
IMAGES: dict[str, Image] = {
    # The run results store: Valkey, the Linux Foundation's BSD-licensed Redis fork.
    "valkey": Image("docker.io/valkey/valkey", "9.1.1", "Valkey project (official image)"),
    # MariaDB server: the Docker official image maintained with the MariaDB Foundation.
    "mariadb": Image("docker.io/library/mariadb", "11.8.3", "MariaDB Foundation (official image)"),
    # PostgreSQL run by CloudNativePG (the operator's own operand images).
    "postgresql": Image("ghcr.io/cloudnative-pg/postgresql", "17.5", "CloudNativePG project"),
    # S3-compatible object store: SeaweedFS, all in one process (master, volume, filer, S3).
    "seaweedfs": Image("docker.io/chrislusf/seaweedfs", "3.97", "SeaweedFS project"),
    # Emissary-ingress, set explicitly so the chart's default cannot drift.
    "emissary": Image("ghcr.io/emissary-ingress/emissary", "4.1.0", "Emissary-ingress (CNCF)"),
}

CHARTS: dict[str, ChartSource] = {
    # Emissary-ingress (Ambassador) 4.x: chart and CRD chart share Emissary's version.
    "ambassador": ChartSource("oci://ghcr.io/emissary-ingress/emissary-ingress", "4.1.0"),
    # CloudNativePG operator (chart 0.29.0 runs operator 1.30.0); the program writes the Cluster.
    "cloudnative-pg": ChartSource("cloudnative-pg", "0.29.0",
                                  "https://cloudnative-pg.github.io/charts"),
    # Prometheus operator, Prometheus, Alertmanager and Grafana.
    "prometheus": ChartSource(
        "kube-prometheus-stack", "84.5.0", "https://prometheus-community.github.io/helm-charts"
    ),
}

EMISSARY_CRDS_CHART = "oci://ghcr.io/emissary-ingress/emissary-crds-chart"


@dataclass(frozen=True)
class StrimziRelease:
    """One Strimzi line: the CR API it serves, its operator chart and CRDs, and the
    Apache Kafka version the stack runs with it (its images are quay.io/strimzi/*)."""

    api_version: str
    version: str
    kafka_version: str

    @property
    def chart(self) -> ChartSource:
        return ChartSource("oci://quay.io/strimzi-helm/strimzi-kafka-operator", self.version)

    @property
    def crds_url(self) -> str:
        return ("https://github.com/strimzi/strimzi-kafka-operator/releases/download/"
                f"{self.version}/strimzi-crds-{self.version}.yaml")


# Strimzi 1.x serves only kafka.strimzi.io/v1; 0.4x only v1beta2 (config strimzi.apiVersion).
_V1, _V1BETA2 = STRIMZI_API_VERSIONS
STRIMZI: dict[str, StrimziRelease] = {
    _V1: StrimziRelease(_V1, "1.2.0", "4.3.1"),
    _V1BETA2: StrimziRelease(_V1BETA2, "0.48.0", "4.1.0"),
}
STRIMZI_DEFAULT_API = STRIMZI_API_VERSION


def chart(service: str, overrides: dict[str, str] | None = None) -> ChartSource:
    """The pinned chart of `service`, with a per-stack version override if one is set."""
    source = CHARTS[service]
    version = (overrides or {}).get(service)
    return replace(source, version=version) if version else source


def image(name: str, overrides: dict[str, str] | None = None) -> str:
    """The image reference of `name`, or the stack's override (a full reference)."""
    return (overrides or {}).get(name) or IMAGES[name].ref
