"""The whole stack: builds each enabled service and wires the rest to whichever is used.

Order (explicit `depends_on`, so a first `pulumi up` on an empty cluster converges):
Emissary's CRD chart -> Emissary, its Host and Mappings; Strimzi CRDs -> Strimzi operator ->
KafkaNodePool -> Kafka -> KafkaConnect; CloudNativePG -> the PostgreSQL Cluster; backing
services and the Pipeline CRD -> the `algorail` release (operator, gateway, hook dispatcher)
-> one `Pipeline` resource per pipeline, which the operator turns into topics, runners,
routes and connectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pulumi
from algorail.connectors.secrets import hook_secrets
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from algorail.plan import Plan
from algorail.render import deep_merge
from algorail_infra.ambassador import Ambassador, AmbassadorArgs
from algorail_infra.config import Settings
from algorail_infra.connect import KafkaConnect, KafkaConnectArgs
from algorail_infra.kafka import Kafka, KafkaArgs
from algorail_infra.object_store import ObjectStore, ObjectStoreArgs
from algorail_infra.pipelines import (
    PipelineArgs,
    PipelineDeployment,
    compile_entry,
    entry_resource,
)
from algorail_infra.platform import (
    CONNECTIONS_SECRET,
    GATEWAY_PORT,
    Connections,
    Platform,
    PlatformArgs,
)
from algorail_infra.prometheus import GRAFANA_PATH, Prometheus, PrometheusArgs, read_dashboards
from algorail_infra.redis import Redis, RedisArgs
from algorail_infra.services import AlgorailServices, AlgorailServicesArgs
from algorail_infra.sql import Sql, SqlArgs
from algorail_infra.strimzi import StrimziOperator, StrimziOperatorArgs
from algorail_infra.versions import EMISSARY_CRDS_CHART, STRIMZI, chart, image

CONNECT_NAME = "algorail-connect"
PATH_PATTERN = "/{owner}/{deployment}/{path}"


@dataclass
class Stack:
    """What `build` created (None: disabled or external) and the stack outputs."""

    settings: Settings
    namespace: Namespace
    ambassador: Ambassador | None = None
    strimzi: StrimziOperator | None = None
    kafka: Kafka | None = None
    connect: KafkaConnect | None = None
    object_store: ObjectStore | None = None
    redis: Redis | None = None
    sql: Sql | None = None
    prometheus: Prometheus | None = None
    platform: Platform | None = None
    services: AlgorailServices | None = None
    pipelines: dict[str, PipelineDeployment] = field(default_factory=dict)
    outputs: dict[str, pulumi.Input] = field(default_factory=dict)

    @property
    def ns(self) -> pulumi.Output[str]:
        return self.namespace.metadata.name

    @property
    def bootstrap_servers(self) -> pulumi.Input[str]:
        return self.kafka.bootstrap_servers if self.kafka else self.settings.kafka.bootstrap_servers

    def chart_args(self, service: str) -> dict:
        """Namespace, pinned chart and the stack's value overrides of `service`."""
        return {"namespace": self.ns, "chart": chart(service, self.settings.chart_versions),
                "values": self.settings.values.get(service, {})}

    def image(self, name: str) -> str:
        return image(name, self.settings.images)


def build(settings: Settings) -> Stack:
    """Create every resource of the stack described by `settings`."""
    plans = [compile_entry(entry) for entry in settings.pipelines]  # fail early
    resources = [entry_resource(e, p) for e, p in zip(settings.pipelines, plans, strict=True)]
    stack = Stack(settings, Namespace(
        "namespace", metadata=ObjectMetaArgs(name=settings.namespace)
    ))
    if settings.ambassador:
        emissary = chart("ambassador", settings.chart_versions)
        stack.ambassador = Ambassador("ambassador", AmbassadorArgs(
            chart=emissary, crds_chart=replace(emissary, chart=EMISSARY_CRDS_CHART),
            image=stack.image("emissary"), host=settings.ingress_host,
            values=settings.values.get("ambassador", {}),
        ))
    _kafka(stack)
    _backing_services(stack)
    _monitoring(stack)
    _kafka_connect(stack)
    stack.platform = Platform("algorail", PlatformArgs(
        namespace=stack.ns, connections=_connections(stack)
    ))
    stack.services = AlgorailServices("algorail", AlgorailServicesArgs(
        namespace=stack.ns, chart=settings.algorail_chart, platform=stack.platform,
        pipeline_values=_pipeline_values(stack), ingress=stack.ambassador is not None,
        monitoring=stack.prometheus is not None,
        values=deep_merge(_image(settings), settings.values.get("algorail", {})),
        hook_secrets=_hook_secrets(plans), depends_on=_backing(stack),
    ))
    # The CRD and the operator first: a Pipeline created before them is refused, or sits
    # unreconciled; the backing services too, so runners start against ready services.
    after = [stack.services.crd, stack.services.release, *_backing(stack)]
    for plan, resource in zip(plans, resources, strict=True):
        name = plan.helm.release
        stack.pipelines[name] = PipelineDeployment(name, PipelineArgs(
            namespace=stack.ns, plan=plan, resource=resource,
            gateway_service=stack.services.gateway_service, depends_on=after))
    stack.outputs = _outputs(stack)
    return stack


def _kafka(stack: Stack) -> None:
    cfg = stack.settings
    if cfg.kafka.enabled or cfg.kafka_connect.enabled:
        release = STRIMZI[cfg.strimzi.api_version]
        if "strimzi" in cfg.chart_versions:  # the CRDs follow the operator's version
            release = replace(release, version=cfg.chart_versions["strimzi"])
        stack.strimzi = StrimziOperator("strimzi", StrimziOperatorArgs(
            namespace=stack.ns, release=release, values=cfg.values.get("strimzi", {}),
        ))
    if cfg.kafka.enabled:
        stack.kafka = Kafka("kafka", KafkaArgs(
            namespace=stack.ns, operator=stack.strimzi, settings=cfg.kafka
        ))


def _backing_services(stack: Stack) -> None:
    cfg = stack.settings
    if cfg.object_store.enabled:
        stack.object_store = ObjectStore("object-store", ObjectStoreArgs(
            namespace=stack.ns, image=stack.image("seaweedfs"), settings=cfg.object_store
        ))
    if cfg.redis.enabled:
        stack.redis = Redis("redis", RedisArgs(
            namespace=stack.ns, image=stack.image("valkey"), settings=cfg.redis
        ))
    if cfg.sql.enabled:
        stack.sql = Sql("sql", SqlArgs(
            namespace=stack.ns, image=stack.image(cfg.sql.engine), settings=cfg.sql,
            operator_chart=chart("cloudnative-pg", cfg.chart_versions),
            operator_values=cfg.values.get("cloudnative-pg", {}),
        ))


def _monitoring(stack: Stack) -> None:
    if not stack.settings.prometheus:
        return
    ambassador = stack.ambassador
    stack.prometheus = Prometheus("prometheus", PrometheusArgs(
        **stack.chart_args("prometheus"),
        grafana_behind_ingress=ambassador is not None,
        dashboards=read_dashboards(stack.settings.algorail_chart / "dashboards"),
    ))
    if ambassador:
        ambassador.route("grafana", stack.ns, GRAFANA_PATH, stack.prometheus.grafana_service,
                         depends_on=[ambassador.release, stack.prometheus.release])


def _kafka_connect(stack: Stack) -> None:
    cfg = stack.settings.kafka_connect
    if not cfg.enabled:
        return
    readable = [CONNECTIONS_SECRET] + [
        c.secret.metadata.name for c in (stack.sql, stack.redis, stack.object_store) if c
    ]
    stack.connect = KafkaConnect(CONNECT_NAME, KafkaConnectArgs(
        namespace=stack.ns, operator=stack.strimzi, bootstrap_servers=stack.bootstrap_servers,
        settings=cfg, image=cfg.image or f"ttl.sh/algorail-connect-{pulumi.get_stack()}:24h",
        readable_secrets=readable, depends_on=[stack.kafka.cluster] if stack.kafka else [],
    ))


def _connections(stack: Stack) -> Connections:
    """The in-cluster service where there is one, else the external one from config."""
    cfg = stack.settings
    store = stack.object_store or cfg.object_store
    return Connections(
        bootstrap_servers=stack.bootstrap_servers,
        results_url=stack.redis.url if stack.redis else cfg.redis.url,
        object_store_url=pulumi.Output.concat(
            "s3://", store.bucket, "?endpoint=", _s3_endpoint(stack),
            "&region=", cfg.object_store.region,
        ),
        s3_access_key_id=store.access_key_id,
        s3_secret_access_key=store.secret_access_key,
        sql_dsn=stack.sql.dsn if stack.sql else cfg.sql.dsn,
    )


def _s3_endpoint(stack: Stack) -> pulumi.Input[str]:
    return stack.object_store.endpoint if stack.object_store else (
        stack.settings.object_store.endpoint)


def _hook_secrets(plans: list[Plan]) -> list[dict[str, str]]:
    """Every Secret a hook of any pipeline references, once."""
    found = {(s["namespace"], s["name"]) for plan in plans for s in hook_secrets(plan)}
    return [{"namespace": namespace, "name": name} for namespace, name in sorted(found)]


def _image(settings: Settings) -> dict:
    return {"image": settings.image} if settings.image else {}


def _pipeline_values(stack: Stack) -> dict:
    """Where every pipeline's topics, connectors, routes and runners find the stack: the
    operator's algorail-pipeline chart values (a Pipeline's spec.deployment wins)."""
    cfg = stack.settings
    return {
        "kafka": {"bootstrapServers": stack.bootstrap_servers,
                  "clusterName": cfg.kafka.cluster_name},
        "topics": {"create": stack.kafka is not None, "replicas": min(3, cfg.kafka.replicas),
                   "apiVersion": cfg.strimzi.api_version},
        "connect": {"enabled": stack.connect is not None, "clusterName": CONNECT_NAME,
                    "apiVersion": cfg.strimzi.api_version},
        # every pipeline's Mappings go to the one gateway (services.GATEWAY_SERVICE)
        "mappings": {"enabled": stack.ambassador is not None, "gatewayPort": GATEWAY_PORT},
        "podMonitor": {"enabled": stack.prometheus is not None},
        "runner": {"extraEnv": stack.platform.runner_env()},
        **_image(cfg),
    }


def _backing(stack: Stack) -> list[pulumi.Resource]:
    """What must be ready before the services and pipelines start."""
    ready = [c.ready for c in (stack.redis, stack.sql, stack.object_store) if c is not None]
    ready += [stack.prometheus.release] if stack.prometheus else []
    ready += [c.cluster for c in (stack.kafka, stack.connect) if c is not None]
    if stack.ambassador:
        ready.append(stack.ambassador.crds)
    return ready


def _outputs(stack: Stack) -> dict[str, pulumi.Input]:
    store = stack.object_store or stack.settings.object_store
    return {
        "namespace": stack.ns,
        "gatewayUrlPattern": _gateway_url_pattern(stack.ambassador, stack.ns),
        "apiKey": stack.platform.api_key,
        "kafkaBootstrapServers": stack.bootstrap_servers,
        "grafanaUrl": _grafana_url(stack.ambassador, stack.prometheus),
        "s3Endpoint": _s3_endpoint(stack),
        "s3Bucket": store.bucket,
        "sqlDsn": pulumi.Output.secret(stack.platform.connections.sql_dsn),
        "pipelines": {name: {"gateway": p.gateway_service, "routes": p.routes}
                      for name, p in stack.pipelines.items()},
    }


def _gateway_url_pattern(ambassador: Ambassador | None,
                         ns: pulumi.Input[str]) -> pulumi.Output[str]:
    """Where a pipeline's endpoint paths are called: through Ambassador, or (without it)
    the namespace's gateway Service inside the cluster (`pipelines.NAME.gateway`)."""
    if ambassador is not None:
        return pulumi.Output.concat("http://", ambassador.address, PATH_PATTERN)
    return pulumi.Output.from_input("http://{gateway}" + PATH_PATTERN)


def _grafana_url(ambassador: Ambassador | None,
                 prometheus: Prometheus | None) -> pulumi.Input[str] | None:
    if prometheus is None:
        return None
    if ambassador is None:
        return pulumi.Output.concat("http://", prometheus.grafana_service, "/")
    return pulumi.Output.concat("http://", ambassador.address, GRAFANA_PATH)
