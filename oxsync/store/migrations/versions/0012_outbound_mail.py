"""outbound mail queue, send-as addresses, mailed reminders

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-06 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_mail",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("idem_key", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_outbound_mail_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_mail")),
    )
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_mail_idem_key", ["idem_key"], unique=True)
        batch_op.create_index("ix_outbound_mail_due", ["state", "next_try_ms"], unique=False)

    op.create_table(
        "send_as_addresses",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"],
                                name=op.f("fk_send_as_addresses_tenant_id_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", "address", name=op.f("pk_send_as_addresses")),
    )

    op.create_table(
        "mail_alarms",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"],
                                name=op.f("fk_mail_alarms_tenant_id_object_id_objects"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "object_id", "user_id", name=op.f("pk_mail_alarms")),
    )
    with op.batch_alter_table("mail_alarms", schema=None) as batch_op:
        batch_op.create_index("ix_mail_alarms_due", ["done", "due_ms"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mail_alarms", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_alarms_due")
    op.drop_table("mail_alarms")
    op.drop_table("send_as_addresses")
    with op.batch_alter_table("outbound_mail", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_mail_due")
        batch_op.drop_index("ix_outbound_mail_idem_key")
    op.drop_table("outbound_mail")
