"""MoveItems, ItemOperations and Search (Mailbox) on mail folders: IMAP work on the IMAP pool.

- MoveItems: UID MOVE, the new UID from COPYUID is the DstMsgId; the device's states are updated so the
  moved mail never comes back as a second copy (destination knows the new UID, with its flags' fingerprint)
  nor as a Delete in the source;
- ItemOperations: Fetch of a whole mail (body preferences, MIME) or of an attachment by FileReference;
  EmptyFolderContents of a mail folder;
- Search Store `Mailbox`: free text on subject and sender, folder and date bounds, Range paging, newest
  first (IMAP SORT REVERSE ARRIVAL).
PIM parts of the same request are served by the existing handlers (items.py, settings.py).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import mailfolders, mailsync, state
from oxsync.eas.mapping.email import BodyPref, Rendering, parse_file_reference, to_eas
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.mail import MailUnavailable, gateway
from oxsync.mail.message import attachment_bytes, read_message
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.mailitems")


def concerns_mail(eas: Eas, *ids: str) -> bool:
    return eas.mail is not None and any(mailfolders.is_mail_id(i) and i != mailfolders.OUTBOX_ID for i in ids)


def mail_folders(eas: Eas, conn: Any, account: str) -> list[Any]:
    """The account's mail folders (the gateway's cache, else listed on `conn`)."""
    assert eas.mail is not None
    return eas.mail.cached_folders(account) or eas.mail.list_folders_sync(conn, account)


def mail_folder(eas: Eas, conn: Any, account: str, collection_id: str) -> Any:
    """The mail folder of a collection id, listed again when the cache does not know it; None if none."""
    assert eas.mail is not None
    found = mailfolders.find(mail_folders(eas, conn, account), collection_id)
    if found is None:
        found = mailfolders.find(eas.mail.list_folders_sync(conn, account), collection_id)
    return found


def _uid(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 11 else None


# ------------------------------------------------------------------ MoveItems


def move_mail(eas: Eas, req: EasRequest, moves: list[Element]) -> Deferred[list[Element]]:
    assert eas.mail is not None
    account = req.principal.email

    def imap(conn: Any) -> tuple[list[Element], list[tuple[str, str, int, int, str]]]:
        responses, done = [], []
        for move in moves:
            src_id = move.findtext("Move:SrcMsgId", "")
            src, dst = move.findtext("Move:SrcFldId", ""), move.findtext("Move:DstFldId", "")
            response = E("Move:Response", E("Move:SrcMsgId", src_id))
            responses.append(response)
            uid = _uid(src_id)
            source = mail_folder(eas, conn, account, src) if mailfolders.is_mail_id(src) else None
            target = mail_folder(eas, conn, account, dst) if mailfolders.is_mail_id(dst) else None
            if src == dst:
                response.append(E("Move:Status", "4"))
            elif source is None or uid is None:
                response.append(E("Move:Status", "1"))
            elif target is None:
                response.append(E("Move:Status", "2"))
            else:
                moved = gateway.move(conn, source.name, [uid], target.name)
                if uid not in moved:
                    response.append(E("Move:Status", "1"))
                    continue
                conn.select_folder(target.name, readonly=True)
                flags = gateway.fetch_meta(conn, [moved[uid]]).get(moved[uid], ((), None))[0]
                done.append((src, dst, uid, moved[uid], mailsync.fingerprint(flags)))
                response.children += [E("Move:Status", "3"), E("Move:DstMsgId", str(moved[uid]))]
        return responses, done

    def record(result: tuple[list[Element], list[tuple[str, str, int, int, str]]]) -> Any:
        responses, done = result
        if not done or req.device_id in state.NOT_PERSISTED_DEVICES:
            return responses
        return eas.write(req, lambda session: _mark_moved(session, req.device_id, done)).addCallback(
            lambda _: responses)

    return eas.mail.run(account, imap).addCallback(record)


def _mark_moved(session: UserSession, device_id: str, done: list[tuple[str, str, int, int, str]]) -> None:
    for src, dst, old, new, fingerprint in done:
        for collection, present in ((src, False), (dst, True)):
            key = state.collection_key(collection)
            st = session.get_state(device_id, key)
            if st is None:
                continue
            known = state.IdSet.parse(st.get("known"))
            if present:
                if st.get("uidvalidity") is not None:
                    known.add(new)
                    st.setdefault("echo", {})[str(new)] = fingerprint
            else:
                known.discard(old)
            st["known"] = known.dump()
            session.put_state(device_id, key, st)


# ------------------------------------------------------------------ ItemOperations


def _rendering(op: Element, version: float) -> Rendering:
    options = op.find("ItemOperations:Options")
    prefs: list[BodyPref] = []
    mime = 0
    if options is not None:
        text = options.findtext("AirSync:MIMESupport")
        mime = int(text) if text and text.isdigit() else 0
        for pref in options.findall("AirSyncBase:BodyPreference"):
            kind = pref.findtext("AirSyncBase:Type", "1")
            size = pref.findtext("AirSyncBase:TruncationSize")
            prefs.append(BodyPref(int(kind) if kind.isdigit() else 1, int(size) if size and size.isdigit() else None,
                                  pref.findtext("AirSyncBase:AllOrNone") == "1"))
    return Rendering(version, tuple(prefs) or (BodyPref(1),), mime)


def item_operations_mail(eas: Eas, req: EasRequest, ops: list[tuple[int, Element]]) -> Deferred[dict[int, Element]]:
    assert eas.mail is not None
    account = req.principal.email
    max_bytes = eas.mail.settings.max_fetch_bytes

    def fetch(conn: Any, op: Element) -> Element:
        out = E("ItemOperations:Fetch")
        reference = op.findtext("AirSyncBase:FileReference")
        if reference is not None:
            parsed = parse_file_reference(reference)
            folder = mail_folder(eas, conn, account, parsed[0]) if parsed else None
            got = gateway.fetch_messages(conn, folder.name, [parsed[1]], max_bytes) if folder and parsed else {}
            part = attachment_bytes(got[parsed[1]].raw, parsed[2]) if parsed and parsed[1] in got else None
            if part is None:
                out.children += [E("ItemOperations:Status", "15"), E("AirSyncBase:FileReference", reference)]
                return out
            ctype, content = part
            out.children += [E("ItemOperations:Status", "1"), E("AirSyncBase:FileReference", reference),
                             E("ItemOperations:Properties", E("AirSyncBase:ContentType", ctype),
                               E("ItemOperations:Range", f"0-{max(0, len(content) - 1)}"),
                               E("ItemOperations:Total", str(len(content))),
                               E("ItemOperations:Data", base64.b64encode(content).decode("ascii")))]
            return out
        cid, sid = op.findtext("AirSync:CollectionId", ""), op.findtext("AirSync:ServerId", "")
        folder, uid = mail_folder(eas, conn, account, cid), _uid(sid)
        got = gateway.fetch_messages(conn, folder.name, [uid], max_bytes) if folder and uid is not None else {}
        if uid is None or uid not in got:
            out.append(E("ItemOperations:Status", "6"))
            return out
        item = read_message(uid, got[uid].raw, got[uid].flags, got[uid].internaldate, got[uid].size)
        data = to_eas(item, cid, _rendering(op, req.v))
        out.children += [E("ItemOperations:Status", "1"), E("AirSync:CollectionId", cid), E("AirSync:ServerId", sid),
                         E("AirSync:Class", "Email"), E("ItemOperations:Properties", *data.children)]
        return out

    def empty(conn: Any, op: Element) -> Element:
        cid = op.findtext("AirSync:CollectionId", "")
        folder = mail_folder(eas, conn, account, cid)
        if folder is None:
            return E("ItemOperations:EmptyFolderContents", E("ItemOperations:Status", "6"),
                     E("AirSync:CollectionId", cid))
        gateway.empty_folder(conn, folder.name)
        return E("ItemOperations:EmptyFolderContents", E("ItemOperations:Status", "1"), E("AirSync:CollectionId", cid))

    def imap(conn: Any) -> dict[int, Element]:
        out: dict[int, Element] = {}
        for index, op in ops:
            try:
                out[index] = empty(conn, op) if op.tag == "ItemOperations:EmptyFolderContents" else fetch(conn, op)
            except MailUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - one unconvertible mail fails its own operation only
                log.warning("mail fetch failed: %s", exc, extra={"event": "eas.mail_fetch_failed"})
                out[index] = E(op.tag, E("ItemOperations:Status", "6"))
        return out

    return eas.mail.run(account, imap)


def is_mail_operation(eas: Eas, op: Element) -> bool:
    reference = op.findtext("AirSyncBase:FileReference")
    if reference is not None:
        return concerns_mail(eas, reference.split(":", 1)[0])
    return concerns_mail(eas, op.findtext("AirSync:CollectionId", ""))


# ------------------------------------------------------------------ Search Mailbox


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def search_mailbox(eas: Eas, req: EasRequest, store: Element, low: int, high: int) -> Deferred[Element]:
    """The `Search:Store` of a Mailbox search (Status 1 with Result/Range/Total)."""
    assert eas.mail is not None
    account = req.principal.email
    query = store.find("Search:Query")
    conditions = query.find("Search:And") if query is not None else None
    conditions = conditions if conditions is not None else query
    cid = conditions.findtext("AirSync:CollectionId") if conditions is not None else None
    text = conditions.findtext("Search:FreeText") if conditions is not None else None
    greater = conditions.find("Search:GreaterThan") if conditions is not None else None
    less = conditions.find("Search:LessThan") if conditions is not None else None
    since = _date(greater.findtext("Search:Value")) if greater is not None else None
    before = _date(less.findtext("Search:Value")) if less is not None else None
    options = store.find("Search:Options")
    rendering = Rendering(req.v, (BodyPref(1, 512),), 0)
    if options is not None:
        fake = E("ItemOperations:Fetch", E("ItemOperations:Options", *options.children))
        rendering = _rendering(fake, req.v)
    max_fetch_bytes = eas.mail.settings.max_fetch_bytes

    def imap(conn: Any) -> Element:
        folders = mail_folders(eas, conn, account)
        targets = [f for f in folders if cid is None or mailfolders.server_id(f) == cid]
        hits: list[tuple[Any, int]] = []
        for folder in targets if cid else [f for f in targets if f.special in ("inbox", None, "sent")]:
            hits += [(folder, uid) for uid in gateway.search(conn, folder.name, text, since, before,
                                                             in_body=eas.config.search_mail_body)]
        page = hits[low:high + 1]
        results = []
        for folder, uid in page:
            got = gateway.fetch_messages(conn, folder.name, [uid], max_fetch_bytes)
            if uid not in got:
                continue
            sid = mailfolders.server_id(folder)
            try:
                item = read_message(uid, got[uid].raw, got[uid].flags, got[uid].internaldate, got[uid].size)
                data = to_eas(item, sid, rendering)
            except Exception as exc:  # noqa: BLE001 - a poison mail is left out of the results
                log.warning("search result skipped: %s", exc, extra={"event": "eas.mail_search_skipped"})
                continue
            results.append(E("Search:Result", E("AirSync:Class", "Email"), E("Search:LongId", f"{sid}:{uid}"),
                             E("AirSync:CollectionId", sid), E("Search:Properties", *data.children)))
        out = E("Search:Store", E("Search:Status", "1"), *results)
        if results:
            out.children += [E("Search:Range", f"{low}-{low + len(results) - 1}"), E("Search:Total", str(len(hits)))]
        else:
            out.children += [E("Search:Range", "0-0"), E("Search:Total", "0")]
        return out

    return eas.mail.run(account, imap)


@dataclass(frozen=True)
class Unlisted:
    """A mail collection the device has a SyncKey for but whose window was not listed yet (right after
    Sync 0, or with another FilterType): its estimate needs one IMAP SORT (`count_unlisted`)."""

    collection_id: str
    filter_type: int
    known: frozenset[int]


def estimate_mail(session: UserSession, device_id: str, cid: str, filter_type: int | None = None) -> int | Unlisted | None:
    """Mails the device has still to receive: None without a state (Status 3), the pending count once
    the window is listed, else an `Unlisted` for the IMAP pool."""
    st = session.get_state(device_id, state.collection_key(cid))
    if st is None:
        return None
    listed_filter = int(st.get("filter") or 0)
    wanted = filter_type if filter_type is not None else listed_filter
    if st.get("uidvalidity") is None or wanted != listed_filter:
        return Unlisted(cid, wanted, frozenset(state.IdSet.parse(st.get("known")).ids))
    return len(state.IdSet.parse(st.get("pending")))


def count_unlisted(eas: Eas, req: EasRequest, todo: list[tuple[Element, Unlisted]]) -> Deferred[None]:
    """Fill each response of `todo` with the size of its folder's window less what the device holds."""
    assert eas.mail is not None
    account = req.principal.email
    now = datetime.now(UTC)

    def imap(conn: Any) -> None:
        for response, unlisted in todo:
            folder = mail_folder(eas, conn, account, unlisted.collection_id)
            if folder is None:
                response.append(E("GetItemEstimate:Status", "2"))
                continue
            _, uids = gateway.uids_newest_first(conn, folder.name, mailsync.cutoff_of(unlisted.filter_type, now))
            response.children += [E("GetItemEstimate:Status", "1"), E(
                "GetItemEstimate:Collection", E("GetItemEstimate:CollectionId", unlisted.collection_id),
                E("GetItemEstimate:Estimate", str(len(set(uids) - unlisted.known))))]

    return eas.mail.run(account, imap)


def unavailable_response(failure: Any, root: str, status_tag: str, code: str) -> EasResponse:
    failure.trap(MailUnavailable)
    log.warning("mail server unavailable: %s", failure.getErrorMessage(), extra={"event": "eas.mail_unavailable"})
    return EasResponse(E(root, E(status_tag, code)))



def get_attachment(eas: Eas, req: EasRequest) -> Any:
    """12.x: the attachment named by `AttachmentName` (our FileReference) as the raw response body;
    HTTP 500 when it cannot be served (MS-ASCMD GetAttachment has no status element)."""
    parsed = parse_file_reference(req.params.get("AttachmentName", ""))
    if eas.mail is None or parsed is None or not concerns_mail(eas, parsed[0]):
        return EasResponse(None, code=500)
    account = req.principal.email
    max_bytes = eas.mail.settings.max_fetch_bytes
    collection_id, uid, index = parsed

    def imap(conn: Any) -> EasResponse:
        folder = mail_folder(eas, conn, account, collection_id)
        got = gateway.fetch_messages(conn, folder.name, [uid], max_bytes) if folder is not None else {}
        part = attachment_bytes(got[uid].raw, index) if uid in got else None
        if part is None:
            return EasResponse(None, code=500)
        return EasResponse(part[1], content_type=part[0].encode("ascii", "replace"))

    def failed(failure: Any) -> EasResponse:
        failure.trap(MailUnavailable)
        return EasResponse(None, code=500)

    return eas.mail.run(account, imap).addErrback(failed)
