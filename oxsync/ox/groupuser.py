"""`webdav.groupuser`: users, groups and resources (reference §2.6), PROPFIND only.

The caller's own entry carries `myidentity` and `context_id` (= tenant id; the UDP REGISTER needs
both). Users come with their global-address-book contact fields; deleted principals since `lastsync`
come back as DELETE. `objectstatus` duplicates `object_status` for OXtenders older than 2008-07.
"""

from __future__ import annotations

from lxml import etree

from oxsync.model import Contact
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.ox.fields_contact import contact_xml
from oxsync.ox.wire import NS_DECL, el, text
from oxsync.store.session import UserSession

SEARCH_FIELDS = ("display_name", "first_name", "last_name", "email1", "email2", "email3", "categories")


def _status(kind: str) -> str:
    return el("object_status", kind) + el("objectstatus", kind)


def _matches(pattern: str, values: list[str]) -> bool:
    if pattern in ("", "*"):
        return True
    needle = pattern.replace("*", "").lower()
    return any(needle in (v or "").lower() for v in values)


def propfind(session: UserSession, given: dict[str, etree._Element]) -> str:
    lastsync = 0
    has_lastsync = "lastsync" in given
    if has_lastsync:
        try:
            lastsync = max(0, int(text(given["lastsync"]).strip()))
        except ValueError:
            lastsync = 0
    deleted = session.deleted_principals(lastsync) if has_lastsync and lastsync > 0 else []
    parts = []
    if "user" in given:
        parts.append(f"<ox:users>{_users(session, text(given['user']).strip(), lastsync, deleted)}</ox:users>")
    if "group" in given:
        parts.append(f"<ox:groups>{_groups(session, text(given['group']).strip(), has_lastsync, lastsync, deleted)}</ox:groups>")
    if "resource" in given:
        parts.append(f"<ox:resources>{_resources(session, text(given['resource']).strip(), has_lastsync, lastsync, deleted)}"
                     "</ox:resources>")
    return (f"<D:response {NS_DECL}><D:propstat><D:prop>{''.join(parts)}</D:prop></D:propstat>"
            "<D:status>HTTP/1.1 200 OK</D:status><D:responsedescription>HTTP/1.1 200 OK</D:responsedescription>"
            "</D:response>")


def _users(session: UserSession, pattern: str, lastsync: int, deleted: list) -> str:
    contacts = {c.object_id: c for c in session.list_objects(GLOBAL_ADDRESS_BOOK) if isinstance(c, Contact)}
    groups = session.groups()
    member_of: dict[int, list[int]] = {}
    for g in groups:
        for m in g.members:
            member_of.setdefault(m, []).append(g.id)
    out = []
    for user in session.users():
        contact = contacts.get(user.contact_id) if user.contact_id else None
        modified = max(user.last_modified or 0, (contact.last_modified or 0) if contact else 0)
        if modified <= lastsync and lastsync:
            continue
        if not _matches(pattern, [user.display_name, user.first_name, user.last_name, user.email]
                        + ([getattr(contact, f) for f in SEARCH_FIELDS] if contact else [])):
            continue
        members = "".join(el("member", g) for g in [0, *member_of.get(user.id, [])])
        mine = el("myidentity", "true") + el("context_id", session.tx.tenant_id) if user.id == session.user_id else ""
        fields = contact_xml(contact) if contact else el("displayname", user.display_name)
        out.append(
            f"<ox:user>{el('uid', user.id)}{el('object_id', user.contact_id)}{el('folder_id', GLOBAL_ADDRESS_BOOK)}"
            f'<ox:email1 isInternal="true">{_esc(user.email)}</ox:email1>{el("last_modified", modified)}'
            f"<ox:memberingroups>{members}</ox:memberingroups>{mine}{_status('CREATE')}"
            f"{_without_email1(fields)}</ox:user>")
    for kind, pid, contact_id, ms in deleted:
        if kind == "user":
            out.append(f"<ox:user>{el('uid', pid)}{el('object_id', contact_id)}{el('last_modified', ms)}"
                       f"{_status('DELETE')}</ox:user>")
    return "".join(out)


def _without_email1(fields: str) -> str:
    start = fields.find("<ox:email1>")
    if start < 0:
        return fields
    end = fields.find("</ox:email1>", start)
    return fields[:start] + fields[end + len("</ox:email1>"):]


def _esc(value: str) -> str:
    from xml.sax.saxutils import escape

    from oxsync.model.text import xml_safe

    return escape(xml_safe(value or ""))


def _groups(session: UserSession, pattern: str, has_lastsync: bool, lastsync: int, deleted: list) -> str:
    out = []
    for g in session.groups():
        if has_lastsync and (g.last_modified or 0) <= lastsync and lastsync:
            continue
        if not has_lastsync and not _matches(pattern, [g.name, g.display_name]):
            continue
        members = "".join(el("memberuid", m) for m in g.members)
        out.append(f"<ox:group>{_status('CREATE')}{el('uid', g.id)}{el('last_modified', g.last_modified)}"
                   f"{el('displayname', g.display_name or g.name)}<ox:members>{members}</ox:members></ox:group>")
    out += [f"<ox:group>{_status('DELETE')}{el('uid', pid)}{el('last_modified', ms)}</ox:group>"
            for kind, pid, _, ms in deleted if kind == "group"]
    return "".join(out)


def _resources(session: UserSession, pattern: str, has_lastsync: bool, lastsync: int, deleted: list) -> str:
    out = []
    for r in session.resources():
        if has_lastsync and (r.last_modified or 0) <= lastsync and lastsync:
            continue
        if not has_lastsync and not _matches(pattern, [r.name, r.display_name, r.email]):
            continue
        out.append(f"<ox:resource>{_status('CREATE')}{el('uid', r.id)}{el('last_modified', r.last_modified)}"
                   f"{el('displayname', r.display_name or r.name)}{el('email1', r.email)}</ox:resource>")
    out += [f"<ox:resource>{_status('DELETE')}{el('uid', pid)}{el('last_modified', ms)}</ox:resource>"
            for kind, pid, _, ms in deleted if kind == "resource"]
    return "".join(out)
