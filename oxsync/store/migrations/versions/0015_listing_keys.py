"""listings by key: folder indexes of objects and participants that end with the object id

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 16:00:00

A listing reads a folder a page at a time (`id > after ORDER BY id LIMIT n`, store/bulk.py
`member_page`); with the id in the folder index each page is a range of the index, not a scan and
sort of the whole folder. The new index serves every use of the old one (same leading columns).
Participants get a new partial index (rows that place an object in a folder) rather than a longer
ix_participants_folder: with the object id in a full index, SQLite's planner (no statistics) prefers it,
covering, to the primary key for `object_id IN (...)` lookups and scans the tenant's participants
(tests/test_bulk_load.py checks those plans); a lookup that names no folder cannot use a partial index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PLACED = sa.text("folder_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_objects_folder", table_name="objects")
    op.create_index("ix_objects_folder", "objects", ["tenant_id", "folder_id", "id"], unique=False)
    op.create_index("ix_participants_folder_object", "participants", ["tenant_id", "folder_id", "object_id"],
                    unique=False, sqlite_where=PLACED, postgresql_where=PLACED)


def downgrade() -> None:
    op.drop_index("ix_participants_folder_object", table_name="participants")
    op.drop_index("ix_objects_folder", table_name="objects")
    op.create_index("ix_objects_folder", "objects", ["tenant_id", "folder_id"], unique=False)
