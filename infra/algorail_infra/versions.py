"""Every upstream chart, operator and image version the stack installs, pinned here.

Upgrading a service is a one-line change in this file (or, for one stack only,
`pulumi config set --path 'chartVersions.<service>' X.Y.Z`). Nothing else in the
program names a version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ChartSource:
    """Where a Helm chart comes from: an OCI reference, or a repository URL plus a name."""

    chart: str
    version: str
    repo: str | None = None  # None: `chart` is an oci:// reference


CHARTS: dict[str, ChartSource] = {
    # Emissary-ingress (Ambassador); its CRDs come from EMISSARY_CRDS_URL below.
    "ambassador": ChartSource("emissary-ingress", "8.9.1", "https://app.getambassador.io"),
    # Strimzi cluster operator: Kafka, KafkaNodePool, KafkaConnect, KafkaTopic, KafkaConnector.
    "strimzi": ChartSource("oci://quay.io/strimzi-helm/strimzi-kafka-operator", "0.48.0"),
    # MinIO (the MinIO project's own chart, not Bitnami's).
    "minio": ChartSource("minio", "5.4.0", "https://charts.min.io/"),
    # Prometheus operator, Prometheus, Alertmanager and Grafana.
    "prometheus": ChartSource(
        "kube-prometheus-stack", "65.1.1", "https://prometheus-community.github.io/helm-charts"
    ),
    "redis": ChartSource("oci://registry-1.docker.io/bitnamicharts/redis", "20.7.0"),
    "postgresql": ChartSource("oci://registry-1.docker.io/bitnamicharts/postgresql", "16.0.0"),
    "mariadb": ChartSource("oci://registry-1.docker.io/bitnamicharts/mariadb", "20.0.0"),
}

# Emissary 3.9.1 (chart 8.9.1) ships its CRDs and their conversion webhook as one manifest.
EMISSARY_VERSION = "3.9.1"
EMISSARY_CRDS_URL = f"https://app.getambassador.io/yaml/emissary/{EMISSARY_VERSION}/emissary-crds.yaml"

# Apache Kafka run by Strimzi 0.48.0 (KRaft only), and the metadata version it starts with.
KAFKA_VERSION = "4.1.0"
KAFKA_METADATA_VERSION = "4.1-IV1"

def chart(service: str, overrides: dict[str, str] | None = None) -> ChartSource:
    """The pinned chart of `service`, with a per-stack version override if one is set."""
    source = CHARTS[service]
    version = (overrides or {}).get(service)
    return replace(source, version=version) if version else source
