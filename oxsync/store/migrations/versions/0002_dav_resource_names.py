"""dav resource names

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:56:14.819854
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_name", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_objects_resource_name", ["tenant_id", "resource_name"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_index("ix_objects_resource_name")
        batch_op.drop_column("resource_name")
