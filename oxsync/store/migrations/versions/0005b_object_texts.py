"""served-text cache (object_texts)

Revision ID: 0005b
Revises: 0006
Create Date: 2026-12-06 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005b"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "object_texts",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("viewer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "object_id"], ["objects.tenant_id", "objects.id"],
                                name=op.f("fk_object_texts_tenant_id_object_id_objects"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "object_id", "viewer_id", "variant", name=op.f("pk_object_texts")),
    )


def downgrade() -> None:
    op.drop_table("object_texts")
