"""Served texts rendered ahead of the first read: what a DAV read by the session's user would render
and keep for some objects of one folder, without a request.

The same steps as a report's: the objects listed light, grouped into resources (a series with its
change exceptions), their cached texts read and only those missing or stale at the current version
loaded and rendered by `object_text`, so the text is byte for byte what that read would serve and keep.
The caller stores the entries (`session.remember_texts`); the assembly decides when (`oxsync.texts_ahead`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from oxsync.config import Settings
from oxsync.dav.context import Ctx, DavRequest
from oxsync.dav.layout import HOME_MODULES, Collection, Home, member_uids, object_text
from oxsync.model import Module
from oxsync.store.api import Principal
from oxsync.store.errors import NotFound, PermissionDenied

log = logging.getLogger("oxsync.dav.warm")

Entry = tuple[int, str, str, str]
"""(object id, variant, version, text), as `session.remember_texts` takes them."""


def missing_texts(session: Any, settings: Settings, folder_id: int, object_ids: Iterable[int]) -> list[Entry]:
    """The served texts (default variant: iCalendar, vCard 3.0) of the resources holding `object_ids`
    in `folder_id` that this session's user has no current text of, rendered now; objects gone or not
    readable are left out, one that cannot be rendered too (its first read logs it)."""
    try:
        access = session.get_folder(folder_id)
    except (NotFound, PermissionDenied):
        return []
    module = access.folder.module
    kind = next((k for k, modules in HOME_MODULES.items() if module in modules), None)
    if kind is None:
        return []
    principal = Principal(session.tx.tenant_id, session.user_id, "", "", "")
    ctx = Ctx(DavRequest("REPORT", "", {}, b"", principal, settings), session)
    collection = Collection(Home(kind, "", session.user_id), access, str(folder_id))
    objects = list(session.objects_by_ids(folder_id, sorted(set(object_ids)), True).values())
    uid_for_member = member_uids(session) if module == Module.CONTACT else None
    done: set[int] = set()
    for res in ctx.resources_for(collection, objects, light=True).values():
        if res.object_id in done:
            continue
        done.add(res.object_id)
        try:
            object_text(res, None, uid_for_member)
        except Exception as exc:  # noqa: BLE001 - left to its first read, which logs and counts it
            log.debug("served text of object %s not rendered ahead: %r", res.object_id, exc)
    return ctx.texts.take_fresh()
