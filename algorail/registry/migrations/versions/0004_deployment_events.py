"""Every state change of a deployment, with the pipeline version it was on (its history).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from algorail.registry.models import LONG_TEXT

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"),
                  nullable=False, index=True),
        sa.Column("pipeline_version_id", sa.Integer, sa.ForeignKey("pipeline_versions.id"),
                  nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("message", LONG_TEXT),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment_events")
