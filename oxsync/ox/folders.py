"""`webdav.folders`: the folder tree, deltas and folder writes (reference §2.2).

What must hold: only contact/calendar/task folders go out; another user's private folder is type
`shared` with folder_id 3; every folder's parent is either a root (1/2/3) or also in the answer (KDE
loops forever otherwise); permissions use the long attribute names; folders that became invisible
come back as DELETE.
"""

from __future__ import annotations

from lxml import etree

from oxsync.model import FolderType, Module, Permission, Rights
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK, PRIVATE_ROOT, PUBLIC_ROOT, SHARED_ROOT, FolderAccess
from oxsync.ox import errors as E
from oxsync.ox.errors import OxFailure
from oxsync.ox.fields import bool_in, bool_out
from oxsync.ox.query import Query
from oxsync.ox.wire import attr, attrs, el, local, response, text
from oxsync.store.errors import ResyncRequired
from oxsync.store.session import UserSession

RIGHT_ATTRS = (("folderpermission", "folder"), ("objectreadpermission", "read"),
               ("objectwritepermission", "write"), ("objectdeletepermission", "delete"))
MODULES = {m.value: m for m in Module}
ROOTS = (PRIVATE_ROOT, PUBLIC_ROOT, SHARED_ROOT)


def permissions_xml(entries: list[Permission]) -> str:
    items = []
    for p in entries:
        name = "group" if p.is_group else "user"
        pairs = [(xml, getattr(p.rights, model)) for xml, model in RIGHT_ATTRS] + [("admin_flag", bool_out(p.rights.admin))]
        items.append(f"<ox:{name}{attrs(pairs)}>{p.entity}</ox:{name}>")
    return f"<ox:permissions>{''.join(items)}</ox:permissions>"


def read_permissions(element: etree._Element) -> list[Permission]:
    out = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        kind = local(child)
        if kind not in ("user", "group"):
            raise OxFailure(E.INVALID_INPUT, f"unknown permission entry {kind[:30]!r}")
        try:
            values = {model: int(attr(child, xml, "0") or 0) for xml, model in RIGHT_ATTRS}
            entity = int(text(child).strip())
        except ValueError:
            raise OxFailure(E.INVALID_INPUT, "bad number in permissions") from None
        admin = bool_in(attr(child, "admin_flag", "false") or "false")
        out.append(Permission(entity, kind == "group", Rights(admin=admin, **values)))
    return out


def folder_xml(access: FolderAccess, visible: set[int]) -> str:
    f = access.folder
    if access.shared:
        ftype, parent = "shared", SHARED_ROOT
    else:
        ftype = "private" if f.type == FolderType.PRIVATE else "public"
        parent = f.parent_id
        if f.id == GLOBAL_ADDRESS_BOOK:
            parent = PUBLIC_ROOT
        elif parent not in ROOTS and parent not in visible:  # keep the tree parent-complete
            parent = PRIVATE_ROOT if ftype == "private" else PUBLIC_ROOT
    return "".join((
        el("object_status", "CREATE"), el("title", f.title or f"no folder name {f.id}"), el("owner", f.owner),
        el("module", f.module.value if f.module else None), el("type", ftype),
        el("defaultfolder", bool_out(f.default_folder)), el("created_by", f.created_by),
        el("modified_by", f.modified_by), el("last_modified", f.last_modified), el("object_id", f.id),
        el("folder_id", parent), permissions_xml(f.permissions),
    ))


def _transferred(access: FolderAccess) -> bool:
    return access.folder.module is not None and access.folder.id not in ROOTS


def propfind(session: UserSession, q: Query) -> list[str]:
    if q.object_id is not None and not q.modes:
        access = session.get_folder(q.object_id)
        if not _transferred(access):
            raise OxFailure(E.NOT_FOUND)
        return [response(access.folder.id, folder_xml(access, {a.folder.stored_id for a in session.list_folders()}))]
    all_folders = [a for a in session.list_folders() if _transferred(a)]
    visible = {a.folder.id for a in all_folders if a.folder.id is not None}
    deletes: list[str] = []
    changed = all_folders
    if q.lastsync > 0:
        try:
            delta = session.folder_delta(session.rev_for_ms(q.lastsync))
            changed = [a for a in delta.changed if _transferred(a)]
            deletes = [response(i, el("object_id", i) + el("object_status", "DELETE"))
                       for i in delta.gone if i not in ROOTS]
        except ResyncRequired:
            pass
    out = deletes if "deleted" in q.modes else []
    if "modified" in q.modes:
        out += [response(a.folder.id, folder_xml(a, visible)) for a in changed]
    if "list" in q.modes:
        ids = "".join(el("id", i) for i in sorted(visible))
        out.append(response(0, el("object_status", "LIST") + f"<ox:object_list>{ids}</ox:object_list>"))
    return out


def _int(given: dict[str, etree._Element], name: str, required: bool = False) -> int | None:
    raw = text(given.get(name)).strip() if name in given else ""
    if not raw:
        if required:
            raise OxFailure(E.MISSING_FIELD, name)
        return None
    try:
        return int(raw)
    except ValueError:
        raise OxFailure(E.CONFLICT, f"invalid number in element {name}") from None


def proppatch(session: UserSession, given: dict[str, etree._Element], chained: dict[int, tuple[int, int]]) -> tuple[int, str]:
    method = text(given.get("method")).strip().upper() or "SAVE"
    object_id = _int(given, "object_id")
    perms = read_permissions(given["permissions"]) if "permissions" in given else None
    title = text(given["title"]) if "title" in given else None
    if method == "SAVE" and object_id is None:
        parent = _int(given, "folder_id", required=True)
        module_name = text(given.get("module")).strip().lower()
        if not module_name:
            raise OxFailure(E.MISSING_FIELD, "module")
        if module_name not in MODULES:
            raise OxFailure(E.INVALID_INPUT, f"module {module_name[:20]!r} cannot be synchronised")
        ftype = text(given.get("type")).strip().lower() or "private"
        if ftype not in ("private", "public"):
            raise OxFailure(E.INVALID_INPUT, f"folder type {ftype[:20]!r}")
        if not title or not title.strip():
            raise OxFailure(E.MISSING_FIELD, "title")
        assert parent is not None
        access = session.create_folder(parent, title, MODULES[module_name])
        if perms is not None:
            access = session.set_permissions(access.folder.stored_id, perms)
        return access.folder.stored_id, _answer(access)
    if object_id is None:
        raise OxFailure(E.MISSING_FIELD, "object_id")
    expected = _int(given, "last_modified", required=True)
    assert expected is not None
    sent = expected
    if object_id in chained and expected >= chained[object_id][0]:  # chained saves of one object (§1.5)
        expected = max(expected, chained[object_id][1])
    current = session.get_folder(object_id)
    if method == "DELETE":
        session.delete_folder(object_id, expected)
        return object_id, el("object_id", object_id)
    if method == "CLEAR":
        session.require_unchanged(object_id, expected)
        for obj in session.list_objects(object_id):
            session.delete_object(object_id, obj.stored_id)
        access = session.get_folder(object_id)
        return object_id, _answer(access)
    if method != "SAVE":
        raise OxFailure(E.CONFLICT, f"unknown method {method[:20]}")
    if current.folder.default_folder:
        title = None  # renaming a default folder is silently ignored (OX)
    target = _int(given, "folder")
    access = current
    if title is not None or (target is not None and target != current.folder.parent_id):
        access = session.update_folder(object_id, title=title, parent_id=target, expected_last_modified=expected)
        expected = None
    if perms is not None:
        access = session.set_permissions(object_id, perms, expected)
    elif access is current:
        session.require_unchanged(object_id, expected)
    chained[object_id] = (sent, access.folder.last_modified or 0)
    return object_id, _answer(access)


def _answer(access: FolderAccess) -> str:
    return el("object_id", access.folder.id) + el("last_modified", access.folder.last_modified)
