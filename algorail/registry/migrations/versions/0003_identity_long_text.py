"""A random identity per database (the default Redis cache prefix); long texts on MariaDB.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LONG_TEXTS = [("algos", "description", True), ("pipeline_versions", "description", True),
              ("pipeline_versions", "document", False), ("deployments", "message", True)]


def upgrade() -> None:
    identity = op.create_table("registry_identity",
                               sa.Column("id", sa.String(32), primary_key=True))
    op.bulk_insert(identity, [{"id": uuid.uuid4().hex}])
    if op.get_bind().dialect.name == "mysql":  # TEXT holds only 64 KiB there
        for table, column, nullable in LONG_TEXTS:
            op.alter_column(table, column, type_=mysql.MEDIUMTEXT(), existing_type=sa.Text(),
                            existing_nullable=nullable)


def downgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        for table, column, nullable in LONG_TEXTS:
            op.alter_column(table, column, type_=sa.Text(), existing_type=mysql.MEDIUMTEXT(),
                            existing_nullable=nullable)
    op.drop_table("registry_identity")
