"""listings by key: the folder index of objects ends with the object id

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 16:00:00

A listing reads a folder a page at a time (`id > after ORDER BY id LIMIT n`, store/bulk.py
`member_page`); with the id in the folder index each page is a range of the index, not a scan and
sort of the whole folder. The new index serves every use of the old one (same leading columns).
ix_participants_folder stays as it is: with the object id in it, SQLite's planner prefers it (covering)
to the primary key for `object_id IN (...)` lookups and scans the tenant's participants instead
(tests/test_bulk_load.py checks those plans); a page's meetings placed in a guest's folder are found by
(tenant, folder) and sorted, which costs what the folder's guest rows number, not its objects.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None



def upgrade() -> None:
    op.drop_index("ix_objects_folder", table_name="objects")
    op.create_index("ix_objects_folder", "objects", ["tenant_id", "folder_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_objects_folder", table_name="objects")
    op.create_index("ix_objects_folder", "objects", ["tenant_id", "folder_id"], unique=False)
