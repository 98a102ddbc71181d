"""time-range index: a `long_span` flag and an index on (tenant_id, long_span, start_ms)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 16:00:00

A calendar-query finds the short rows (closed, at most timeranges.SHORT_MS long) by a range of their
start, and scans only the long ones; existing rows get the flag computed from their bounds here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SHORT_MS = 8 * 86_400_000
"""timeranges.SHORT_MS when this migration was written."""


def upgrade() -> None:
    with op.batch_alter_table("object_ranges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("long_span", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE object_ranges SET long_span = false WHERE start_ms IS NOT NULL AND end_ms IS NOT NULL "
               f"AND end_ms - start_ms <= {SHORT_MS}")
    op.create_index("ix_object_ranges_start", "object_ranges", ["tenant_id", "long_span", "start_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_object_ranges_start", table_name="object_ranges")
    with op.batch_alter_table("object_ranges", schema=None) as batch_op:
        batch_op.drop_column("long_span")
