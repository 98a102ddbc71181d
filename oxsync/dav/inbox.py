"""The schedule inbox (RFC 6638 §4.1): invitations the user has not answered yet, as resources.

No iTIP delivery happens: the meeting is already in the attendee's calendar (one store object), so an
inbox item is a view of it, gone once answered or DELETEd (dismissals are kept in the user's state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oxsync.dav.context import Ctx
from oxsync.dav.layout import Box, Collection, Home, ObjectRes, PrincipalCollection, PrincipalRes, Root
from oxsync.formats.ical import appointment_to_ical
from oxsync.model import Appointment, Module
from oxsync.model.appointment import Confirmation, ParticipantKind

STATE_INBOX = "inbox"


@dataclass
class InboxItem:
    """An invitation the user has not answered yet, shown as an iTIP REQUEST (RFC 6638 §4.1).

    The meeting itself is already in the attendee's calendar (auto-schedule); the inbox item is a
    view of it that disappears once answered or DELETEd (dismissals kept in the user's state)."""

    box: Box
    obj: Any

    @property
    def name(self) -> str:
        return f"invite-{self.obj.object_id}-{self.obj.last_modified}.ics"

    @property
    def path(self) -> str:
        return self.box.path + self.name

    @property
    def etag(self) -> str:
        return f'"{self.obj.object_id}-{self.obj.last_modified}"'

    def text(self) -> str:
        body = appointment_to_ical(self.obj)
        return body.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n", 1)


Resource = Root | PrincipalCollection | PrincipalRes | Home | Collection | Box | ObjectRes | InboxItem
"""Everything a DAV path can name (see `tree.resolve`)."""


def inbox_items(ctx: Ctx, box: Box) -> list[InboxItem]:
    dismissed = ctx.session.get_state("dav", STATE_INBOX) or {}
    items = []
    for access in ctx.folders():
        folder = access.folder
        if folder.module != Module.CALENDAR or access.shared or folder.owner != ctx.user_id:
            continue
        for obj in ctx.session.list_objects(folder.id):
            if not isinstance(obj, Appointment) or obj.is_exception or not obj.participants:
                continue
            if obj.created_by == ctx.user_id or obj.organizer_id == ctx.user_id:
                continue
            mine = next((p for p in obj.participants
                         if p.kind == ParticipantKind.USER and p.entity == ctx.user_id), None)
            if mine is None or mine.confirmation != Confirmation.NONE:
                continue
            if dismissed.get(str(obj.object_id)) == obj.last_modified:
                continue
            items.append(InboxItem(box, obj))
    return items


def find_inbox_item(ctx: Ctx, box: Box, name: str) -> InboxItem | None:
    return next((i for i in inbox_items(ctx, box) if i.name == name), None)


def dismiss(ctx: Ctx, item: InboxItem) -> None:
    state = ctx.session.get_state("dav", STATE_INBOX) or {}
    live = {str(i.obj.object_id) for i in inbox_items(ctx, item.box)}
    state = {k: v for k, v in state.items() if k in live}
    state[str(item.obj.object_id)] = item.obj.last_modified
    ctx.session.put_state("dav", STATE_INBOX, state)
