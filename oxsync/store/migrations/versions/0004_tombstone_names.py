"""tombstone names

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:57:29.273663
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_name", sa.String(length=255), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_column("resource_name")
