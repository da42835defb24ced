"""The SQL database, chosen by `sql.engine`: PostgreSQL as a CloudNativePG `Cluster` (the
operator installed from its own chart), or MariaDB from the official image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.apiextensions import CustomResource

from algorail_infra.config import SqlSettings
from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.helm import upstream_release
from algorail_infra.versions import ChartSource
from algorail_infra.workload import Workload, stateful_service

CNPG_API = "postgresql.cnpg.io/v1"
CNPG_NAMESPACE = "cnpg-system"
POSTGRES_NAME = "postgresql"  # the Cluster; its read-write Service is "postgresql-rw"
MARIADB_NAME = "mariadb"


@dataclass
class SqlArgs:
    namespace: pulumi.Input[str]
    image: str
    settings: SqlSettings
    operator_chart: ChartSource  # CloudNativePG (PostgreSQL only)
    operator_values: dict[str, Any]


class Sql(pulumi.ComponentResource):
    """`dsn` is a secret URL (`postgresql://` or `mysql://`) for the application user;
    `secret` holds that user's password under `password` (Kafka Connect may read it);
    pipelines wait for `ready` (the Cluster, or the MariaDB StatefulSet)."""

    def __init__(self, name: str, args: SqlArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Sql", name, None, opts)
        cfg = args.settings
        user_password = password(f"{name}-user-password", self)
        if cfg.engine == "postgresql":
            self._postgresql(name, args, user_password)
            scheme, service, port = "postgresql", f"{POSTGRES_NAME}-rw", 5432
        else:
            self._mariadb(name, args, user_password)
            scheme, service, port = "mysql", MARIADB_NAME, 3306
        self.host = pulumi.Output.concat(service, ".", args.namespace, ".svc")
        self.dsn = pulumi.Output.secret(pulumi.Output.concat(
            scheme, "://", cfg.user, ":", user_password, "@", self.host, f":{port}/",
            cfg.database,
        ))
        self.register_outputs({"host": self.host, "dsn": self.dsn})

    def _postgresql(self, name: str, args: SqlArgs, user_password: pulumi.Output[str]) -> None:
        cfg = args.settings
        # CloudNativePG reads the application owner's credentials from a basic-auth Secret.
        self.secret = kubernetes_secret(f"{name}-auth", args.namespace,
                                        {"username": cfg.user, "password": user_password},
                                        self, secret_type="kubernetes.io/basic-auth")
        self.operator = upstream_release(
            "cnpg", args.operator_chart, CNPG_NAMESPACE, {}, args.operator_values,
            pulumi.ResourceOptions(parent=self), create_namespace=True,
        )
        self.cluster = CustomResource(
            f"{name}-cluster",
            api_version=CNPG_API,
            kind="Cluster",
            metadata={"name": POSTGRES_NAME, "namespace": args.namespace},
            spec={
                "instances": cfg.instances,
                "imageName": args.image,
                "storage": {"size": cfg.storage_size},
                "bootstrap": {"initdb": {"database": cfg.database, "owner": cfg.user,
                                         "secret": {"name": self.secret.metadata.name}}},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.operator, self.secret]),
        )
        self.ready = self.cluster

    def _mariadb(self, name: str, args: SqlArgs, user_password: pulumi.Output[str]) -> None:
        cfg = args.settings
        self.secret = kubernetes_secret(f"{name}-auth", args.namespace, {
            "root-password": password(f"{name}-root-password", self),
            "password": user_password,
        }, self)
        secret = self.secret.metadata.name
        env = [{"name": "MARIADB_DATABASE", "value": cfg.database},
               {"name": "MARIADB_USER", "value": cfg.user}]
        env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for var, key in (("MARIADB_ROOT_PASSWORD", "root-password"),
                                 ("MARIADB_PASSWORD", "password"))]
        self.ready, _ = stateful_service(Workload(
            name=MARIADB_NAME, namespace=args.namespace, image=args.image, port=3306,
            storage_size=cfg.storage_size, data_path="/var/lib/mysql", env=env, fs_group=999,
        ), self, [self.secret])
