"""What one DAV request works with: the request as read (`DavRequest`) and `Ctx`, its view of the store.

`Ctx` lives for one request and one store transaction (it runs on the store thread pool); it caches
the directory and the folder list so that a PROPFIND of a home costs a handful of queries. Paths are
resolved to resources above it, in `tree.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from oxsync.config import Settings
from oxsync.dav.layout import (
    HOME_MODULES,
    STATE_ALIASES,
    STATE_DEVICE,
    Collection,
    DavError,
    Home,
    NameCache,
    ObjectRes,
    PrincipalRes,
    group_objects,
    group_page,
    id_from_name,
    is_master,
)
from oxsync.dav.texts import TextCache
from oxsync.model import Appointment, Module
from oxsync.model.folder import FolderAccess
from oxsync.store.api import Principal
from oxsync.store.errors import InvalidData, NotFound

STATE_PROPS = "props"
MAX_DEAD_PROPS = 32
MAX_DEAD_VALUE = 4096


@dataclass
class DavRequest:
    """What a handler needs from the HTTP request (read on the reactor thread, used on the pool)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    principal: Principal
    settings: Settings
    names: NameCache = field(default_factory=NameCache)
    """Shared by all requests of one DAV resource (see model.NameCache)."""
    preparsed: Any = None
    """A PUT's body parsed before its write transaction (`dav.preparse`), taken by the handler once."""
    written_ahead: Any = None
    """(item, its kept baseline and render inputs) of that early parse, once it is used (`dav.preparse`)."""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def depth(self) -> str:
        return self.header("depth", "infinity").strip().lower()


def _drain(items: list[Any]) -> Iterator[Any]:
    """Yield and let go of the list's items in order (as `multistatus.drain`)."""
    items.reverse()
    while items:
        yield items.pop()


def _user_principal(u: Any) -> PrincipalRes:
    return PrincipalRes("users", u.id, u.login, u.display_name or u.login,
                        [u.email, *u.aliases] if u.email else list(u.aliases), u.login)


@dataclass
class Ctx:
    req: DavRequest
    session: Any
    _folders: list[FolderAccess] | None = None
    _aliases: dict[str, int] | None = None
    _directory: dict[str, Any] = field(default_factory=dict)
    _texts: TextCache | None = None

    @property
    def tenant_id(self) -> int:
        return self.req.principal.tenant_id

    @property
    def user_id(self) -> int:
        return self.req.principal.user_id

    # ---------------------------------------------------------------- directory

    def users(self) -> list[Any]:
        if "users" not in self._directory:
            self._directory["users"] = self.session.users()
        return self._directory["users"]

    def groups(self) -> list[Any]:
        if "groups" not in self._directory:
            self._directory["groups"] = self.session.groups()
        return self._directory["groups"]

    def resources(self) -> list[Any]:
        if "resources" not in self._directory:
            self._directory["resources"] = self.session.resources()
        return self._directory["resources"]

    def principal(self, kind: str, name: str) -> PrincipalRes | None:
        name = name.lower()
        if kind == "users":
            for u in self.users():
                if u.login.lower() == name and u.active:
                    return _user_principal(u)
        elif kind == "groups":
            for g in self.groups():
                if g.name.lower() == name:
                    return PrincipalRes("groups", g.id, g.name, g.display_name or g.name, [])
        elif kind == "resources":
            for r in self.resources():
                if r.name.lower() == name:
                    return PrincipalRes("resources", r.id, r.name, r.display_name or r.name, [r.email] if r.email else [])
        return None

    def user_principal(self, user_id: int) -> PrincipalRes | None:
        if "users" not in self._directory:  # one account's row, not the whole directory (every request asks for me())
            try:
                u = self.session.user(user_id)
            except NotFound:
                return None
            return _user_principal(u) if u.active else None
        for u in self.users():
            if u.id == user_id:
                return self.principal("users", u.login)
        return None

    def me(self) -> PrincipalRes:
        found = self.user_principal(self.user_id)
        if found is None:
            raise DavError(403, text="account not in directory")
        return found

    # ---------------------------------------------------------------- folders

    def folders(self) -> list[FolderAccess]:
        if self._folders is None:
            self._folders = [f for f in self.session.list_folders() if f.folder.module is not None]
        return self._folders

    def aliases(self) -> dict[str, int]:
        if self._aliases is None:
            state = self.session.get_state(STATE_DEVICE, STATE_ALIASES) or {}
            self._aliases = {str(k): int(v) for k, v in state.items()}
        return self._aliases

    def save_alias(self, kind: str, segment: str, folder_id: int) -> None:
        """Remember a client-chosen collection name, per home: a calendar and an address book of one
        user may share a name (keys are `<home kind>/<segment>`; older plain keys are still read)."""
        aliases = dict(self.aliases())
        visible = {f.folder.id for f in self.session.list_folders()} | {folder_id}
        aliases = {k: v for k, v in aliases.items() if v in visible}
        aliases[f"{kind}/{segment}"] = folder_id
        self.session.put_state(STATE_DEVICE, STATE_ALIASES, aliases)
        self._aliases = aliases

    def dead_props(self, folder_id: int) -> dict[str, str]:
        """Client-set properties without a store field (calendar-order, descriptions...), kept in the
        user's protocol state: per user, which is what clients expect of display settings."""
        if "dead" not in self._directory:
            self._directory["dead"] = self.session.get_state(STATE_DEVICE, STATE_PROPS) or {}
        return dict(self._directory["dead"].get(str(folder_id), {}))

    def save_dead_props(self, folder_id: int, values: dict[str, str | None]) -> None:
        state = self.session.get_state(STATE_DEVICE, STATE_PROPS) or {}
        visible = {str(f.folder.id) for f in self.folders()}
        state = {k: v for k, v in state.items() if k in visible or k == str(folder_id)}
        props = dict(state.get(str(folder_id), {}))
        for name, value in values.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        if len(props) > MAX_DEAD_PROPS:
            raise DavError(507, text="too many properties")
        state[str(folder_id)] = props
        self.session.put_state(STATE_DEVICE, STATE_PROPS, state)
        self._directory["dead"] = state

    def folder_revision(self, folder_id: int) -> int:
        """The folder's newest change revision (CTag, sync-token), read once per request."""
        key = f"rev/{folder_id}"
        if key not in self._directory:
            self._directory[key] = self.session.folder_revision(folder_id)[0]
        return int(self._directory[key])

    def segment_of(self, folder_id: int) -> str:
        for key, fid in self.aliases().items():
            if fid == folder_id:
                return key.rpartition("/")[2]
        return str(folder_id)

    def home(self, kind: str) -> Home:
        me = self.me()
        return Home(kind, me.login or me.name, self.user_id)

    def collections(self, home: Home) -> list[Collection]:
        modules = HOME_MODULES[home.kind]
        return [Collection(home, f, self.segment_of(f.folder.stored_id)) for f in self.folders()
                if f.folder.module in modules]

    def collection(self, home: Home, segment: str) -> Collection | None:
        folder_id = self.aliases().get(f"{home.kind}/{segment}") or self.aliases().get(segment)
        if folder_id is None and segment.isdigit() and len(segment) < 12:
            folder_id = int(segment)
        if folder_id is None:
            return None
        if self._folders is None:  # one folder, not the whole list (the hot path of PUT/GET)
            try:
                access = self.session.get_folder(folder_id)
            except (NotFound, InvalidData):
                return None
            if access.folder.module not in HOME_MODULES[home.kind]:
                return None
            return Collection(home, access, self.segment_of(folder_id))
        for c in self.collections(home):
            if c.folder_id == folder_id:
                return c
        return None

    # ---------------------------------------------------------------- objects

    @property
    def texts(self) -> TextCache:
        if self._texts is None:
            self._texts = TextCache(self.session, self._hydrate)
        return self._texts

    def flush_texts(self) -> None:
        """Keep the texts rendered for this answer for the next one (no-op when none were read)."""
        if self._texts is not None:
            self._texts.flush()

    def _with_texts(self, resources: list[ObjectRes]) -> list[ObjectRes]:
        """Attach the request's text cache and read the cached texts of all of them at once."""
        for res in resources:
            res.texts = self.texts
        self.texts.prefetch(resources)
        return resources

    def _hydrate(self, resources: list[ObjectRes]) -> None:
        """Replace the `ObjectVersion`s of light resources by their objects (one bulk read per folder):
        their text was not cached, so it must be rendered."""
        by_folder: dict[int, list[ObjectRes]] = {}
        for res in resources:
            by_folder.setdefault(res.collection.folder_id, []).append(res)
        for folder_id, group in by_folder.items():
            ids = [m.object_id for res in group for m in (res.master, *res.exceptions)]
            full = self.session.objects_by_ids(folder_id, ids)
            for res in group:
                res.master = full.get(res.master.object_id, res.master)  # gone meanwhile: rendering fails, skipped
                res.exceptions = [full[e.object_id] for e in res.exceptions if e.object_id in full]

    def members(self, collection: Collection, light: bool = False, after: int = 0,
                orphans_last: bool = True) -> Iterator[ObjectRes]:
        """Every member with an id above `after`, read from the store a page of
        `listing_page_rows` rows at a time in id order (store `member_page`) and grouped into
        resources page by page, so a listing holds one page whatever the folder's size. `light`:
        resources of `ObjectVersion`s (href, ETag, last-modified); else with the request's text cache,
        loaded window by window as their texts are needed (see texts.TextCache). Masters in id order,
        then the exceptions whose master is not visible here (`orphans_last`, as `group_objects` lists a
        folder) or each in its id's place."""
        rows = self.req.settings.dav.listing_page_rows
        series = collection.module != Module.CONTACT  # an address book holds no series
        orphans: list[ObjectRes] = []
        while True:
            page = self.session.member_page(collection.folder_id, after, rows, series)
            masters, lone = group_page(collection, page)
            page_last = page.last
            del page
            if orphans_last:
                orphans.extend(lone)  # rare: exceptions of series the viewer cannot see
            elif lone:
                masters = sorted([*masters, *lone], key=lambda res: res.object_id)
            yield from _drain(masters if light else self._with_texts(masters))
            if page_last is None:
                break
            after = page_last
        yield from _drain(orphans if light else self._with_texts(orphans))

    def members_in_range(self, collection: Collection, start_ms: int | None, end_ms: int | None,
                         light: bool = False) -> list[ObjectRes]:
        """Members that may overlap [start_ms, end_ms) by the store's time-range index (a superset);
        `light`: as versions, loaded only if their text is not cached (see `_hydrate`)."""
        objects = self.session.list_objects_in_range(collection.folder_id, start_ms, end_ms, light)
        return self._with_texts(group_objects(collection, objects))

    def members_decided(self, collection: Collection, start_ms: int | None, end_ms: int | None,
                        kind: str) -> tuple[list[ObjectRes], set[int]]:
        """`members_in_range` (light) and the object ids whose time-range match on `kind` the store's
        exact index rows decide (they need no parsing)."""
        objects, decided = self.session.objects_in_range(collection.folder_id, start_ms, end_ms, True, kind)
        return self._with_texts(group_objects(collection, objects)), decided

    def find_object(self, collection: Collection, name: str) -> ObjectRes | None:
        return self.find_objects(collection, [name]).get(name)

    def find_object_by_id(self, collection: Collection, object_id: int) -> ObjectRes | None:
        """The resource holding a visible object of the collection whose id is known (a PUT's own object:
        what `find_object` answers for its name, without reading the name's rows first)."""
        obj = self.session.objects_by_ids(collection.folder_id, [object_id]).get(object_id)
        return None if obj is None else self.resources_for(collection, [obj]).get(object_id)

    def find_objects(self, collection: Collection, names: list[str], light: bool = False) -> dict[str, ObjectRes]:
        """name -> resource for the names that exist: by the client's resource name, else by our default
        `<id>.ics|.vcf` name (unless that object carries another name). A fixed number of store reads;
        `light`: resources of versions, loaded only if their text is not cached."""
        session = self.session
        found: dict[str, Any] = session.objects_by_resource_names(collection.folder_id, names, light)
        by_default = {n: i for n in names if n not in found and (i := id_from_name(n)) is not None}
        if by_default:
            loaded = session.objects_by_ids(collection.folder_id, by_default.values(), light)
            for name, object_id in by_default.items():
                obj = loaded.get(object_id)
                if obj is not None and not (obj.resource_name and obj.resource_name != name):
                    found[name] = obj
        resources = self.resources_for(collection, list(found.values()), light)
        return {name: resources[obj.object_id] for name, obj in found.items()}

    def resources_for(self, collection: Collection, objects: list[Any], light: bool = False) -> dict[int, ObjectRes]:
        """object id -> the resource holding it: a series with all its change exceptions (they share the
        master's UID and href), an exception whose master is not visible on its own. One store read for
        all series involved."""
        def family_of(obj: Any) -> int:  # a master's own id (a series, or master-less overrides' first)
            return obj.object_id if is_master(obj) else obj.recurrence_id

        series = {family_of(o) for o in objects  # versions do not tell whether a master has exceptions
                  if collection.module != Module.CONTACT  # an address book holds no series
                  and (light or (isinstance(o, Appointment) and (not is_master(o) or o.change_exceptions)))}
        families: dict[int, list[Any]] = {}
        if series:
            for member in self.session.series_members(collection.folder_id, series, light, objects if light else ()):
                families.setdefault(family_of(member), []).append(member)
        out: dict[int, ObjectRes] = {}
        for obj in objects:
            family = families.get(family_of(obj))
            if not family or obj.object_id not in {m.object_id for m in family}:
                family = [obj]
            for res in group_objects(collection, family):
                for member in (res.master, *res.exceptions):
                    if member.object_id == obj.object_id:
                        out[obj.object_id] = res
        self._with_texts(list(out.values()))
        return out

    def object_res(self, collection: Collection, obj: Any) -> ObjectRes:
        """The resource of `obj` with all its exceptions (a master's exceptions share its UID)."""
        return self.resources_for(collection, [obj])[obj.object_id]
