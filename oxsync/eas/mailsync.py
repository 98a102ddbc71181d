"""Sync of mail collections: three phases, so that no IMAP call runs inside a store transaction.

A. `prepare` (store transaction, with the PIM collections): SyncKey checks, SyncKey 0, replays of the
   previous key (the stored answer, byte for byte) — none of these touches IMAP;
B. `work` (IMAP pool thread, one connection for all of a request's mail collections): the device's
   Change/Delete/Fetch commands, then either the windowed initial listing (newest first, FilterType on
   INTERNALDATE) or the delta: EXAMINE + one CHANGEDSINCE/VANISHED fetch from the HIGHESTMODSEQ kept
   for this device and folder, then bodies for the window's new mails;
C. `finish` (store transaction): the new state is saved only if the key did not move meanwhile.

Per device and folder the state keeps UIDVALIDITY, HIGHESTMODSEQ, the UIDs the device holds (compact
ranges), the UIDs still to send, flag fingerprints of the device's own changes (not echoed back) and
the mails skipped as unconvertible with their reason (never retried forever). A UIDVALIDITY change
drops the state: Status 3 for that collection, the device starts again cleanly.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oxsync.eas import maildrafts, mailfolders, state
from oxsync.eas.collection import CollectionRequest, Outcome, status_only
from oxsync.eas.mapping.email import BodyPref, Rendering, flag_elements, from_eas_change, to_eas
from oxsync.eas.protocol import FILTER_DAYS
from oxsync.eas.wbxml import E, Element, WBXMLError, decode, encode
from oxsync.mail import MailService, folder_bus_id, gateway
from oxsync.mail.message import read_message
from oxsync.render import render_one
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.mailsync")
MAX_SKIPPED = 200


@dataclass
class MailJob:
    index: int
    coll: CollectionRequest
    saved: dict[str, Any]


@dataclass
class JobResult:
    index: int
    outcome: Outcome
    job: MailJob
    new_state: dict[str, Any] | None = None
    drop_state: bool = False
    sends: list[maildrafts.DraftSend] = field(default_factory=list)
    """Drafts the device asked to send (Email2:Send): queued in phase C, then removed from Drafts."""


def bus_id(collection_id: str) -> int:
    return folder_bus_id(collection_id[1:])


def new_state(key: str, filter_type: int) -> dict[str, Any]:
    return {"key": key, "prev_key": "0", "answer": None, "uidvalidity": None, "modseq": 0, "known": "",
            "pending": "", "filter": filter_type, "echo": {}, "skipped": {}}


def _collection(coll: CollectionRequest, key: str, status: int) -> Element:
    return E("AirSync:Collection", E("AirSync:SyncKey", key), E("AirSync:CollectionId", coll.collection_id),
             E("AirSync:Status", str(status)))


def prepare(session: UserSession, device_id: str, index: int, coll: CollectionRequest) -> Outcome | MailJob:
    """Phase A: everything that needs no IMAP; otherwise a job for phase B."""
    key = state.collection_key(coll.collection_id)
    saved = session.get_state(device_id, key)
    folder = bus_id(coll.collection_id)
    if coll.from_cache:
        if saved is None:
            return status_only(coll, 3)
        coll.sync_key = saved["key"]
    if coll.sync_key == "0":
        if saved is not None and saved.get("prev_key") == "0" and saved.get("uidvalidity") is None:
            return Outcome(_collection(coll, saved["key"], 1), True, folder)  # iOS's second early SyncKey 0 joins
        st = new_state(state.new_sync_key(), coll.filter_type or 0)
        if device_id not in state.NOT_PERSISTED_DEVICES:
            session.put_state(device_id, key, st)
        return Outcome(_collection(coll, st["key"], 1), True, folder)
    if saved is None:
        return status_only(coll, 3)
    if coll.sync_key == saved.get("prev_key") and saved.get("answer"):
        try:
            return Outcome(decode(base64.b64decode(saved["answer"])), True, folder)
        except (WBXMLError, ValueError):
            return status_only(coll, 3)
    if coll.sync_key != saved.get("key"):
        return status_only(coll, 3)
    return MailJob(index, coll, saved)


def fingerprint(flags: tuple[bytes, ...]) -> str:
    return " ".join(sorted(f.decode("utf-8", "replace") for f in flags if f != b"\\Recent"))


def cutoff_of(filter_type: int, now: datetime) -> datetime | None:
    days = FILTER_DAYS.get(filter_type)
    return now - timedelta(days=days) if days else None


def rendering_of(coll: CollectionRequest, version: float) -> Rendering:
    prefs = tuple(BodyPref(k, t, a, p) for k, t, a, p in coll.body_prefs) or (BodyPref(1, coll.truncation),)
    return Rendering(version, prefs, coll.mime_support, coll.mime_truncation)


@dataclass
class Worker:
    """Phase B for one request: runs on an IMAP pool thread with one borrowed connection."""

    conn: Any
    service: MailService
    account: str
    version: float
    device_id: str
    folders: list[Any] | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    sends: list[maildrafts.DraftSend] = field(default_factory=list)

    def folder(self, collection_id: str) -> Any:
        if self.folders is None:
            self.folders = self.service.cached_folders(self.account) or \
                self.service.list_folders_sync(self.conn, self.account)
        found = mailfolders.find(self.folders, collection_id)
        if found is None:
            self.folders = self.service.list_folders_sync(self.conn, self.account)
            found = mailfolders.find(self.folders, collection_id)
        return found

    def run(self, job: MailJob, budget: int) -> JobResult:
        coll = job.coll
        folder = self.folder(coll.collection_id)
        if folder is None:
            return JobResult(job.index, status_only(coll, 12), job)
        st = {**job.saved, "echo": dict(job.saved.get("echo") or {}), "skipped": dict(job.saved.get("skipped") or {})}
        known = state.IdSet.parse(st.get("known"))
        pending = state.IdSet.parse(st.get("pending"))
        responses = E("AirSync:Responses")
        if coll.commands is not None:
            self.client_commands(coll, folder, st, known, pending, responses)
        commands = E("AirSync:Commands")
        filter_type = coll.filter_type if coll.filter_type is not None else int(st.get("filter") or 0)
        cutoff = cutoff_of(filter_type, self.now)
        get_changes = coll.get_changes if coll.get_changes is not None else True
        if st.get("uidvalidity") is None or filter_type != int(st.get("filter") or 0):
            current, uids = gateway.uids_newest_first(self.conn, folder.name, cutoff)
            if st.get("uidvalidity") not in (None, current.uidvalidity):
                return self.reset(job)
            listing = set(uids) - {int(u) for u in st["skipped"]}
            for uid in sorted(known.ids - listing):
                commands.append(E("AirSync:SoftDelete", E("AirSync:ServerId", str(uid))))
                known.discard(uid)
            pending = state.IdSet(listing - known.ids)
            st["uidvalidity"], st["modseq"], st["filter"] = current.uidvalidity, current.modseq, filter_type
            st["uidnext"], st["aged"] = current.uidnext, self.now.date().isoformat()
        elif get_changes:
            delta = gateway.delta(self.conn, folder.name, int(st.get("modseq") or 0))
            if delta.state.uidvalidity != st["uidvalidity"]:
                return self.reset(job)
            for uid in sorted(delta.vanished):
                pending.discard(uid)
                if uid in known:
                    known.discard(uid)
                    commands.append(E("AirSync:Delete", E("AirSync:ServerId", str(uid))))
            for uid, (flags, arrived) in sorted(delta.changed.items()):
                if uid in pending or str(uid) in st["skipped"]:
                    continue
                if uid in known:
                    if st["echo"].pop(str(uid), None) == fingerprint(flags):
                        continue
                    item_categories = sorted(f.decode("utf-8", "replace") for f in flags
                                             if not f.startswith(b"\\") and not f.startswith(b"$"))
                    commands.append(E("AirSync:Change", E("AirSync:ServerId", str(uid)), E(
                        "AirSync:ApplicationData", *flag_elements(flags, self.version, item_categories))))
                elif cutoff is None or arrived is None or _aware(arrived) >= cutoff:
                    pending.add(uid)
            st["modseq"], st["uidnext"] = delta.state.modseq, delta.state.uidnext
            today = self.now.date().isoformat()
            if cutoff is not None and len(known) and st.get("aged") != today:
                # mails that aged out of the window: one SEARCH a day per collection, not per delta
                for uid in sorted(gateway.arrived_before(self.conn, known.ids, cutoff)):
                    commands.append(E("AirSync:SoftDelete", E("AirSync:ServerId", str(uid))))
                    known.discard(uid)
                st["aged"] = today
        room = max(0, min(coll.window, budget) - len(commands.children))
        if get_changes and pending and room:
            self.send_new(coll, folder, st, known, pending, commands, room)
        more = bool(len(pending))
        st["known"], st["pending"] = known.dump(), pending.dump()
        if not responses.children and not commands.children and not more:
            if coll.filter_type is not None:
                st["filter"] = coll.filter_type
            quiet = Outcome(_collection(coll, st["key"], 1), False, bus_id(coll.collection_id))
            quiet.mail_watch = (folder.name, (int(st["uidvalidity"]), int(st.get("uidnext") or 0), int(st["modseq"])))
            return JobResult(job.index, quiet, job, st)
        new_key = state.next_sync_key(st["key"])
        answer = _collection(coll, new_key, 1)
        if more:
            answer.append(E("AirSync:MoreAvailable"))
        if commands.children:
            answer.append(commands)
        if responses.children:
            answer.append(responses)
        st["prev_key"], st["key"] = st["key"], new_key
        st["answer"] = base64.b64encode(encode(answer)).decode("ascii")
        return JobResult(job.index, Outcome(answer, True, bus_id(coll.collection_id), more), job, st)

    def reset(self, job: MailJob) -> JobResult:
        log.info("UIDVALIDITY changed: collection starts again", extra={
            "event": "eas.mail_uidvalidity", "device": self.device_id, "collection": job.coll.collection_id})
        return JobResult(job.index, status_only(job.coll, 3), job, None, drop_state=True)

    def send_new(self, coll: CollectionRequest, folder: Any, st: dict[str, Any], known: state.IdSet,
                 pending: state.IdSet, commands: Element, room: int) -> None:
        take = sorted(pending.ids, reverse=True)[:room]
        fetched = gateway.fetch_messages(self.conn, None, take, self.service.settings.max_fetch_bytes)
        rendering = rendering_of(coll, self.version)
        for uid in take:
            pending.discard(uid)
            got = fetched.get(uid)
            if got is None:
                continue  # expunged meanwhile
            reasons: list[str] = []

            def render(fetched: Any, uid: int = uid, reasons: list[str] = reasons) -> Element:
                try:
                    item = read_message(uid, fetched.raw, fetched.flags, fetched.internaldate, fetched.size)
                    element = to_eas(item, coll.collection_id, rendering)
                    encode(element)  # a mail that cannot be encoded is skipped here, not in the whole response
                    return element
                except Exception as exc:
                    reasons.append(f"{type(exc).__name__}: {exc}"[:200])
                    raise

            data = render_one("eas", got, render, folder_id=bus_id(coll.collection_id), object_id=uid)
            if data is None:  # one poison mail never breaks the collection, and is never retried
                if len(st["skipped"]) < MAX_SKIPPED:
                    st["skipped"][str(uid)] = reasons[0] if reasons else "unconvertible"
                continue
            commands.append(E("AirSync:Add", E("AirSync:ServerId", str(uid)), data))
            known.add(uid)

    # ------------------------------------------------------------ device -> server

    def client_commands(self, coll: CollectionRequest, folder: Any, st: dict[str, Any], known: state.IdSet,
                        pending: state.IdSet, responses: Element) -> None:
        assert coll.commands is not None
        drafts = self.version >= 16.0 and folder.special == "drafts"
        for cmd in coll.commands:
            server_id = cmd.findtext("AirSync:ServerId", "")
            uid = int(server_id) if server_id.isdigit() and len(server_id) < 11 else None
            uid = (st.get("drafts") or {}).get(server_id, uid)  # a draft replaced since the device learnt it
            if cmd.tag == "AirSync:Add" and drafts:
                added, new_uid = maildrafts.add(self.conn, folder, self.account, cmd)
                responses.append(added)
                if new_uid is not None:
                    self.remember(folder, new_uid, st, known)
                    self.send_if_asked(folder, new_uid, cmd, "add:" + cmd.findtext("AirSync:ClientId", "")[:64])
            elif cmd.tag == "AirSync:Add":
                responses.append(E("AirSync:Add", E("AirSync:ClientId", cmd.findtext("AirSync:ClientId", "")[:64]),
                                   E("AirSync:Status", "6")))
            elif cmd.tag == "AirSync:Change" and drafts and uid is not None and maildrafts.is_content(
                    cmd.find("AirSync:ApplicationData") or E("AirSync:ApplicationData")):
                responses.children += self.change_draft(folder, uid, server_id, cmd, st, known)
            elif cmd.tag == "AirSync:Change" and drafts and uid is not None and maildrafts.wants_send(cmd):
                self.send_if_asked(folder, uid, cmd, f"draft:{st.get('uidvalidity')}:{uid}")
            elif cmd.tag == "AirSync:Change":
                result = self.change(folder, uid, server_id, cmd, st)
                if result is not None:
                    responses.append(result)
            elif cmd.tag == "AirSync:Delete":
                if uid is not None:
                    self.delete(coll, folder, uid)
                    known.discard(uid)
                    pending.discard(uid)
            elif cmd.tag == "AirSync:Fetch":
                responses.append(self.fetch(coll, folder, uid, server_id))

    def remember(self, folder: Any, uid: int, st: dict[str, Any], known: state.IdSet) -> None:
        """The device already holds `uid` (it wrote it): no Add of it goes back."""
        self.conn.select_folder(folder.name, readonly=True)
        known.add(uid)
        st["echo"][str(uid)] = fingerprint(gateway.fetch_meta(self.conn, [uid]).get(uid, ((), None))[0])

    def change_draft(self, folder: Any, uid: int, server_id: str, cmd: Element, st: dict[str, Any],
                     known: state.IdSet) -> list[Element]:
        data = cmd.find("AirSync:ApplicationData")
        try:
            if data is None:
                raise ValueError("a Change without ApplicationData")
            new_uid = maildrafts.replace_draft(self.conn, folder, self.account, uid, data,
                                               self.service.settings.max_fetch_bytes)
        except ValueError:
            return [E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:Status", "6"))]
        if new_uid is None:
            return [E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:Status", "8"))]
        known.discard(uid)
        self.remember(folder, new_uid, st, known)
        if server_id != str(new_uid):
            st.setdefault("drafts", {})[server_id] = new_uid
        self.send_if_asked(folder, new_uid, cmd, f"draft:{st.get('uidvalidity')}:{new_uid}")
        return []

    def send_if_asked(self, folder: Any, uid: int, cmd: Element, key: str) -> None:
        if not maildrafts.wants_send(cmd):
            return
        got = gateway.fetch_messages(self.conn, folder.name, [uid], self.service.settings.max_fetch_bytes)
        if uid in got:
            self.sends.append(maildrafts.DraftSend(folder.name, uid, got[uid].raw, key))

    def change(self, folder: Any, uid: int | None, server_id: str, cmd: Element, st: dict[str, Any]) -> Element | None:
        data = cmd.find("AirSync:ApplicationData")
        if uid is None or data is None:
            return E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:Status", "6" if uid else "8"))
        self.conn.select_folder(folder.name)
        current = gateway.fetch_meta(self.conn, [uid]).get(uid)
        if current is None:
            return E("AirSync:Change", E("AirSync:ServerId", server_id), E("AirSync:Status", "8"))
        change = from_eas_change(data, current[0])
        gateway.set_flags(self.conn, folder.name, uid, change.add, change.remove)
        after = gateway.fetch_meta(self.conn, [uid]).get(uid)
        if after is not None:
            st["echo"][str(uid)] = fingerprint(after[0])
        return None

    def delete(self, coll: CollectionRequest, folder: Any, uid: int) -> None:
        trash = mailfolders.special(self.folders, "trash")
        if coll.deletes_as_moves and trash is not None and trash.name != folder.name:
            gateway.move(self.conn, folder.name, [uid], trash.name)
        else:
            gateway.expunge(self.conn, folder.name, [uid])

    def fetch(self, coll: CollectionRequest, folder: Any, uid: int | None, server_id: str) -> Element:
        got = gateway.fetch_messages(self.conn, folder.name, [uid], self.service.settings.max_fetch_bytes) \
            if uid is not None else {}
        if uid is None or uid not in got:
            return E("AirSync:Fetch", E("AirSync:ServerId", server_id), E("AirSync:Status", "8"))
        item = read_message(uid, got[uid].raw, got[uid].flags, got[uid].internaldate, got[uid].size)
        return E("AirSync:Fetch", E("AirSync:ServerId", server_id), E("AirSync:Status", "1"),
                 to_eas(item, coll.collection_id, rendering_of(coll, self.version)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def work(conn: Any, service: MailService, account: str, version: float, device_id: str,
         jobs: list[MailJob], budget: int) -> list[JobResult]:
    worker = Worker(conn, service, account, version, device_id)
    out = []
    for job in jobs:
        result = worker.run(job, max(budget, 1))
        result.sends, worker.sends = worker.sends, []
        sent = result.outcome.element.find("AirSync:Commands") if result.outcome.element is not None else None
        budget -= len(sent.children) if sent is not None else 0
        out.append(result)
    return out


def finish(session: UserSession, device_id: str, results: list[JobResult]) -> list[JobResult]:
    """Phase C: save each new state unless the device's key moved meanwhile (then Status 3)."""
    for result in results:
        if device_id in state.NOT_PERSISTED_DEVICES:
            continue
        key = state.collection_key(result.job.coll.collection_id)
        current = session.get_state(device_id, key)
        if current is None or current.get("key") != result.job.saved.get("key"):
            result.outcome = status_only(result.job.coll, 3)
            continue
        if result.drop_state:
            session.delete_state(device_id, key)
        elif result.new_state is not None:
            session.put_state(device_id, key, result.new_state)
    return results
