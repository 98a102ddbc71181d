"""time-range index of events and tasks (object_ranges)

Revision ID: 0005
Revises: 0007
Create Date: 2026-12-06 07:00:00

Existing objects get one conservative row each, computed in SQL from columns every version wrote:
an appointment covers [start_ms, range_end_ms] (range_end_ms is its own end, or its series' end, NULL
for an endless series), a task matches every range until it is next written (store/timeranges.py then
computes the exact rows). The 26 h padding is timeranges.PAD_MS.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None

PAD_MS = 26 * 3_600_000


def upgrade() -> None:
    op.create_table(
        "object_ranges",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"],
                                name=op.f("fk_object_ranges_tenant_id_object_id_objects"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "object_id", "position", name=op.f("pk_object_ranges")),
    )
    op.execute(
        "INSERT INTO object_ranges (tenant_id, object_id, position, start_ms, end_ms) "
        f"SELECT tenant_id, id, 0, start_ms - {PAD_MS}, range_end_ms + {PAD_MS} FROM objects "
        "WHERE kind = 'appointment'"
    )
    op.execute(
        "INSERT INTO object_ranges (tenant_id, object_id, position, start_ms, end_ms) "
        "SELECT tenant_id, id, 0, NULL, NULL FROM objects WHERE kind = 'task'"
    )


def downgrade() -> None:
    op.drop_table("object_ranges")
