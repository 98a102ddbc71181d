"""imap protocol right

Before this revision IMAP was not governed by oxsync: every account that had any right keeps its
mailbox reachable over IMAP, so the new `imap` right is granted to them; accounts with no right
at all ("none") stay without.

Revision ID: 0007
Revises: 0012
Create Date: 2026-12-06 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE users SET protocols = protocols || ',imap' "
                       "WHERE protocols <> '' AND (',' || protocols || ',') NOT LIKE '%,imap,%'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE users SET protocols = trim(replace(',' || protocols || ',', ',imap,', ','), ',')"))
