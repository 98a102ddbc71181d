"""push logins

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:51:25.529823
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "push_logins",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_push_logins_tenant_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", "address", name=op.f("pk_push_logins")),
    )
    with op.batch_alter_table("push_logins", schema=None) as batch_op:
        batch_op.create_index("ix_push_logins_last", ["last_ms"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("push_logins", schema=None) as batch_op:
        batch_op.drop_index("ix_push_logins_last")

    op.drop_table("push_logins")
