"""The SQL database (Bitnami PostgreSQL or MariaDB chart, chosen by `sql.engine`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from algorail_infra.config import SqlSettings
from algorail_infra.credentials import kubernetes_secret, password
from algorail_infra.helm import ChartArgs, upstream_release


@dataclass(frozen=True)
class Engine:
    """What differs between the two charts: secret key names, port, URL scheme."""

    admin_key: str
    user_key: str
    port: int
    scheme: str
    extra_keys: tuple[str, ...] = ()


ENGINES = {
    "postgresql": Engine("postgres-password", "password", 5432, "postgresql"),
    "mariadb": Engine("mariadb-root-password", "mariadb-password", 3306, "mysql",
                      ("mariadb-replication-password",)),
}


@dataclass(kw_only=True)
class SqlArgs(ChartArgs):
    settings: SqlSettings


class Sql(pulumi.ComponentResource):
    """`dsn` is a secret URL (`postgresql://` or `mysql://`) for the application user."""

    def __init__(self, name: str, args: SqlArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("algorail:infra:Sql", name, None, opts)
        cfg = args.settings
        engine = ENGINES[cfg.engine]
        user_password = password(f"{name}-user-password", self)
        keys = {engine.admin_key: password(f"{name}-admin-password", self),
                engine.user_key: user_password}
        keys.update({k: password(f"{name}-{k}", self) for k in engine.extra_keys})
        self.secret = kubernetes_secret(f"{name}-auth", args.namespace, keys, self)
        auth = {"username": cfg.user, "database": cfg.database,
                "existingSecret": self.secret.metadata.name}
        if cfg.engine == "postgresql":
            auth["secretKeys"] = {"adminPasswordKey": engine.admin_key,
                                  "userPasswordKey": engine.user_key}
        self.release = upstream_release(
            cfg.engine, args.chart, args.namespace,
            {"auth": auth, "primary": {"persistence": {"size": cfg.storage_size}}},
            args.values,
            pulumi.ResourceOptions(parent=self, depends_on=[self.secret]),
        )
        self.host = pulumi.Output.concat(cfg.engine, ".", args.namespace, ".svc")
        self.dsn = pulumi.Output.secret(pulumi.Output.concat(
            engine.scheme, "://", cfg.user, ":", user_password, "@", self.host,
            f":{engine.port}/", cfg.database,
        ))
        self.register_outputs({"host": self.host, "dsn": self.dsn})
