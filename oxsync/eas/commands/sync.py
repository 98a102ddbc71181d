"""Sync: parse the request (or reuse the cached one), run each collection, hang if asked.

- An empty body, or `Partial` with only some collections, reuses the last full request of the
  device (without its Commands, with the current keys); with nothing cached the answer is Status 13.
- `Wait` (minutes) / `HeartbeatInterval` (seconds) park the request when nothing is to be sent;
  it is answered as soon as a commit touches one of its folders, or with an empty body at the end.
  Both given = Status 4, out of range = Status 14 with `Limit`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imapclient.exceptions import IMAPClientError
from twisted.internet.defer import Deferred, succeed

from oxsync.eas import mailfolders, mailsync, state
from oxsync.eas.collection import CollectionRequest, CollectionSync, Outcome, status_only
from oxsync.eas.draftsend import send_drafts
from oxsync.eas.mapping.common import MapContext
from oxsync.eas.protocol import MAIL_FOLDERS
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element, WBXMLError, decode, encode
from oxsync.mail import MailUnavailable
from oxsync.model import Appointment, Module
from oxsync.store.errors import NotFound, StoreError
from oxsync.store.protocol_state import MAX_COLLECTION
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.sync")
MAIL_IDS = frozenset(server_id for server_id, _, _ in MAIL_FOLDERS)


class SyncError(Exception):
    def __init__(self, status: int, limit: int | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.limit = limit


@dataclass
class SyncPlan:
    collections: list[CollectionRequest] = field(default_factory=list)
    wait_seconds: int | None = None
    window: int | None = None
    cacheable: Element | None = None
    """The request to remember for later empty/partial Syncs (Commands stripped)."""


def _int(text: str | None, default: int | None = None) -> int | None:
    if text is None or not text.strip().lstrip("-").isdigit():
        return default
    return int(text)


MIME_TRUNCATION = (0, 4096, 5120, 7168, 10240, 20480, 51200, 102400, None)
"""AirSync MIMETruncation 0-8 (MS-ASCMD 2.2.3.108): bytes of MIME sent, None for all."""


def parse_collection(elem: Element, eas: Eas) -> CollectionRequest:
    key = elem.findtext("AirSync:SyncKey")
    collection_id = elem.findtext("AirSync:CollectionId")
    if key is None or collection_id is None or len(key) > 64 or len(collection_id) > 64:
        raise SyncError(4)
    req = CollectionRequest(key, collection_id)
    changes = elem.find("AirSync:GetChanges")
    if changes is not None:
        req.get_changes = changes.value_text().strip() != "0"
    cfg = eas.config
    window = _int(elem.findtext("AirSync:WindowSize"), cfg.default_window_size) or cfg.default_window_size
    req.window = max(1, min(window, cfg.max_window_size))
    options = elem.find("AirSync:Options")
    if options is not None:
        req.filter_type = _int(options.findtext("AirSync:FilterType"))
        if req.filter_type is not None and not 0 <= req.filter_type <= 8:
            raise SyncError(4)
        req.conflict = _int(options.findtext("AirSync:Conflict"), 1) or 0
        req.mime_support = _int(options.findtext("AirSync:MIMESupport"), 0) or 0
        mime_cut = _int(options.findtext("AirSync:MIMETruncation"))
        if mime_cut is not None:
            if not 0 <= mime_cut <= 8:
                raise SyncError(4)
            req.mime_truncation = MIME_TRUNCATION[mime_cut]
        for pref in options.findall("AirSyncBase:BodyPreference"):
            kind = _int(pref.findtext("AirSyncBase:Type"), 1)
            req.body_prefs.append((kind or 1, _int(pref.findtext("AirSyncBase:TruncationSize")),
                                   pref.findtext("AirSyncBase:AllOrNone") == "1",
                                   min(255, _int(pref.findtext("AirSyncBase:Preview"), 0) or 0)))
        for pref in options.findall("AirSyncBase:BodyPreference"):
            kind = _int(pref.findtext("AirSyncBase:Type"), 1)
            if kind in (1, 2):
                req.body_type = kind
                req.truncation = _int(pref.findtext("AirSyncBase:TruncationSize"))
                req.all_or_none = pref.findtext("AirSyncBase:AllOrNone") == "1"
                req.preview = min(255, _int(pref.findtext("AirSyncBase:Preview"), 0) or 0)
                break
    supported = elem.find("AirSync:Supported")
    if supported is not None and supported.children:  # LG phones send an empty <Supported/> (Z-Push ZP-481)
        req.supported = [child.tag for child in supported]
    req.commands = elem.find("AirSync:Commands")
    req.deletes_as_moves = elem.findtext("AirSync:DeletesAsMoves", "1").strip() != "0"
    return req


def wait_seconds(eas: Eas, body: Element) -> int | None:
    """Seconds a hanging Sync may wait (Wait in minutes or HeartbeatInterval in seconds)."""
    cfg = eas.config
    wait = body.findtext("AirSync:Wait")
    heartbeat = body.findtext("AirSync:HeartbeatInterval")
    if wait is not None and heartbeat is not None:
        raise SyncError(4)
    if wait is not None:
        minutes = _int(wait, -1) or 0
        if not 1 <= minutes <= 59:
            raise SyncError(14, 1 if minutes < 1 else 59)
        return minutes * 60
    if heartbeat is not None:
        seconds = _int(heartbeat, -1) or 0
        if not cfg.min_heartbeat_seconds <= seconds <= cfg.max_heartbeat_seconds:
            low = seconds < cfg.min_heartbeat_seconds
            raise SyncError(14, cfg.min_heartbeat_seconds if low else cfg.max_heartbeat_seconds)
        return seconds
    return None


def build_plan(eas: Eas, req: EasRequest, body: Element, remembered: Callable[[], Element | None]) -> SyncPlan:
    """The collections of the request; an empty or Partial one takes the others from the device's
    remembered request (`remembered()`, decoded only then)."""
    plan = SyncPlan()
    cfg = eas.config
    plan.wait_seconds = wait_seconds(eas, body)
    plan.window = _int(body.findtext("AirSync:WindowSize"))
    collections = body.find("AirSync:Collections")
    elems = collections.findall("AirSync:Collection") if collections is not None else []
    partial = body.find("AirSync:Partial") is not None
    if len(elems) > cfg.max_sync_collections:
        raise SyncError(15)
    plan.collections = [parse_collection(e, eas) for e in elems]
    if partial or not elems:
        cached = remembered()
        if cached is None:
            raise SyncError(13)
        mentioned = {c.collection_id for c in plan.collections}
        cached_collections = cached.find("AirSync:Collections")
        for elem in cached_collections.findall("AirSync:Collection") if cached_collections is not None else []:
            prior = parse_collection(elem, eas)
            if prior.collection_id not in mentioned:
                prior.from_cache = True
                prior.commands = None
                plan.collections.append(prior)
        if plan.wait_seconds is None and not elems:
            plan.wait_seconds = wait_seconds(eas, cached)
    if elems and not partial:
        stripped = E("AirSync:Sync")
        for child in body:
            if child.tag == "AirSync:Collections":
                stripped.append(E("AirSync:Collections", *[
                    E("AirSync:Collection", *[_cached_child(c) for c in col if c.tag != "AirSync:Commands"])
                    for col in child]))
            else:
                stripped.append(child)
        plan.cacheable = stripped
    return plan


CACHED_SYNC_KEY = "cached"
"""The SyncKey a remembered request keeps: its collections run with the keys of their state
(`from_cache`), so the same request Sync after Sync is the same state, and no write."""


def _cached_child(child: Element) -> Element:
    return E("AirSync:SyncKey", CACHED_SYNC_KEY) if child.tag == "AirSync:SyncKey" else child


def map_context(session: UserSession, req: EasRequest, coll: CollectionRequest, eas: Eas) -> MapContext:
    names: dict[int, tuple[str, str]] = {}

    def user_address(user_id: int) -> tuple[str, str]:
        if user_id not in names:
            try:
                user = session.user(user_id)
                names[user_id] = (user.display_name, user.email)
            except StoreError:
                names[user_id] = ("", "")
        return names[user_id]

    by_series: dict[tuple[int, int], dict[Any, Any]] = {}

    def exceptions_of(master: Any) -> dict[Any, Any]:
        """Change exceptions of a series, by original date (a bulk read of that series, not the folder)."""
        folder_id = master.folder_id
        if folder_id is None:
            return {}
        key = (folder_id, master.object_id)
        if key not in by_series:
            found: dict[Any, Any] = {}
            for obj in session.series_members(folder_id, [master.object_id]):
                if isinstance(obj, Appointment) and obj.is_exception and obj.recurrence_date_position \
                        and obj.recurrence_id == master.object_id:
                    found[obj.recurrence_date_position] = obj
            by_series[key] = found
        return by_series[key]

    return MapContext(req.v, req.user_id, body_type=coll.body_type, truncation=coll.truncation,
                      all_or_none=coll.all_or_none, preview=coll.preview, user_address=user_address,
                      resolve=session.find_principal, max_picture_bytes=eas.config.max_picture_bytes,
                      exceptions_of=exceptions_of)


def resolve_collection(session: UserSession, collection_id: str) -> tuple[Module | None, int | None] | None:
    if collection_id in MAIL_IDS:
        return None, None
    if not collection_id.isdigit() or len(collection_id) > 18:
        return None
    try:
        access = session.get_folder(int(collection_id))
    except NotFound:
        return None
    if access.folder.module is None:
        return None
    return access.folder.module, int(collection_id)


def needs_write(eas: Eas, plan: SyncPlan) -> bool:
    """Client commands write objects; mail collections finish on the IMAP pool with a write of their own."""
    return any(c.commands is not None or (eas.mail is not None and mailfolders.is_mail_id(c.collection_id))
               for c in plan.collections)


def run_plan(session: UserSession, eas: Eas, req: EasRequest, plan: SyncPlan,
             states: state.StateStore | None = None) -> list[Outcome]:
    """Every collection of the plan; device state goes to `states` (default: the session itself)."""
    states = states if states is not None else session
    if states is not session and needs_write(eas, plan):
        raise state.NeedsWriteTransaction()
    if isinstance(states, state.StagedStates) and req.device_id not in state.NOT_PERSISTED_DEVICES:
        states.prefetch(req.device_id, [state.DEVICE, *(state.collection_key(c.collection_id) for c in plan.collections)])
    if plan.cacheable is not None and req.device_id not in state.NOT_PERSISTED_DEVICES:
        states.put_state(req.device_id, state.LAST_SYNC,
                         {"request": base64.b64encode(encode(plan.cacheable)).decode("ascii")})
    if req.device_id not in state.NOT_PERSISTED_DEVICES:
        record = state.load_device(states, req.device_id)
        if int(record.get("last_sync", 0)) + eas.config.device_touch_seconds < time.time():
            state.touch_device(states, req.device_id, record, last_sync=int(time.time()))
    budget = plan.window if plan.window and plan.window > 0 else eas.config.max_window_size * len(plan.collections)
    outcomes = []
    for index, coll in enumerate(plan.collections):
        if eas.mail is not None and mailfolders.is_mail_id(coll.collection_id) \
                and coll.collection_id != mailfolders.OUTBOX_ID:
            prepared = mailsync.prepare(session, req.device_id, index, coll)
            outcomes.append(prepared if isinstance(prepared, Outcome) else Outcome(None, True, job=prepared))
            continue
        target = resolve_collection(session, coll.collection_id)
        if target is None:
            outcomes.append(status_only(coll, 12))
            continue
        module, folder_id = target
        engine = CollectionSync(session, req.device_id, module, folder_id, map_context(session, req, coll, eas),
                                eas.config.max_client_ids, eas.export_cache, states)
        outcome, used = engine.run(coll, max(budget, 0) or 1)
        budget -= used
        outcomes.append(outcome)
    return outcomes


def response_of(outcomes: list[Outcome]) -> EasResponse:
    collections = E("AirSync:Collections", *[o.element for o in outcomes if o.element is not None])
    return EasResponse(E("AirSync:Sync", collections))


def load_cached(session: state.StateStore, device_id: str) -> Element | None:
    saved = session.get_state(device_id, state.LAST_SYNC) if device_id not in state.NOT_PERSISTED_DEVICES else None
    if not saved or not saved.get("request"):
        return None
    try:
        return decode(base64.b64decode(saved["request"]))
    except (WBXMLError, ValueError):
        return None


def state_keys(req: EasRequest) -> list[str]:
    """The device state a Sync reads first (its cached request, its collections' keys): the provisioning
    gate, run inside the Sync's staged unit, reads them with the device record in one statement."""
    if req.device_id in state.NOT_PERSISTED_DEVICES:
        return []
    collections = req.body.find("AirSync:Collections") if req.body is not None else None
    ids = [e.findtext("AirSync:CollectionId") for e in collections.findall("AirSync:Collection")] \
        if collections is not None else []
    keys = [state.LAST_SYNC, *(state.collection_key(i) for i in ids if i is not None)]
    return [key for key in keys if len(key) <= MAX_COLLECTION]  # a longer one fails where it is read


def sync(eas: Eas, req: EasRequest) -> Deferred[EasResponse]:
    def prepare(session: UserSession, states: state.StateStore) -> tuple[SyncPlan | None, list[Outcome] | EasResponse]:
        body = req.body if req.body is not None else E("AirSync:Sync")
        try:
            plan = build_plan(eas, req, body, lambda: load_cached(states, req.device_id))
        except SyncError as exc:
            out = E("AirSync:Sync", E("AirSync:Status", str(exc.status)))
            if exc.limit is not None:
                out.append(E("AirSync:Limit", str(exc.limit)))
            return None, EasResponse(out)
        return plan, run_plan(session, eas, req, plan, states)

    def answer(result: tuple[SyncPlan | None, list[Outcome] | EasResponse]) -> Any:
        plan, outcomes = result
        if isinstance(outcomes, EasResponse):
            return outcomes
        assert plan is not None
        return complete_mail(eas, req, plan, outcomes).addCallback(lambda done: decide(plan, done))

    def decide(plan: SyncPlan, outcomes: list[Outcome]) -> Any:
        if plan.wait_seconds and not any(o.changed for o in outcomes):
            return hang(eas, req, plan, outcomes)
        return response_of(outcomes)

    return eas.staged(req, prepare).addCallback(answer)


def complete_mail(eas: Eas, req: EasRequest, plan: SyncPlan, outcomes: list[Outcome]) -> Deferred[list[Outcome]]:
    """Phases B and C of the mail collections (mailsync.py); PIM outcomes pass through untouched."""
    jobs = [o.job for o in outcomes if o.job is not None]
    if not jobs or eas.mail is None:
        return succeed(outcomes)
    mail = eas.mail
    budget = plan.window if plan.window and plan.window > 0 else eas.config.max_window_size * len(jobs)
    account = req.principal.email

    def imap_work(conn: Any) -> list[mailsync.JobResult]:
        return mailsync.work(conn, mail, account, req.v, req.device_id, jobs, budget)

    def save(results: list[mailsync.JobResult]) -> Deferred[list[Outcome]]:
        def store(session: UserSession) -> list[Outcome]:
            for result in mailsync.finish(session, req.device_id, results):
                outcomes[result.index] = result.outcome
            return outcomes
        sends = [send for result in results for send in result.sends]
        d = eas.write(req, store)
        return d.addCallback(lambda done: send_drafts(eas, req, sends).addCallback(lambda _: done)) if sends else d

    def unavailable(failure: Any) -> list[Outcome]:
        failure.trap(MailUnavailable)
        log.warning("mail server unavailable: %s", failure.getErrorMessage(), extra={"event": "eas.mail_unavailable"})
        for job in jobs:
            outcomes[job.index] = status_only(job.coll, 16)  # server error: retry later, state untouched
        return outcomes

    def retry(failure: Any) -> Any:
        """An IMAP error on a pooled connection (e.g. "Mailbox was deleted under us" after a restore):
        that connection is gone; the unit runs once more on a fresh one (its commands are idempotent)."""
        failure.trap(IMAPClientError)
        log.info("IMAP error, retrying on a fresh connection: %s", failure.getErrorMessage(),
                 extra={"event": "eas.mail_retry"})
        return mail.run(account, imap_work)

    def failed(failure: Any) -> list[Outcome]:
        if failure.check(IMAPClientError):
            log.warning("IMAP error: %s", failure.getErrorMessage(), extra={"event": "eas.mail_error"})
            for job in jobs:
                outcomes[job.index] = status_only(job.coll, 16)
            return outcomes
        return unavailable(failure)

    return mail.run(account, imap_work).addErrback(retry).addCallback(save).addErrback(failed)


def hang(eas: Eas, req: EasRequest, plan: SyncPlan, outcomes: list[Outcome]) -> Deferred[EasResponse]:
    """Park until a change in one of the collections' folders, then run the Sync again."""
    done: Deferred[EasResponse] = Deferred()
    folders = frozenset(o.folder_id for o in outcomes if o.folder_id is not None)
    for coll in plan.collections:
        coll.from_cache = True  # the keys did not move: rerun with the stored ones, no commands
        coll.commands = None
    plan.cacheable = None

    def rerun(_: frozenset[int]) -> None:
        d = eas.staged(req, lambda session, states: run_plan(session, eas, req, plan, states))
        d.addCallback(lambda outs: complete_mail(eas, req, plan, outs))
        d.addCallbacks(lambda result: _fire(done, response_of(result)), lambda f: _fail(done, f))

    def empty() -> None:
        _fire(done, EasResponse(None))

    entry = eas.parked.park((req.tenant_id, req.user_id, req.device_id), folders, plan.wait_seconds or 60,
                            rerun, empty, empty)
    if req.http is not None:
        req.http.notifyFinish().addBoth(lambda _: eas.parked.cancel(entry))
    watcher = eas.mail_watcher
    if watcher is not None:
        keys = [watcher.watch(req.tenant_id, req.principal.email, o.mail_watch[0], o.folder_id, o.mail_watch[1])
                for o in outcomes if o.mail_watch is not None and o.folder_id is not None]
        if keys:
            done.addBoth(lambda result: ([watcher.unwatch(k) for k in keys], result)[1])
    return done


def _fire(d: Deferred[EasResponse], value: EasResponse) -> None:
    if not d.called:
        d.callback(value)


def _fail(d: Deferred[EasResponse], failure: Any) -> None:
    if not d.called:
        d.errback(failure)
