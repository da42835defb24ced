"""Stack configuration: every `pulumi config` key the program reads, with its default.

`load_settings(pulumi.Config("algorail"))` turns the stack's config into plain, typed
settings; the components read settings, never `pulumi.Config`. docs/deploy.md lists
the same keys. A bad combination raises `InfraConfigError` naming the key to set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from algorail.errors import AlgorailError
from algorail_infra.versions import CHARTS, IMAGES, STRIMZI, STRIMZI_DEFAULT_API

SQL_ENGINES = ("postgresql", "mariadb")


class InfraConfigError(AlgorailError):
    """A stack configuration that cannot be deployed; the message names the key to set."""


@dataclass(frozen=True)
class KafkaSettings:
    enabled: bool = True  # in-cluster Kafka run by Strimzi
    bootstrap_servers: str = ""  # an external cluster (used when enabled is false)
    cluster_name: str = "algorail"
    replicas: int = 3  # dual-role (controller + broker) KRaft nodes
    storage_size: str = "20Gi"


@dataclass(frozen=True)
class StrimziSettings:
    api_version: str = STRIMZI_DEFAULT_API  # kafka.strimzi.io/v1 (Strimzi 1.x) or v1beta2 (0.4x)


@dataclass(frozen=True)
class KafkaConnectSettings:
    enabled: bool = True
    replicas: int = 1
    image: str = ""  # where Strimzi pushes the Connect image it builds with the plugins
    push_secret: str = ""  # docker-registry Secret for pushing `image`


@dataclass(frozen=True)
class ObjectStoreSettings:
    enabled: bool = True  # in-cluster SeaweedFS
    bucket: str = "algorail"
    endpoint: str = ""  # an external S3 endpoint (used when enabled is false)
    region: str = "us-east-1"
    storage_size: str = "20Gi"
    access_key_id: pulumi.Output | None = None  # external S3 only (secret config)
    secret_access_key: pulumi.Output | None = None


@dataclass(frozen=True)
class RedisSettings:
    enabled: bool = True  # in-cluster Valkey
    storage_size: str = "8Gi"
    url: pulumi.Output | None = None  # an external redis:// URL (secret config)


@dataclass(frozen=True)
class SqlSettings:
    enabled: bool = True  # in-cluster database
    engine: str = "postgresql"  # or mariadb
    database: str = "algorail"
    user: str = "algorail"
    storage_size: str = "10Gi"
    instances: int = 1  # PostgreSQL instances (CloudNativePG: one primary, the rest replicas)
    dsn: pulumi.Output | None = None  # an external database URL (secret config)


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline file to deploy as a Pipeline resource."""

    file: Path
    deployment: str | None = None
    bindings: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the resource's spec.deployment


@dataclass(frozen=True)
class Settings:
    namespace: str = "algorail"
    ingress_host: str = ""  # DNS name pointing at Ambassador; empty: its load balancer address
    ambassador: bool = True
    prometheus: bool = True
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    strimzi: StrimziSettings = field(default_factory=StrimziSettings)
    kafka_connect: KafkaConnectSettings = field(default_factory=KafkaConnectSettings)
    object_store: ObjectStoreSettings = field(default_factory=ObjectStoreSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)
    algorail_chart: Path = Path("../charts/algorail")
    image: dict[str, str] = field(default_factory=dict)  # algorail image: services, runners
    pipelines: tuple[PipelineEntry, ...] = ()
    chart_versions: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # per-image overrides (mirrors)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-service overrides


def load_settings(config: pulumi.Config, base_dir: Path | None = None) -> Settings:
    """Read the stack's config; relative paths are taken from `base_dir` (the project)."""
    base = base_dir or Path.cwd()
    kafka = _section(config, "kafka", KafkaSettings)
    obj = config.get_object("objectStore") or {}
    redis = config.get_object("redis") or {}
    sql = config.get_object("sql") or {}
    settings = Settings(
        namespace=config.get("namespace") or "algorail",
        ingress_host=config.get("ingressHost") or "",
        ambassador=_enabled(config.get_object("ambassador")),
        prometheus=_enabled(config.get_object("prometheus")),
        kafka=kafka,
        strimzi=_section(config, "strimzi", StrimziSettings),
        kafka_connect=_section(config, "kafkaConnect", KafkaConnectSettings),
        object_store=ObjectStoreSettings(
            **_fields(obj, ObjectStoreSettings, "objectStore"),
            access_key_id=config.get_secret("s3AccessKeyId"),
            secret_access_key=config.get_secret("s3SecretAccessKey"),
        ),
        redis=RedisSettings(**_fields(redis, RedisSettings, "redis"),
                            url=config.get_secret("redisUrl")),
        sql=SqlSettings(**_fields(sql, SqlSettings, "sql"), dsn=config.get_secret("sqlDsn")),
        algorail_chart=base / (config.get("algorailChart") or "../charts/algorail"),
        image=config.get_object("image") or {},
        pipelines=tuple(_pipeline(p, base) for p in config.get_object("pipelines") or []),
        chart_versions=config.get_object("chartVersions") or {},
        images=config.get_object("images") or {},
        values=config.get_object("values") or {},
    )
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Every impossible combination, as one error listing the keys to set."""
    problems = []
    if not settings.kafka.enabled and not settings.kafka.bootstrap_servers:
        problems.append(
            "kafka.enabled is false but no external cluster is given: "
            "pulumi config set --path kafka.bootstrapServers HOST:9092"
        )
    if not settings.object_store.enabled and not settings.object_store.endpoint:
        problems.append(
            "objectStore.enabled is false but no external S3 is given: "
            "pulumi config set --path objectStore.endpoint https://s3.REGION.amazonaws.com"
        )
    if not settings.object_store.enabled and settings.object_store.access_key_id is None:
        problems.append(
            "external S3 needs credentials: pulumi config set --secret s3AccessKeyId ... "
            "and pulumi config set --secret s3SecretAccessKey ..."
        )
    if not settings.redis.enabled and settings.redis.url is None:
        problems.append(
            "redis.enabled is false but no external Redis is given: "
            "pulumi config set --secret redisUrl redis://:PASSWORD@HOST:6379/0"
        )
    if not settings.sql.enabled and settings.sql.dsn is None:
        problems.append(
            "sql.enabled is false but no external database is given: "
            "pulumi config set --secret sqlDsn postgresql://USER:PASSWORD@HOST:5432/DB"
        )
    if settings.sql.engine not in SQL_ENGINES:
        problems.append(
            f"sql.engine is {settings.sql.engine!r}: "
            "pulumi config set --path sql.engine postgresql (or mariadb)"
        )
    if settings.strimzi.api_version not in STRIMZI:
        problems.append(
            f"strimzi.apiVersion is {settings.strimzi.api_version!r}: pulumi config set "
            f"--path strimzi.apiVersion {' (or '.join(STRIMZI)})"
        )
    for key, known in (("values", SERVICES), ("chartVersions", CHART_SERVICES),
                       ("images", tuple(IMAGES))):
        unknown = sorted(set(getattr(settings, _snake(key))) - set(known))
        if unknown:
            problems.append(
                f"{key} has unknown services {', '.join(unknown)}; known: {', '.join(known)}"
            )
    if problems:
        raise InfraConfigError("stack configuration:\n  " + "\n  ".join(problems))


# Read from top-level secret config keys only, never from a clear object.
_SECRET_FIELDS = {"access_key_id", "secret_access_key", "url", "dsn"}

# Charts whose version `chartVersions.<service>` can override, and whose Helm values
# `values.<service>` can (and algorail's own `algorail` release).
CHART_SERVICES = (*CHARTS, "strimzi")
SERVICES = (*CHART_SERVICES, "algorail")


def _enabled(section: dict[str, Any] | None) -> bool:
    return bool((section or {}).get("enabled", True))


def _section(config: pulumi.Config, key: str, cls: type) -> Any:
    return cls(**_fields(config.get_object(key) or {}, cls, key))


def _fields(section: dict[str, Any], cls: type, key: str) -> dict[str, Any]:
    """Map camelCase config keys onto the dataclass's plain fields; reject unknown ones."""
    known = {_camel(n): n for n in cls.__dataclass_fields__ if n not in _SECRET_FIELDS}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise InfraConfigError(
            f"config {key} has unknown keys {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    return {known[k]: v for k, v in section.items()}


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _pipeline(entry: Any, base: Path) -> PipelineEntry:
    if isinstance(entry, str):
        entry = {"file": entry}
    if not isinstance(entry, dict) or "file" not in entry:
        raise InfraConfigError(
            f"pipelines entry {entry!r} needs a file: "
            "pulumi config set --path 'pipelines[0].file' ../examples/hello.yaml"
        )
    if "values" in entry:
        raise InfraConfigError(
            f"pipelines entry {entry['file']}: values is gone, pipelines are Pipeline "
            "resources the operator deploys; set this pipeline's image, resources, kafka or "
            "autoscaling in its settings (pulumi config set --path 'pipelines[0].settings"
            ".resources.limits.cpu' 2), chart values for every pipeline in "
            "values.algorail.operator.pipelineValues"
        )
    bindings = entry.get("bindings")
    return PipelineEntry(
        file=base / entry["file"],
        deployment=entry.get("deployment"),
        bindings=base / bindings if bindings else None,
        settings=_deployment_settings(entry),
    )


def _deployment_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """`settings` checked as the CRD checks `spec.deployment` (packed code is the program's)."""
    from pydantic import ValidationError

    from algorail.operator.resource import DeploymentSettings

    settings = entry.get("settings") or {}
    known = sorted(f.alias or n for n, f in DeploymentSettings.model_fields.items() if n != "code")
    problems = ["code: packed from the pipeline's folder, not set"] if "code" in settings else []
    try:
        DeploymentSettings.model_validate(settings)
    except ValidationError as exc:
        problems += [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise InfraConfigError(
            f"pipelines entry {entry['file']}: settings.{'; settings.'.join(problems)} "
            f"(settings are {', '.join(known)})")
    return settings
