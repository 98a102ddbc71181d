"""What a DAV URL names, and how store objects become DAV resources (hrefs, ETags, bodies).

Layout (every URL below /dav):
  principals/users/<login>/, principals/groups/<name>/, principals/resources/<name>/
  calendars/<login>/            calendar home: every visible calendar folder (VEVENT collection) and
                                task folder (VTODO collection), plus inbox/ and outbox/
  addressbooks/<login>/         address book home: every visible contact folder
  <home>/<segment>/<name>       an object; <segment> is the folder id or a client-chosen alias
                                (MKCALENDAR/MKCOL name, kept in the owner's protocol state)

Design choice (documented in conformance/README.md): OX keeps tasks in task folders, so a calendar
folder is a VEVENT-only collection and a task folder a VTODO-only collection. A series and its
change exceptions (separate OX objects sharing a UID) are ONE resource named after the master.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from oxsync.formats import kept
from oxsync.formats.ical import appointment_to_ical, render_inputs, task_to_ical
from oxsync.formats.icalscan import content_value, unescape
from oxsync.formats.vcard import card_inputs, contact_to_vcard, source_version
from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.appointment import Participant, ParticipantKind
from oxsync.model.folder import FolderAccess
from oxsync.model.text import xml_safe
from oxsync.store.bulk import MemberPage, ObjectVersion

BASE = "/dav"
SYNC_PREFIX = "http://oxsync/ns/sync/"
STATE_DEVICE = "dav"
STATE_ALIASES = "aliases"
CAL_MODULES = (Module.CALENDAR, Module.TASK)
HOME_MODULES = {"calendars": CAL_MODULES, "addressbooks": (Module.CONTACT,)}
"""Home kind -> the folder modules it lists as collections."""
SUFFIX = {Module.CALENDAR: ".ics", Module.TASK: ".ics", Module.CONTACT: ".vcf"}
_ID_NAME = re.compile(r"^(\d{1,18})\.(ics|vcf)$")
_VOLATILE = re.compile(r"^(DTSTAMP[;:].*|LAST-MODIFIED[;:].*)$|;PARTSTAT=[^;:]*", re.M)


class DavError(Exception):
    """An HTTP error answer; `condition` is a precondition element in Clark notation (body DAV:error)."""

    def __init__(self, status: int, condition: str | None = None, text: str = "",
                 extra: Any = None) -> None:
        super().__init__(text or condition or str(status))
        self.status = status
        self.condition = condition
        self.text = text
        self.extra = extra


# ---------------------------------------------------------------------------------------- resources


@dataclass
class Root:
    path: str = BASE + "/"


@dataclass
class PrincipalCollection:
    kind: str  # "" (all), "users", "groups", "resources"

    @property
    def path(self) -> str:
        return f"{BASE}/principals/" + (f"{self.kind}/" if self.kind else "")


@dataclass
class PrincipalRes:
    kind: str  # users / groups / resources
    id: int
    name: str
    display_name: str
    emails: list[str]
    login: str | None = None  # users only

    @property
    def path(self) -> str:
        return principal_path(self.kind, self.name)


@dataclass
class Home:
    kind: str  # "calendars" / "addressbooks"
    login: str
    user_id: int

    @property
    def path(self) -> str:
        return f"{BASE}/{self.kind}/{quote(self.login)}/"


@dataclass
class Collection:
    home: Home
    access: FolderAccess
    segment: str

    @property
    def path(self) -> str:
        return self.home.path + quote(self.segment) + "/"

    @property
    def folder_id(self) -> int:
        assert self.access.folder.id is not None
        return self.access.folder.id

    @property
    def module(self) -> Module:
        assert self.access.folder.module is not None
        return self.access.folder.module

    @property
    def component(self) -> str:
        return {Module.CALENDAR: "VEVENT", Module.TASK: "VTODO"}.get(self.module, "")


@dataclass
class Box:
    home: Home
    kind: str  # "inbox" / "outbox"

    @property
    def path(self) -> str:
        return self.home.path + self.kind + "/"


@dataclass(slots=True)
class ObjectRes:
    collection: Collection
    name: str
    master: Any
    exceptions: list[Appointment] = field(default_factory=list)
    texts: Any = None
    """The request's `texts.TextCache` (None: always render)."""

    @property
    def path(self) -> str:
        return self.collection.path + quote(self.name)

    @property
    def object_id(self) -> int:
        return int(self.master.object_id)

    @property
    def last_modified(self) -> int:
        return max([self.master.last_modified or 0, *(e.last_modified or 0 for e in self.exceptions)])

    @property
    def etag(self) -> str:
        return f'"{self.object_id}-{self.last_modified}"'


def principal_path(kind: str, name: str) -> str:
    return f"{BASE}/principals/{kind}/{quote(name)}/"


# ---------------------------------------------------------------------------------------- names

class NameCache:
    """(tenant, object id) -> resource name of objects this node wrote, so deletes reported by
    sync-collection keep the client's href after the object row is gone, for tombstones from before the
    store kept names in them (every tombstone written since carries the name, read by any node).
    Listings do not fill it (a listing of 100,000 members would hold 100,000 names here); a bounded LRU
    of the latest writes, about 256 bytes an entry."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._names: OrderedDict[tuple[int, int], str] = OrderedDict()
        self._lock = threading.Lock()  # used from every store thread

    def remember(self, tenant_id: int, object_id: int, name: str) -> None:
        key = (tenant_id, object_id)
        with self._lock:
            self._names[key] = name
            self._names.move_to_end(key)
            while len(self._names) > self.size:
                self._names.popitem(last=False)

    def get(self, tenant_id: int, object_id: int) -> str | None:
        return self._names.get((tenant_id, object_id))




def default_name(object_id: int, module: Module) -> str:
    return f"{object_id}{SUFFIX[module]}"


def id_from_name(name: str) -> int | None:
    found = _ID_NAME.match(name)
    return int(found.group(1)) if found else None


def is_master(obj: Any) -> bool:
    """A resource of its own: not a change exception (`ObjectVersion`s of listings carry the series too)."""
    if isinstance(obj, (Appointment, ObjectVersion)):  # a tuple: no union built per call
        return obj.recurrence_id in (None, obj.object_id)
    return True


def group_objects(collection: Collection, objects: list[Any]) -> list[ObjectRes]:
    """One resource per master (with its exceptions); orphan exceptions are resources of their own."""
    masters: dict[int, ObjectRes] = {}
    exceptions: list[Any] = []
    suffix = SUFFIX[collection.module]
    for obj in objects:
        if is_master(obj):
            name = obj.resource_name or f"{obj.object_id}{suffix}"  # default_name
            masters[obj.object_id] = ObjectRes(collection, name, obj)
        else:
            exceptions.append(obj)
    orphans: list[Any] = []
    for obj in exceptions:
        owner = masters.get(obj.recurrence_id)
        if owner is not None:
            owner.exceptions.append(obj)
        else:
            orphans.append(obj)
    result = list(masters.values())
    for obj in orphans:
        name = obj.resource_name or default_name(obj.object_id, collection.module)
        result.append(ObjectRes(collection, name, obj))
    return result


def group_page(collection: Collection, page: MemberPage) -> tuple[list[ObjectRes], list[ObjectRes]]:
    """(the resources of the page's masters, its orphan exceptions as resources of their own), each in
    id order: what `group_objects` gives for these ids over the whole folder. A master gets its
    exceptions from any page (`page.family`); an exception whose master is a visible master outside
    the page is left to the master's page."""
    masters = [v for v in page.versions if is_master(v)]
    exceptions = sorted((v for v in (*page.versions, *page.family) if not is_master(v)), key=lambda v: v.object_id)
    grouped = group_objects(collection, [*masters, *exceptions])
    listed_elsewhere = {v.object_id for v in page.family if is_master(v)}
    in_page = {v.object_id for v in page.versions}
    orphans = [res for res in grouped[len(masters):]
               if res.object_id in in_page and res.master.recurrence_id not in listed_elsewhere]
    return grouped[:len(masters)], orphans


_UNFOLD = re.compile(r"\r?\n[ \t]")
_ADDRESS_LINE = re.compile(r"^(?:ORGANIZER|ATTENDEE)[;:][^\r\n]*?:mailto:([^\r\n:]+)\r?$", re.I | re.M)
PREFETCHED_ADDRESSES = 64
"""At most this many ORGANIZER/ATTENDEE addresses of a body are looked up together before it is parsed
(one statement); any others, and any the scan misread, are looked up one by one as before."""


def body_addresses(text: str) -> list[str]:
    """The mailto: addresses of a calendar body's ORGANIZER and ATTENDEE lines, as the parser will ask
    for them (a cheap scan: what it misses is looked up when asked)."""
    return body_addresses_and_uid(text)[0]


_UID_LINE = re.compile(r"^UID[;:][^\r\n]*", re.I | re.M)


def body_addresses_and_uid(text: str) -> tuple[list[str], str | None]:
    """`body_addresses`, and the value of the body's first UID line as the parser reads a UID (None: no
    such line): the UID the write will check, looked up with the addresses (a scan: a UID read otherwise
    by the parse is only looked up again)."""
    unfolded = _UNFOLD.sub("", text)
    found = _UID_LINE.search(unfolded)
    uid = unescape(content_value(found.group(0).rstrip("\r"))).strip() if found else None
    return [m.strip() for m in _ADDRESS_LINE.findall(unfolded)][:PREFETCHED_ADDRESSES], uid


PrincipalAnswer = tuple[str, int] | None
"""What the store's `find_principal(s)` answers for an address: ("user" | "resource", id) or None."""


def principal_participant(key: str, found: PrincipalAnswer) -> Participant | None:
    """The internal participant (user or resource) of a directory answer for address `key`."""
    if found is None:
        return None
    kind = ParticipantKind.USER if found[0] == "user" else ParticipantKind.RESOURCE
    return Participant(kind=kind, entity=found[1], email=key)


def resolver(session: Any, prefetch: list[str] | None = None, answers: dict[str, PrincipalAnswer] | None = None,
             uid: str | None = None):
    """ATTENDEE/ORGANIZER address -> internal participant (user or resource) or None. `prefetch`: the
    addresses the parse will ask for, looked up in one statement up front (with the objects holding `uid`,
    which the write's conflict check then reads from the session); `answers`: addresses already looked up
    (lowercased), not asked again."""
    cache: dict[str, Participant | None] = {key: principal_participant(key, found)
                                            for key, found in (answers or {}).items()}
    if prefetch or uid is not None:
        cache.update({key: principal_participant(key, found)
                      for key, found in session.find_principals(prefetch or [], uid=uid).items()})

    def resolve(address: str) -> Participant | None:
        key = address.strip().lower()
        if key not in cache:
            cache[key] = principal_participant(key, session.find_principal(key))
        return cache[key]

    return resolve


def object_text(res: ObjectRes, vcard_version: str | None = None, uid_for_member: Any = None) -> str:
    """The iCalendar or vCard body of a resource: the client's kept text patched with what changed since
    (formats.kept), or our rendering of an object no DAV client wrote; a vCard in `vcard_version`
    (None: 3.0), verbatim when that is the version the client wrote. Characters XML cannot carry are replaced
    (rows stored before the store checked text may hold them; reports embed this text in XML).
    Served from the request's text cache when this version of the resource was rendered before (a
    distribution list is always rendered: its members' UIDs live in other objects)."""
    obj = res.master
    cacheable = res.texts is not None and not (isinstance(obj, Contact) and obj.distribution_list is not None)
    variant = "ics" if res.collection.module != Module.CONTACT else f"vcf{vcard_version or ''}"
    if cacheable:
        found = res.texts.get(res, variant)
        if found is not None:
            return found
        if isinstance(obj, ObjectVersion):  # listed light, not cached: load it (with the others missing)
            res.texts.hydrate(res, variant)
            obj = res.master
            if isinstance(obj, Contact) and obj.distribution_list is not None:
                cacheable = False
    text = _render(res, vcard_version, uid_for_member)
    if cacheable:
        res.texts.put(res, variant, text)
    return text


def _render(res: ObjectRes, vcard_version: str | None, uid_for_member: Any) -> str:
    obj = res.master
    if isinstance(obj, Appointment):
        return xml_safe(kept.kept_text(obj.extra, appointment_to_ical(obj, res.exceptions)))
    if isinstance(obj, Task):
        return xml_safe(kept.kept_text(obj.extra, task_to_ical(obj)))
    assert isinstance(obj, Contact)
    written = source_version(obj.extra.get(kept.SOURCE, ""))
    version = vcard_version or "3.0"  # RFC 6352: 3.0 unless asked (a 3.0-only client may read a 4.0 card)
    text = contact_to_vcard(obj, version, uid_for_member=uid_for_member)
    return xml_safe(kept.kept_text(obj.extra, text) if version == written else text)


def written_text(res: ObjectRes, inputs: tuple[Any, ...] | None, baseline: str) -> None:
    """A PUT's own resource, read back: when it renders from the same `inputs` as the body the client
    sent (formats.ical.render_inputs, formats.vcard.card_inputs), its rendering equals that body's
    `baseline` (but for the stamp lines of iCalendar, which kept.patch does not compare); so its text
    is the kept text against the baseline itself, put in the request's text cache instead of rendering
    the object again (`_render`'s result, exactly). A vCard's baseline is in the version it was written in."""
    obj = res.master
    if res.texts is None or inputs is None:
        return
    if isinstance(obj, Appointment | Task) and render_inputs(obj, res.exceptions) == inputs:
        res.texts.put(res, "ics", xml_safe(kept.kept_text(obj.extra, baseline)))
    elif isinstance(obj, Contact) and card_inputs(obj) == inputs:
        version = source_version(obj.extra.get(kept.SOURCE, ""))
        if version is not None:
            res.texts.put(res, f"vcf{version}", xml_safe(kept.kept_text(obj.extra, baseline)))


def schedule_tag(res: ObjectRes) -> str:
    """The Schedule-Tag (RFC 6638 §3.2.10): ignores PARTSTAT and DTSTAMP, so an attendee's reply does
    not change it."""
    text = object_text(res).replace("\r\n ", "")
    digest = hashlib.sha1(_VOLATILE.sub("", text).encode("utf-8")).hexdigest()[:16]
    return f'"{digest}"'


def member_uids(session: Any):
    """Distribution list member -> its contact's UID (written as urn:uuid:), or None (mailto:)."""
    def uid_for_member(member: Any) -> str | None:
        if member.contact_id is None or member.folder_id is None:
            return None
        try:
            return session.get_object(member.folder_id, member.contact_id).uid or None
        except Exception:  # noqa: BLE001 - a member the viewer cannot see is written as mailto:
            return None
    return uid_for_member
