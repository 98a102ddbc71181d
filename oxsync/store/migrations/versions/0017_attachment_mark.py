"""objects.has_attachments: which objects have attachments

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 00:40:00

A read of objects (an ActiveSync window, a delta, a multiget) read the attachments table for every
object it returned, though few have any; the mark says which do, so a read of objects without any
sends no attachment query. Existing rows are marked from the attachments they have here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("has_attachments", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE objects SET has_attachments = true WHERE EXISTS (SELECT 1 FROM attachments a "
               "WHERE a.tenant_id = objects.tenant_id AND a.object_id = objects.id)")


def downgrade() -> None:
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_column("has_attachments")
