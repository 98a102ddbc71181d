"""The live properties, declared as data: one `Property` per qualified name says whether DAV:allprop
lists it, how to read it and, for the two clients may change, how to set it (after Xandikos' `Property`).

Live properties are computed by the server (RFC 4918 §15); every other property a client PROPPATCHes is a
dead property, kept per user (`Ctx.dead_props`). A getter receives the request's `Ctx` (the session, the
request and its settings, the directory read once) and the resource, and returns None when the resource
has no such property (reported 404 in the propstat), a string (element text), or a list of child elements.
Rights are mapped from the folder's effective OX permissions (see `privileges`); the ACL view is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from lxml import etree

from oxsync.dav.context import Ctx
from oxsync.dav.inbox import InboxItem, Resource
from oxsync.dav.layout import (
    BASE,
    SYNC_PREFIX,
    Box,
    Collection,
    Home,
    ObjectRes,
    PrincipalCollection,
    PrincipalRes,
    Root,
    principal_path,
    schedule_tag,
)
from oxsync.dav.xml import APPLE, CALDAV, CARDDAV, CS, DAV, element, href, qn
from oxsync.model import Module
from oxsync.model.folder import FolderAccess

D = lambda name: qn(DAV, name)  # noqa: E731
C = lambda name: qn(CALDAV, name)  # noqa: E731
CR = lambda name: qn(CARDDAV, name)  # noqa: E731

Value = str | list[etree._Element] | None
"""A property's value: None (the resource has none), element text, or child elements."""
Getter = Callable[[Ctx, Resource], Value]


@dataclass
class FolderChange:
    """What one PROPPATCH asks of a collection, collected by the setters and applied at once (RFC 4918
    §9.2: all or nothing): the folder's own title and color (every dialect sees them), and the user's
    dead properties."""

    title: str | None = None
    color: str | None = None
    dead: dict[str, str | None] = field(default_factory=dict)


Setter = Callable[[FolderChange, Collection, str | None], None]


@dataclass(frozen=True)
class Property:
    """One live property: its qualified name (Clark notation), whether DAV:allprop lists it (RFC 4918
    lets computed, expensive ones be left out), how to read it, and how to set it (None: protected,
    PROPPATCH answers 403)."""

    name: str
    get: Getter
    allprop: bool = False
    set: Setter | None = None
    per_member: bool = False
    """Its value differs between the object members of one collection (ETag, last-modified, what the
    body says). Every other getter must give all object members of a collection the same value:
    listings compute those once per collection (`dav/members.py`)."""

    @property
    def protected(self) -> bool:
        return self.set is None


def _el(tag: str, *kids: etree._Element) -> etree._Element:
    return element(tag, children=kids)


# ------------------------------------------------------------------------------ rights


def privileges(res: Resource) -> list[str]:
    """DAV privileges of the current user on `res`, from the folder's effective OX rights."""
    if isinstance(res, ObjectRes):
        res = res.collection
    if isinstance(res, Collection):
        return folder_privileges(res.access, res.module != Module.CONTACT)
    if isinstance(res, Home | Root):
        return [D("read"), D("bind"), D("unbind"), D("write-properties"), D("write-content"), D("write")]
    if isinstance(res, Box):
        if res.kind == "outbox":
            return [D("read"), C("schedule-send"), C("schedule-send-freebusy"), C("schedule-send-invite"),
                    C("schedule-send-reply")]
        return [D("read"), D("unbind"), C("schedule-deliver"), C("schedule-query-freebusy"),
                C("schedule-deliver-invite"), C("schedule-deliver-reply")]
    return [D("read")]


def folder_privileges(access: FolderAccess, calendar: bool) -> list[str]:
    r = access.rights
    out: list[str] = []
    if r.read >= 2:
        out.append(D("read"))
    if calendar and r.can_see_folder:
        out.append(C("read-free-busy"))
    if r.write >= 2:
        out.append(D("write-content"))
    if r.can_create_objects:
        out.append(D("bind"))
    if r.delete >= 2:
        out.append(D("unbind"))
    if (r.folder >= 128 or r.admin) and not access.folder.is_system:
        out.append(D("write-properties"))
    if all(p in out for p in (D("write-content"), D("bind"), D("unbind"), D("write-properties"))):
        out.append(D("write"))
    if r.admin:
        out.extend([D("read-acl"), D("read-current-user-privilege-set")])
    return out


def _privilege_elements(names: list[str]) -> list[etree._Element]:
    return [_el(D("privilege"), element(name)) for name in names]


def _cups(ctx: Ctx, res: Resource) -> Value:
    return _privilege_elements(privileges(res))


def _acl(ctx: Ctx, res: Resource) -> Value:
    """Read-only view of the folder's permission entries (user, group, group 0 = all users)."""
    me = _el(D("ace"), _el(D("principal"), href(ctx.me().path)),
             _el(D("grant"), *_privilege_elements(privileges(res))), element(D("protected")))
    if not isinstance(res, Collection):
        return [me]
    aces = [me]
    users = {u.id: u.login for u in ctx.users()}
    groups = {g.id: g.name for g in ctx.groups()}
    for entry in res.access.folder.permissions:
        if entry.is_group and entry.entity == 0:
            who = element(D("authenticated"))
        elif entry.is_group and entry.entity in groups:
            who = href(principal_path("groups", groups[entry.entity]))
        elif not entry.is_group and entry.entity in users:
            if entry.entity == ctx.user_id:
                continue
            who = href(principal_path("users", users[entry.entity]))
        else:
            continue
        names = folder_privileges(FolderAccess(res.access.folder, entry.rights), res.module != Module.CONTACT)
        if names:
            aces.append(_el(D("ace"), _el(D("principal"), who), _el(D("grant"), *_privilege_elements(names)),
                            element(D("protected"))))
    return aces


# ------------------------------------------------------------------------------ common


def _me(ctx: Ctx, res: Resource) -> Value:
    return [href(ctx.me().path)]


def _principal_collections(ctx: Ctx, res: Resource) -> Value:
    return [href(f"{BASE}/principals/")]


def _home_set(kind: str) -> Getter:
    def get(ctx: Ctx, res: Resource) -> Value:
        if isinstance(res, PrincipalRes) and res.kind != "users":
            return None
        login = res.login if isinstance(res, PrincipalRes) else ctx.me().login
        return [href(f"{BASE}/{kind}/{login}/")]
    return get


def _resourcetype(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, ObjectRes | InboxItem):  # not a collection
        return []
    kinds = [element(D("collection"))]
    if isinstance(res, PrincipalRes):
        kinds.append(element(D("principal")))
    elif isinstance(res, Collection):
        kinds.append(element(CR("addressbook") if res.module == Module.CONTACT else C("calendar")))
        if res.access.shared:
            kinds.append(element(qn(CS, "shared")))
    elif isinstance(res, Box):
        kinds.append(element(C("schedule-inbox" if res.kind == "inbox" else "schedule-outbox")))
    return kinds


def _displayname(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, PrincipalRes):
        return res.display_name
    if isinstance(res, Collection):  # a default folder's own name for this user (PROPPATCH), else its title
        return ctx.dead_props(res.folder_id).get(D("displayname")) or res.access.folder.title
    if isinstance(res, Home):
        return res.login
    if isinstance(res, Box):
        return res.kind.capitalize()
    if isinstance(res, PrincipalCollection):
        return res.kind or "principals"
    return None


def _owner(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, Collection):
        owner = res.access.folder.owner
        p = ctx.user_principal(owner) if owner is not None else None
        return [href(p.path)] if p is not None else []
    if isinstance(res, Home | Box):
        return [href(ctx.me().path)]
    if isinstance(res, PrincipalRes):
        return [href(res.path)]
    return None


REPORTS = {
    "calendar": [C("calendar-query"), C("calendar-multiget"), C("free-busy-query"), D("sync-collection"),
                 D("expand-property")],
    "addressbook": [CR("addressbook-query"), CR("addressbook-multiget"), D("sync-collection"),
                    D("expand-property")],
    "other": [D("principal-property-search"), D("principal-search-property-set"), D("expand-property")],
}


def _reports(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, Collection):
        names = REPORTS["addressbook" if res.module == Module.CONTACT else "calendar"]
    else:
        names = REPORTS["other"]
    return [_el(D("supported-report"), _el(D("report"), element(n))) for n in names]


# ------------------------------------------------------------------------------ collections


def _ctag(ctx: Ctx, res: Resource) -> Value:
    return f"{SYNC_PREFIX}{ctx.folder_revision(res.folder_id)}" if isinstance(res, Collection) else None


def _components(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, Collection) and res.module != Module.CONTACT:
        comp = element(C("comp"))
        comp.set("name", res.component)
        return [comp]
    if isinstance(res, Box):
        out = []
        for name in ("VEVENT", "VTODO", "VFREEBUSY"):
            comp = element(C("comp"))
            comp.set("name", name)
            out.append(comp)
        return out
    return None


CollectionGetter = Callable[[Ctx, Collection], Value]


def _calendar_only(getter: CollectionGetter) -> Getter:
    def get(ctx: Ctx, res: Resource) -> Value:
        if isinstance(res, Collection) and res.module != Module.CONTACT:
            return getter(ctx, res)
        return None
    return get


def _card_only(getter: CollectionGetter) -> Getter:
    def get(ctx: Ctx, res: Resource) -> Value:
        if isinstance(res, Collection) and res.module == Module.CONTACT:
            return getter(ctx, res)
        return None
    return get


def _color(ctx: Ctx, res: Collection) -> Value:
    color = res.access.folder.color
    return color or None


def _calendar_data_types(ctx: Ctx, res: Collection) -> Value:
    kind = element(C("calendar-data"))
    kind.set("content-type", "text/calendar")
    kind.set("version", "2.0")
    return [kind]


def _address_data_types(ctx: Ctx, res: Collection) -> Value:
    out = []
    for version in ("3.0", "4.0"):
        kind = element(CR("address-data-type"))
        kind.set("content-type", "text/vcard")
        kind.set("version", version)
        out.append(kind)
    return out


def _max_size(ctx: Ctx, res: Collection) -> Value:
    return str(ctx.req.settings.dav.max_resource_bytes)


def _transp(ctx: Ctx, res: Collection) -> Value:
    return [element(C("opaque"))]


# ------------------------------------------------------------------------------ objects


def _etag(ctx: Ctx, res: Resource) -> Value:
    return res.etag if isinstance(res, ObjectRes | InboxItem) else None


def _content_type(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, ObjectRes):
        if res.collection.module == Module.CONTACT:
            return "text/vcard; charset=utf-8"
        return f"text/calendar; charset=utf-8; component={res.collection.component.lower()}"
    return "text/calendar; charset=utf-8" if isinstance(res, InboxItem) else None


def _last_modified(ctx: Ctx, res: Resource) -> Value:
    if isinstance(res, ObjectRes):
        return format_datetime(datetime.fromtimestamp(res.last_modified / 1000, UTC), usegmt=True)
    return None


def _schedule_tag(ctx: Ctx, res: Resource) -> Value:
    return schedule_tag(res) if isinstance(res, ObjectRes) and res.collection.module == Module.CALENDAR else None


# ------------------------------------------------------------------------------ principals


def _addresses(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, PrincipalRes):
        return None
    return [href(f"mailto:{e}") for e in res.emails] + [href(res.path)]


def _cutype(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, PrincipalRes):
        return None
    return {"users": "INDIVIDUAL", "groups": "GROUP", "resources": "ROOM"}[res.kind]


def _box_url(kind: str) -> Getter:
    def get(ctx: Ctx, res: Resource) -> Value:
        if isinstance(res, PrincipalRes) and res.kind == "users" and res.id == ctx.user_id:
            return [href(f"{ctx.home('calendars').path}{kind}/")]
        return None
    return get


def _default_calendar(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, Box) or res.kind != "inbox":
        return None
    for c in ctx.collections(res.home):
        if c.module == Module.CALENDAR and c.access.folder.default_folder and not c.access.shared:
            return [href(c.path)]
    return None


def _principal_url(ctx: Ctx, res: Resource) -> Value:
    return [href(res.path)] if isinstance(res, PrincipalRes) else None


def _group_members(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, PrincipalRes) or res.kind != "groups":
        return None if not isinstance(res, PrincipalRes) else []
    group = next((g for g in ctx.groups() if g.id == res.id), None)
    logins = {u.id: u.login for u in ctx.users()}
    return [href(principal_path("users", logins[m])) for m in (group.members if group else []) if m in logins]


def _group_membership(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, PrincipalRes):
        return None
    if res.kind != "users":
        return []
    return [href(principal_path("groups", g.name)) for g in ctx.groups() if res.id in g.members]


def _email_set(ctx: Ctx, res: Resource) -> Value:
    if not isinstance(res, PrincipalRes):
        return None
    return [element(qn(CS, "email-address"), e) for e in res.emails]


# ------------------------------------------------------------------------------ setters


def _set_displayname(change: FolderChange, res: Collection, value: str | None) -> None:
    if res.access.folder.default_folder:  # a default folder keeps its name: the user's own is a dead property
        change.dead[D("displayname")] = value
    else:
        change.title = value or None


def _set_color(change: FolderChange, res: Collection, value: str | None) -> None:
    change.color = value or ""


# ------------------------------------------------------------------------------ the table

TABLE = (
    # DAV:allprop lists these, in this order
    Property(D("resourcetype"), _resourcetype, allprop=True),
    Property(D("displayname"), _displayname, allprop=True, set=_set_displayname),
    Property(D("getetag"), _etag, allprop=True, per_member=True),
    Property(D("getcontenttype"), _content_type, allprop=True),
    Property(D("getlastmodified"), _last_modified, allprop=True, per_member=True),
    Property(D("owner"), _owner, allprop=True),
    Property(D("current-user-principal"), _me, allprop=True),
    Property(D("sync-token"), _ctag, allprop=True),
    Property(qn(CS, "getctag"), _ctag, allprop=True),
    Property(C("supported-calendar-component-set"), _components, allprop=True),
    Property(qn(APPLE, "calendar-color"), _calendar_only(_color), allprop=True, set=_set_color),
    Property(C("calendar-home-set"), _home_set("calendars"), allprop=True),
    Property(CR("addressbook-home-set"), _home_set("addressbooks"), allprop=True),
    Property(C("calendar-user-address-set"), _addresses, allprop=True),
    Property(D("principal-URL"), _principal_url, allprop=True),
    # asked for by name only
    Property(D("principal-collection-set"), _principal_collections),
    Property(D("current-user-privilege-set"), _cups),
    Property(D("acl"), _acl),
    Property(D("supported-report-set"), _reports),
    Property(D("group-member-set"), _group_members),
    Property(D("group-membership"), _group_membership),
    Property(C("calendar-user-type"), _cutype),
    Property(C("schedule-inbox-URL"), _box_url("inbox")),
    Property(C("schedule-outbox-URL"), _box_url("outbox")),
    Property(C("schedule-default-calendar-URL"), _default_calendar),
    Property(qn(CS, "email-address-set"), _email_set),
    Property(C("supported-calendar-data"), _calendar_only(_calendar_data_types)),
    Property(C("max-resource-size"), _calendar_only(_max_size)),
    Property(C("schedule-calendar-transp"), _calendar_only(_transp)),
    Property(C("schedule-tag"), _schedule_tag, per_member=True),
    Property(CR("supported-address-data"), _card_only(_address_data_types)),
    Property(CR("max-resource-size"), _card_only(_max_size)),
)

PROPS: dict[str, Property] = {prop.name: prop for prop in TABLE}
ALLPROP = [prop.name for prop in TABLE if prop.allprop]
"""DAV:allprop answers these (RFC 4918 lets computed, expensive properties be left out)."""


def get_prop(ctx: Ctx, res: Resource, name: str) -> Value:
    """The live property `name` of `res` (None: not a live property, or `res` has none)."""
    prop = PROPS.get(name)
    return None if prop is None else prop.get(ctx, res)
