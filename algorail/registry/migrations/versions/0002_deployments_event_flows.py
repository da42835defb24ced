"""Deployments, broker connections, event-flow grants; a digest per pipeline version.

Revision ID: 0002
Revises: 0001
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
    versions = sa.table(
        "pipeline_versions", sa.column("id", sa.Integer), sa.column("document", sa.Text),
        sa.column("digest", sa.String(64)),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(versions.c.id, versions.c.document)).all():
        digest = hashlib.sha256(row.document.encode("utf-8")).hexdigest()
        bind.execute(versions.update().where(versions.c.id == row.id).values(digest=digest))
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.alter_column("digest", existing_type=sa.String(64), nullable=False)

    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "pipeline_version_id", sa.Integer, sa.ForeignKey("pipeline_versions.id"),
            nullable=False,
        ),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("runtime", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_deployments_owner_name"),
    )
    op.create_table(
        "broker_connections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("bootstrap_servers", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "event_flow_grants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "algo_version_id", sa.Integer, sa.ForeignKey("algo_versions.id"), nullable=False
        ),
        sa.Column(
            "connection_id", sa.Integer, sa.ForeignKey("broker_connections.id"), nullable=False
        ),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint(
            "algo_version_id", "connection_id", "topic", "direction",
            name="uq_event_flow_grants",
        ),
    )


def downgrade() -> None:
    for table in ("event_flow_grants", "broker_connections", "deployments"):
        op.drop_table(table)
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.drop_column("digest")
