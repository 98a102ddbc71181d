"""time-range index: an `exact` flag per row (calendar-query decided in SQL)

Revision ID: 0014
Revises: 0005b
Create Date: 2026-12-06 10:00:00

Existing rows are conservative (exact = false): they keep selecting candidates that the filter
decides on the text; an object's row becomes exact when it is next written (store/timeranges.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0005b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("object_ranges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exact", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("object_ranges", schema=None) as batch_op:
        batch_op.drop_column("exact")
