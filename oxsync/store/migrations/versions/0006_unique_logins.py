"""bare logins unique across tenants

A bare login (`alice`) must name one account: with the same login in two tenants, `alice` silently
stopped working for both (issue 10 §3). `user add` now refuses it; this index enforces it in the
database. A database that already holds such duplicates is not changed: the upgrade stops and names
them, so that an administrator renames or removes one of each pair first (with the previous version).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rows = op.get_bind().execute(sa.text(
        "SELECT u.login, t.domain FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.login IN "
        "(SELECT login FROM users GROUP BY login HAVING COUNT(*) > 1) ORDER BY u.login, t.domain")).all()
    if rows:
        found: dict[str, list[str]] = {}
        for login, domain in rows:
            found.setdefault(login, []).append(domain)
        listed = "; ".join(f"{login} ({', '.join(domains)})" for login, domains in found.items())
        raise RuntimeError("logins must be unique across tenants (users type their bare login), but these are "
                           f"used in several: {listed}. Remove or recreate one account of each, then upgrade again.")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index("ix_users_login_global", ["login"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("ix_users_login_global")
