"""The whole stack: builds each enabled service and wires the rest to whichever is used.

Order (explicit `depends_on`, so a first `pulumi up` on an empty cluster converges):
Emissary's CRD chart -> Emissary, its Host and Mappings; Strimzi CRDs -> Strimzi operator ->
KafkaNodePool -> Kafka -> KafkaConnect; CloudNativePG -> the PostgreSQL Cluster; backing
services -> one `algorail-pipeline` and one `algorail` release per pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pulumi
from pulumi_kubernetes.core.v1 import Namespace
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs

from algorail.plan import Plan
from algorail.render import deep_merge
from algorail_infra.ambassador import Ambassador, AmbassadorArgs
from algorail_infra.config import PipelineEntry, Settings
from algorail_infra.connect import KafkaConnect, KafkaConnectArgs
from algorail_infra.kafka import Kafka, KafkaArgs
from algorail_infra.object_store import ObjectStore, ObjectStoreArgs
from algorail_infra.pipelines import PipelineArgs, PipelineDeployment, compile_entry
from algorail_infra.platform import (
    CONNECTIONS_SECRET,
    GATEWAY_PORT,
    Connections,
    Platform,
    PlatformArgs,
)
from algorail_infra.prometheus import GRAFANA_PATH, Prometheus, PrometheusArgs, read_dashboards
from algorail_infra.redis import Redis, RedisArgs
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
    plans = [(entry, compile_entry(entry)) for entry in settings.pipelines]  # fail early
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
    # One V2 pipeline answers the server-wide GET /v2 and /v2/health/*: two Mappings of one
    # path to different gateways would split those requests between them.
    v2_server = next((plan.helm.release for _, plan in plans if _serves_v2(plan)), None)
    for entry, plan in plans:
        stack.pipelines[plan.helm.release] = PipelineDeployment(plan.helm.release, _pipeline_args(
            stack, entry, plan, v2_server_paths=plan.helm.release == v2_server))
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


def _serves_v2(plan: Plan) -> bool:
    return any(route.protocol == "v2" for route in plan.routes)


def _pipeline_args(stack: Stack, entry: PipelineEntry, plan: Plan,
                   v2_server_paths: bool) -> PipelineArgs:
    cfg = stack.settings
    wiring = {
        "kafka": {"bootstrapServers": stack.bootstrap_servers,
                  "clusterName": cfg.kafka.cluster_name},
        "topics": {"create": stack.kafka is not None, "replicas": min(3, cfg.kafka.replicas),
                   "apiVersion": cfg.strimzi.api_version},
        "connect": {"enabled": stack.connect is not None, "clusterName": CONNECT_NAME,
                    "apiVersion": cfg.strimzi.api_version},
        "mappings": {"enabled": stack.ambassador is not None, "gatewayPort": GATEWAY_PORT,
                     "v2": {"serverPaths": v2_server_paths}},
        "podMonitor": {"enabled": stack.prometheus is not None},
    }
    image = {"image": cfg.image} if cfg.image else {}
    # Backing services first, so runners and gateways start against ready services.
    ready = [c.ready for c in (stack.redis, stack.sql, stack.object_store) if c is not None]
    ready += [stack.prometheus.release] if stack.prometheus else []
    ready += [c.cluster for c in (stack.kafka, stack.connect) if c is not None]
    if stack.ambassador:
        ready.append(stack.ambassador.crds)
    return PipelineArgs(
        namespace=stack.ns, pipeline_chart=cfg.pipeline_chart,
        services_chart=cfg.algorail_chart, plan=plan, platform=stack.platform,
        wiring={**wiring, **image}, ingress=stack.ambassador is not None,
        monitoring=stack.prometheus is not None, values=entry.values,
        services_values=deep_merge(image, cfg.values.get("algorail", {})), depends_on=ready,
    )


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
    the pipeline's own gateway Service inside the cluster (`pipelines.NAME.gateway`)."""
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
