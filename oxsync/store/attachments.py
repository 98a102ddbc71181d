"""Attachments on contacts, appointments and tasks: size-capped, counted in quota.

Rights follow the parent object: reading needs read access to it, adding or removing needs write
access (checked by the session's `Viewer`). Attaching changes the parent's last_modified, as in OX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update

from oxsync.model.common import AttachmentMeta
from oxsync.model.timeutil import datetime_from_ms
from oxsync.store import objects as object_ops
from oxsync.store import schema as s
from oxsync.store.errors import InvalidData, NotFound
from oxsync.store.membership import record_everywhere
from oxsync.store.tx import Tx
from oxsync.store.validate import check_text
from oxsync.store.viewer import Viewer


@dataclass
class Attachment:
    meta: AttachmentMeta
    content: bytes


class Attachments:
    """The attachments the viewer's user may read or change, in the viewer's transaction."""

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.tx = viewer.tx
        self.user_id = viewer.user_id

    def add_attachment(self, folder_id: int, object_id: int, filename: str, mimetype: str, content: bytes,
                       rtf_flag: bool = False, expected_last_modified: int | None = None) -> AttachmentMeta:
        tx = self.tx
        limit = tx.settings.limits.max_attachment_bytes
        if len(content) > limit:
            raise InvalidData(f"attachment is {len(content)} bytes, over the {limit} byte limit", field="attachment")
        if not filename.strip():
            raise InvalidData("attachment file name is empty", field="filename")
        filename = check_text(filename, "filename", tx.settings.limits)
        mimetype = check_text(mimetype, "mimetype", tx.settings.limits)
        self.viewer.writable(folder_id, object_id, "write", expected_last_modified)
        object_ops.charge(tx, self.user_id, len(content))
        attachment_id = tx.next_id("attachment")
        ms = tx.stamp.ms
        tx.conn.execute(insert(s.attachments).values(
            tenant_id=tx.tenant_id, id=attachment_id, object_id=object_id, filename=filename[:255],
            mimetype=mimetype or "application/octet-stream", size=len(content), rtf_flag=rtf_flag,
            created_by=self.user_id, creation_ms=ms, content=content,
        ))
        _mark(tx, object_id, True)
        record_everywhere(tx, [object_id], "update", actor=self.user_id)
        return AttachmentMeta(attachment_id, filename, mimetype, len(content), datetime_from_ms(ms), rtf_flag)

    def get_attachment(self, folder_id: int, object_id: int, attachment_id: int) -> Attachment:
        self.viewer.get_object(folder_id, object_id)
        a = s.attachments
        row = self.tx.conn.execute(select(a).where(and_(
            a.c.tenant_id == self.tx.tenant_id, a.c.object_id == object_id, a.c.id == attachment_id
        ))).one_or_none()
        if row is None:
            raise NotFound(f"attachment {attachment_id} does not exist on object {object_id}")
        meta = AttachmentMeta(row.id, row.filename, row.mimetype, row.size, datetime_from_ms(row.creation_ms), row.rtf_flag)
        return Attachment(meta, bytes(row.content))

    def delete_attachment(self, folder_id: int, object_id: int, attachment_id: int) -> None:
        tx = self.tx
        self.viewer.writable(folder_id, object_id, "write", None)
        a = s.attachments
        key = and_(a.c.tenant_id == tx.tenant_id, a.c.object_id == object_id, a.c.id == attachment_id)
        row = tx.conn.execute(select(a.c.size, a.c.created_by).where(key)).one_or_none()
        if row is None:
            raise NotFound(f"attachment {attachment_id} does not exist on object {object_id}")
        tx.conn.execute(delete(a).where(key))
        _mark(tx, object_id, exists().where(and_(a.c.tenant_id == tx.tenant_id, a.c.object_id == object_id)))
        object_ops.charge(tx, row.created_by, -int(row.size))
        record_everywhere(tx, [object_id], "update", actor=self.user_id)


def _mark(tx: Tx, object_id: int, value: Any) -> None:
    """Keep `objects.has_attachments` true exactly while the object has attachments (`value`: True after
    an add, whether any is left after a delete): object reads skip the attachment read where it is false."""
    o = s.objects
    tx.conn.execute(update(o).where(and_(o.c.tenant_id == tx.tenant_id, o.c.id == object_id)).values(has_attachments=value))
