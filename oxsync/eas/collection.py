"""One collection of one Sync: SyncKey checks, client commands, windowed export, replay.

What must hold (MS-ASCMD 2.2.3.166):
- `SyncKey 0` primes state and returns a key and no items; repeating it is harmless;
- the previous key gets the previous answer again, byte for byte (same items, same new key, same
  ServerIds for replayed Adds); any other unknown key is Status 3;
- an Add whose ClientId was already processed returns the ServerId given then and creates nothing;
- a window ends with MoreAvailable; the rest of the pass is kept as id sets in the state, so later
  windows load only the items they send; a pass ends at the revision it started from, then the next
  delta catches whatever changed meanwhile;
- an item the device wrote itself is not echoed back (its last_modified is remembered);
- a Change to an item the server changed since the device's last sync is a conflict: server wins
  (Status 7, server version sent) unless Options/Conflict says client wins;
- narrowing FilterType deletes (SoftDelete) the items that fell out of the window;
- MoveItems adds the moved item to the destination's known set: it never comes back as an Add.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oxsync.eas import state
from oxsync.eas.exportcache import ExportCache
from oxsync.eas.mapping.calendar import exception_changes, occurrence_date
from oxsync.eas.mapping.common import ClassMapping, InvalidValue, MapContext
from oxsync.eas.mapping.registry import BY_MODULE, FILL_DEFAULTS
from oxsync.eas.passfilter import filter_reads_data, in_window, is_exception
from oxsync.eas.wbxml import E, Element, WBXMLError, decode, encode_sealed
from oxsync.model import Appointment, Module
from oxsync.render import render_one
from oxsync.store.bulk import ObjectVersion
from oxsync.store.errors import (
    AppointmentConflict,
    Conflict,
    InvalidData,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ResyncRequired,
)
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.sync")


@dataclass
class CollectionRequest:
    sync_key: str
    collection_id: str
    get_changes: bool | None = None
    window: int = 100
    filter_type: int | None = None
    body_type: int = 1
    truncation: int | None = None
    all_or_none: bool = False
    preview: int = 0
    conflict: int = 1
    supported: list[str] | None = None
    commands: Element | None = None
    from_cache: bool = False
    body_prefs: list[tuple[int, int | None, bool, int]] = field(default_factory=list)
    """Every BodyPreference in the device's order: (type, TruncationSize, AllOrNone, Preview) (mail uses all)."""
    mime_support: int = 0
    mime_truncation: int | None = None
    """AirSync MIMETruncation 0-8 as a byte limit for a MIME body (None: all)."""
    deletes_as_moves: bool = True


@dataclass
class Outcome:
    element: Element | None
    changed: bool
    """True when the response carries something (new key, items, responses): not a no-op."""
    folder_id: int | None = None
    more: bool = False
    job: Any = None
    """A mail collection still to be run on the IMAP pool (oxsync/eas/mailsync.py)."""
    mail_watch: tuple[str, tuple[int, int, int]] | None = None
    """A mail collection's IMAP folder and its (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) when it was synced:
    what the node's watcher compares with while a hanging Sync waits."""


def new_state(key: str) -> dict[str, Any]:
    return {"key": key, "prev_key": None, "base": 0, "base_ms": 0, "known": "", "pending": None, "echo": {},
            "filter": 0, "supported": None, "cids": {}, "answer": None}


def _collection(req: CollectionRequest, key: str, status: int) -> Element:
    return E("AirSync:Collection", E("AirSync:SyncKey", key), E("AirSync:CollectionId", req.collection_id),
             E("AirSync:Status", str(status)))


def status_only(req: CollectionRequest, status: int) -> Outcome:
    return Outcome(_collection(req, req.sync_key, status), True)


@dataclass
class Exporter:
    """Builds one window of server changes; keeps the loaded objects of this request."""

    session: UserSession
    folder_id: int
    mapping: ClassMapping
    ctx: MapContext
    cache: dict[int, Any] = field(default_factory=dict)

    def load(self, object_id: int) -> Any | None:
        if object_id in self.cache:
            return self.cache[object_id]
        try:
            return self.session.get_object(self.folder_id, object_id)
        except NotFound:
            return None

    def preload(self, object_ids: list[int]) -> None:
        """Read the window's items in one bulk store read (those not already held)."""
        missing = [i for i in object_ids if i not in self.cache]
        if missing:
            self.cache.update(self.session.objects_by_ids(self.folder_id, missing))


def _window_ids(sets: dict[str, Any], window: int) -> list[int]:
    """Ids of the changes and adds the next window will send (deletes need no object)."""
    used = sum(len(sets[name]) for name in ("delete", "soft"))
    wanted: list[int] = []
    for name in ("change", "add"):
        for object_id in sets[name].in_order():
            if used >= window:
                return wanted
            wanted.append(object_id)
            used += 1
    return wanted


class CollectionSync:
    """Processes one Collection element of a Sync request: inside the request's write transaction, or,
    with no client commands, inside a read transaction with its state staged (`state.StagedStates`)."""

    def __init__(self, session: UserSession, device_id: str, module: Module | None, folder_id: int | None,
                 ctx: MapContext, max_client_ids: int, cache: ExportCache | None = None,
                 states: state.StateStore | None = None) -> None:
        self.session = session
        self.states: state.StateStore = states if states is not None else session
        """Where the collection's state is read and written (staged when the Sync runs in a read transaction)."""
        self.cache = cache
        self.device_id = device_id
        self.module = module
        self.folder_id = folder_id
        self.ctx = ctx
        self.max_client_ids = max_client_ids
        self.mapping = BY_MODULE[module] if module is not None else None

    def state_key(self, collection_id: str) -> str:
        return state.collection_key(collection_id)

    # ------------------------------------------------------------------ entry

    def run(self, req: CollectionRequest, budget: int) -> tuple[Outcome, int]:
        """Returns the outcome and how many items of the window budget were used."""
        key = self.state_key(req.collection_id)
        saved = self.states.get_state(self.device_id, key)
        if req.from_cache:
            if saved is None:
                return status_only(req, 3), 0
            req.sync_key = saved["key"]
        if req.sync_key == "0" and saved is not None and saved.get("prev_key") == "0" and not saved.get("known") \
                and not saved.get("pending") and not saved.get("base"):
            # iOS fires a second SyncKey 0 right after the first: join it (same key) instead of resetting
            saved["filter"] = req.filter_type if req.filter_type is not None else saved.get("filter", 0)
            saved["supported"] = req.supported if req.supported is not None else saved.get("supported")
            self._save(key, saved)
            return Outcome(_collection(req, saved["key"], 1), True, self.folder_id), 0
        if req.sync_key == "0":
            st = new_state(state.new_sync_key())
            if req.filter_type is not None:
                st["filter"] = req.filter_type
            st["supported"] = req.supported
            st["prev_key"] = "0"
            self._save(key, st)
            return Outcome(_collection(req, st["key"], 1), True, self.folder_id), 0
        if saved is None:
            return status_only(req, 3), 0
        if req.sync_key == saved.get("prev_key") and saved.get("answer"):
            try:
                return Outcome(decode(base64.b64decode(saved["answer"])), True, self.folder_id), 0
            except (WBXMLError, ValueError):
                return status_only(req, 3), 0
        if req.sync_key != saved.get("key"):
            log.info("unknown SyncKey", extra={"event": "eas.bad_synckey", "device": self.device_id,
                                                "collection": req.collection_id})
            return status_only(req, 3), 0
        st = saved
        responses = E("AirSync:Responses")
        if req.commands is not None and self.mapping is not None and self.folder_id is not None:
            self._client_commands(req, st, responses)
        elif req.commands is not None:
            for add in req.commands.findall("AirSync:Add"):
                responses.append(E("AirSync:Add", E("AirSync:ClientId", add.findtext("AirSync:ClientId", "")),
                                   E("AirSync:Status", "6")))
        commands = E("AirSync:Commands")
        more = False
        used = 0
        get_changes = req.get_changes if req.get_changes is not None else True
        if get_changes and self.mapping is not None and self.folder_id is not None:
            try:
                more, used = self._export(req, st, commands, min(req.window, budget))
            except ResyncRequired:
                return status_only(req, 3), 0
        if not responses.children and not commands.children and not more:
            if req.filter_type is not None:
                st["filter"] = req.filter_type
            self._save(key, st)
            return Outcome(_collection(req, st["key"], 1), False, self.folder_id), used
        new_key = state.next_sync_key(st["key"])
        answer = _collection(req, new_key, 1)
        if more:
            answer.append(E("AirSync:MoreAvailable"))
        if commands.children:
            answer.append(commands)
        if responses.children:
            answer.append(responses)
        st["prev_key"], st["key"] = st["key"], new_key
        st["answer"] = base64.b64encode(encode_sealed(answer)).decode("ascii")
        self._save(key, st)
        return Outcome(answer, True, self.folder_id, more), used

    def _save(self, key: str, st: dict[str, Any]) -> None:
        if self.device_id not in state.NOT_PERSISTED_DEVICES:
            self.states.put_state(self.device_id, key, st)

    # ------------------------------------------------------------------ client -> server

    def _client_commands(self, req: CollectionRequest, st: dict[str, Any], responses: Element) -> None:
        assert req.commands is not None and self.folder_id is not None and self.mapping is not None
        known = state.IdSet.parse(st.get("known"))
        echo: dict[str, int] = st.setdefault("echo", {})
        cids: dict[str, str] = st.setdefault("cids", {})
        supported = frozenset(st["supported"]) if st.get("supported") is not None else None
        for cmd in req.commands:
            if cmd.tag == "AirSync:Add":
                responses.append(self._add(cmd, known, echo, cids))
            elif cmd.tag == "AirSync:Change":
                result = self._change(cmd, req, st, known, echo, supported)
                if result is not None:
                    responses.append(result)
            elif cmd.tag == "AirSync:Delete":
                result = self._delete(cmd, known, echo)
                if result is not None:
                    responses.append(result)
            elif cmd.tag == "AirSync:Fetch":
                responses.append(self._fetch(cmd))
        while len(cids) > self.max_client_ids:
            cids.pop(next(iter(cids)))
        st["known"] = known.dump()

    def _add(self, cmd: Element, known: state.IdSet, echo: dict[str, int], cids: dict[str, str]) -> Element:
        assert self.folder_id is not None and self.mapping is not None
        client_id = cmd.findtext("AirSync:ClientId", "")[:64]
        out = E("AirSync:Add", E("AirSync:ClientId", client_id))
        if client_id and client_id in cids:
            out.append(E("AirSync:ServerId", cids[client_id]))
            out.append(E("AirSync:Status", "1"))
            return out
        data = cmd.find("AirSync:ApplicationData")
        if data is None:
            out.append(E("AirSync:Status", "6"))
            return out
        try:
            self.ctx.exceptions = []
            obj = FILL_DEFAULTS[self.mapping.name](self.mapping.from_eas(data, None, self.ctx))
            client_uid = obj.extra.get("ClientUid") if isinstance(obj, Appointment) else None
            if client_uid and f"uid:{client_uid}" in cids:
                server_id = cids[f"uid:{client_uid}"]
                cids[client_id] = server_id
                return E("AirSync:Add", E("AirSync:ClientId", client_id), E("AirSync:ServerId", server_id),
                         E("AirSync:Status", "1"))
            existing = None
            if isinstance(obj, Appointment):
                obj.ignore_conflicts = True
                if not obj.uid:
                    obj.uid = str(uuid.uuid4())
                else:
                    existing = self.session.find_by_uid(self.folder_id, obj.uid)
            if existing is not None:  # iOS "add to calendar" of a known invitation: update instead
                obj.object_id, obj.last_modified = existing.object_id, None
                saved = self.session.update_object(self.folder_id, obj)
            else:
                saved = self.session.create_object(self.folder_id, obj)
            self._apply_exceptions(saved, echo)
        except (InvalidValue, InvalidData, Conflict, AppointmentConflict) as exc:
            log.info("Add rejected", extra={"event": "eas.add_rejected", "reason": str(exc), "device": self.device_id})
            out.append(E("AirSync:Status", "6"))
            return out
        except PermissionDenied:
            out.append(E("AirSync:Status", "6"))
            return out
        except QuotaExceeded:
            out.append(E("AirSync:Status", "9"))
            return out
        server_id = str(saved.object_id)
        known.add(saved.stored_id)
        echo[server_id] = saved.last_modified or 0
        if client_id:
            cids[client_id] = server_id
            if isinstance(saved, Appointment) and saved.extra.get("ClientUid"):
                cids[f"uid:{saved.extra['ClientUid']}"] = server_id
        out.append(E("AirSync:ServerId", server_id))
        out.append(E("AirSync:Status", "1"))
        return out

    def _apply_exceptions(self, master: Any, echo: dict[str, int]) -> None:
        if not self.ctx.exceptions or not isinstance(master, Appointment) or master.object_id is None:
            return
        assert self.folder_id is not None
        for day, elem in self.ctx.exceptions:
            changes = exception_changes(master, elem, self.ctx)
            changes.ignore_conflicts = True
            saved = self.session.change_occurrence(self.folder_id, master.object_id, day, changes)
            echo[str(saved.object_id)] = saved.last_modified or 0
        self.ctx.exceptions = []

    @staticmethod
    def _object_id(cmd: Element) -> int | None:
        text = cmd.findtext("AirSync:ServerId", "")
        return int(text) if text.isdigit() and len(text) < 19 else None

    def _change(self, cmd: Element, req: CollectionRequest, st: dict[str, Any], known: state.IdSet,
                echo: dict[str, int], supported: frozenset[str] | None) -> Element | None:
        assert self.folder_id is not None and self.mapping is not None
        server_id = cmd.findtext("AirSync:ServerId", "")
        object_id = self._object_id(cmd)

        def status(code: int) -> Element:
            return E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:Status", str(code)))

        if object_id is None:
            return status(8)
        try:
            current = self.session.get_object(self.folder_id, object_id)
        except NotFound:
            return status(8)
        server_changed = (current.last_modified or 0) > int(st.get("base_ms", 0)) and \
            echo.get(server_id) != current.last_modified
        if server_changed and req.conflict != 0:
            return status(7)
        data = cmd.find("AirSync:ApplicationData")
        instance = cmd.findtext("AirSync:InstanceId") or cmd.findtext("AirSyncBase:InstanceId")
        try:
            self.ctx.exceptions = []
            if instance and isinstance(current, Appointment) and data is not None:
                day = occurrence_date(current, instance)
                changes = exception_changes(current, E("Calendar:Exception", *data.children), self.ctx)
                changes.ignore_conflicts = True
                made = self.session.change_occurrence(self.folder_id, object_id, day, changes)
                echo[str(made.object_id)] = made.last_modified or 0
                saved = self.session.get_object(self.folder_id, object_id)
            elif data is not None:
                obj = self.mapping.from_eas(data, current, self.ctx, supported)
                if isinstance(obj, Appointment):
                    obj.ignore_conflicts = True
                saved = self.session.update_object(self.folder_id, obj)
                had_exceptions = bool(self.ctx.exceptions)
                self._apply_exceptions(saved, echo)
                saved = self.session.get_object(self.folder_id, object_id) if had_exceptions else saved
            else:
                return status(6)
        except (InvalidValue, InvalidData, Conflict, AppointmentConflict, PermissionDenied) as exc:
            log.info("Change rejected", extra={"event": "eas.change_rejected", "reason": str(exc)})
            return status(6)
        except NotFound:
            return status(8)
        known.add(object_id)
        echo[server_id] = saved.last_modified or 0
        return None

    def _delete(self, cmd: Element, known: state.IdSet, echo: dict[str, int]) -> Element | None:
        assert self.folder_id is not None
        server_id = cmd.findtext("AirSync:ServerId", "")
        object_id = self._object_id(cmd)
        instance = cmd.findtext("AirSync:InstanceId") or cmd.findtext("AirSyncBase:InstanceId")
        try:
            if object_id is None:
                raise NotFound(server_id)
            if instance:
                current = self.session.get_object(self.folder_id, object_id)
                if not isinstance(current, Appointment):
                    raise InvalidData("InstanceId on a non-calendar item")
                self.session.delete_occurrence(self.folder_id, object_id, occurrence_date(current, instance))
                echo[server_id] = self.session.get_object(self.folder_id, object_id).last_modified or 0
                return None
            self.session.delete_object(self.folder_id, object_id)
        except NotFound:
            if object_id is not None and object_id not in known:
                return None  # already gone for this device: a replayed Delete is a success
            known.discard(object_id or -1)
            return E("AirSync:Delete", E("AirSync:ServerId", server_id), E("AirSync:Status", "8"))
        except (PermissionDenied, InvalidData, InvalidValue):
            return E("AirSync:Delete", E("AirSync:ServerId", server_id), E("AirSync:Status", "6"))
        known.discard(object_id)
        return None

    def _fetch(self, cmd: Element) -> Element:
        assert self.folder_id is not None and self.mapping is not None
        server_id = cmd.findtext("AirSync:ServerId", "")
        object_id = self._object_id(cmd)
        obj = None
        if object_id is not None:
            try:
                obj = self.session.get_object(self.folder_id, object_id)
            except NotFound:
                obj = None
        if obj is None:
            return E("AirSync:Fetch", E("AirSync:ServerId", server_id), E("AirSync:Status", "8"))
        data = render_one("eas", obj, self._to_eas, folder_id=self.folder_id)
        if data is None:  # cannot be converted: Status 6 for this item only
            return E("AirSync:Fetch", E("AirSync:ServerId", server_id), E("AirSync:Status", "6"))
        return E("AirSync:Fetch", E("AirSync:ServerId", server_id), E("AirSync:Status", "1"), data)

    def _to_eas(self, obj: Any) -> Element:
        assert self.mapping is not None
        return self.mapping.to_eas(obj, self.ctx)

    def _to_wbxml(self, obj: Any) -> Element:
        """A window's item: its ApplicationData as sealed bytes (read by nothing but the encoder)."""
        assert self.mapping is not None
        return self.mapping.to_wbxml(obj, self.ctx)

    # ------------------------------------------------------------------ server -> client

    def _heads_without_series(self, candidates: list[Any]) -> set[int]:
        """Ids heading change exceptions that are not series (master-less occurrences, docs/dav.md);
        heads listed only as `ObjectVersion`s are loaded (whether they are series is in their data)."""
        assert self.folder_id is not None
        heads = {o.recurrence_id for o in candidates if is_exception(o)}
        if not heads:
            return set()
        known: dict[int, Any] = {o.stored_id: o for o in candidates if o.object_id in heads and isinstance(o, Appointment)}
        missing = heads - set(known)
        if missing:
            known.update(self.session.objects_by_ids(self.folder_id, missing))
        return {head for head, obj in known.items() if isinstance(obj, Appointment) and not obj.is_series}

    def plan(self, st: dict[str, Any], filter_type: int, exporter: Exporter, window: int = 0) -> dict[str, Any]:
        """A new pass: classify everything changed since the base revision (and, if the filter
        changed, everything in the folder) into add / change / delete / soft-delete id sets.

        Where the filter decides nothing from the objects' data (`filter_reads_data`), a pass larger
        than one `window` is classified from `ObjectVersion`s (id, version, series: nothing decoded), and
        each window decodes only the items it sends; a smaller pass is decoded here, once, for its window."""
        assert self.folder_id is not None
        light = not filter_reads_data(self.module, filter_type)
        delta = self.session.object_delta(self.folder_id, int(st.get("base", 0)),
                                          decode_up_to=window if light else None)
        known = state.IdSet.parse(st.get("known"))
        echo: dict[str, int] = st.get("echo") or {}
        now = datetime.now(UTC)
        adds, changes, deletes, soft = state.IdSet(), state.IdSet(), state.IdSet(), state.IdSet()
        candidates = list(delta.changed)
        really_changed = {o.object_id for o in candidates}
        if filter_type != st.get("filter", 0):
            seen = {o.object_id for o in candidates}
            everything = self.session.list_versions(self.folder_id) if light else self.session.list_objects(self.folder_id)
            candidates += [o for o in everything if o.object_id not in seen]
        standalone = self._heads_without_series(candidates)
        for obj in candidates:
            object_id = obj.object_id
            if is_exception(obj) and obj.recurrence_id not in standalone:
                # change exceptions travel inside their series (Exceptions), never as items of their own;
                # occurrences stored without their series (an invitation to some instances only) are
                # items of their own, like the first of them that heads them
                if echo.get(str(object_id)) != obj.last_modified and obj.recurrence_id in known:
                    changes.add(obj.recurrence_id)
                continue
            if not isinstance(obj, ObjectVersion):
                exporter.cache[object_id] = obj
            visible = light or in_window(obj, filter_type, now)
            if object_id in known:
                if not visible:
                    soft.add(object_id)
                elif echo.get(str(object_id)) != obj.last_modified and object_id in really_changed:
                    changes.add(object_id)
            elif visible:
                adds.add(object_id)
        for object_id in delta.gone:
            if object_id in known:
                deletes.add(object_id)
        st["echo"] = {}
        st["filter"] = filter_type
        if self.cache is not None and exporter.cache:
            self.cache.put(self._cache_key(), delta.revision, dict(exporter.cache))
        return {"rev": delta.revision, "ms": delta.last_modified, "add": adds.dump(), "change": changes.dump(),
                "delete": deletes.dump(), "soft": soft.dump()}

    def _export(self, req: CollectionRequest, st: dict[str, Any], commands: Element, window: int) -> tuple[bool, int]:
        assert self.folder_id is not None and self.mapping is not None
        exporter = Exporter(self.session, self.folder_id, self.mapping, self.ctx)
        filter_type = req.filter_type if req.filter_type is not None else st.get("filter", 0)
        pending = st.get("pending")
        if pending is None or filter_type != st.get("filter", 0):
            pending = self.plan(st, filter_type, exporter, window)
        elif self.cache is not None:
            cached = self.cache.get(self._cache_key(), pending["rev"])
            if cached is not None and self.session.folder_revision(self.folder_id)[0] <= pending["rev"]:
                exporter.cache = cached
        known = state.IdSet.parse(st.get("known"))
        sets = {name: state.IdSet.parse(pending.get(name)) for name in ("delete", "soft", "change", "add")}
        exporter.preload(_window_ids(sets, window))
        used = 0
        for name in ("delete", "soft", "change", "add"):
            for object_id in sets[name].in_order():
                if used >= window:
                    break
                sets[name].discard(object_id)
                if name in ("delete", "soft"):
                    tag = "AirSync:Delete" if name == "delete" else "AirSync:SoftDelete"
                    commands.append(E(tag, E("AirSync:ServerId", str(object_id))))
                    known.discard(object_id)
                    used += 1
                    continue
                obj = exporter.load(object_id)
                if obj is None:
                    continue  # gone meanwhile: the next pass reports it if the device knew it
                data = render_one("eas", obj, self._to_wbxml, folder_id=self.folder_id, object_id=object_id)
                if data is None:
                    # left out of this pass (logged, counted); the device keeps what it had, and the
                    # object comes again only when it changes, so it is not retried forever
                    continue
                tag = "AirSync:Add" if object_id not in known else "AirSync:Change"
                commands.append(E(tag, E("AirSync:ServerId", str(object_id)), data))
                known.add(object_id)
                used += 1
        for name, ids in sets.items():
            pending[name] = ids.dump()
        st["known"] = known.dump()
        more = any(len(ids) for ids in sets.values())
        if not more and self.cache is not None:
            self.cache.drop(self._cache_key())
        if more:
            st["pending"] = pending
        else:
            st["pending"] = None
            st["base"], st["base_ms"] = pending["rev"], pending["ms"]
        return more, used

    def _cache_key(self) -> tuple[int, int, str, int]:
        return (self.session.tx.tenant_id, self.session.user_id, self.device_id, self.folder_id or 0)

    def estimate(self, st: dict[str, Any], filter_type: int | None) -> int:
        """How many items the next Syncs would send (GetItemEstimate); changes no state."""
        if self.mapping is None or self.folder_id is None:
            return 0
        copy = {**st}
        wanted = filter_type if filter_type is not None else st.get("filter", 0)
        pending = copy.get("pending")
        if pending is None or wanted != st.get("filter", 0):
            pending = self.plan(copy, wanted, Exporter(self.session, self.folder_id, self.mapping, self.ctx))
        return sum(len(state.IdSet.parse(pending.get(n))) for n in ("delete", "soft", "change", "add"))


def mark_moved(session: UserSession, device_id: str, source: str, target: str, object_id: int,
               last_modified: int | None) -> None:
    """MoveItems: the device already has the item in `target`; forget it in `source`."""
    for collection, present in ((source, False), (target, True)):
        key = state.collection_key(collection)
        st = session.get_state(device_id, key)
        if st is None:
            continue
        known = state.IdSet.parse(st.get("known"))
        if present:
            known.add(object_id)
        else:
            known.discard(object_id)
        st["known"] = known.dump()
        if present:
            st.setdefault("echo", {})[str(object_id)] = last_modified or 0
        session.put_state(device_id, key, st)
