"""Find (EAS 16.1, MS-ASCMD 2.2.1.2): free-text search of the mailbox (IMAP, on the IMAP pool) or of the GAL.

Request: ``Find > SearchId, ExecuteSearch > (MailBoxSearchCriterion | GALSearchCriterion) > Query, Options``.
What must hold:
- the mailbox query matches subject or sender (gateway.search), in the CollectionId's folder or in every
  mail folder; results are newest first across folders (arrival date, then UID) and paged by Range;
- a result names its mail as Sync does (ServerId = UID, CollectionId = the folder's id) so the device can
  open it; properties are the short Find set (no body: Find:Preview instead);
- the GAL query reads the store's directory (session.search_objects on the global address book);
- bad input (no criterion, empty or over-long query, bad Range, a pre-16.1 request) is Find Status 2 and
  touches nothing; an unknown CollectionId is Status 3 (FolderSync required); no mail server is 110.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import mailfolders
from oxsync.eas.commands import mailitems
from oxsync.eas.commands.settings import GAL_FIELDS, _picture
from oxsync.eas.mapping.email import eas_date
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.mail import gateway
from oxsync.mail.message import FLAG_SEEN, read_message
from oxsync.model import Contact
from oxsync.model.folder import GLOBAL_ADDRESS_BOOK
from oxsync.render import render_each
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.find")

MAX_QUERY_CHARS = 256
"""MS-ASCMD: a Find query is at most 256 characters."""
PREVIEW_CHARS = 255
"""Find:Preview length (MS-ASCMD caps it at 255)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadFind(ValueError):
    """The request is not a Find we can run: Status 2."""


@dataclass(frozen=True)
class FindRequest:
    gal: bool
    text: str
    collection_id: str | None
    low: int
    high: int
    picture: Element | None


def _status(code: str) -> EasResponse:
    return EasResponse(E("Find:Find", E("Find:Status", code)))


def parse(body: Element | None, version: float, limit: int) -> FindRequest:
    """The Find request's criterion, query and page, or BadFind."""
    if version < 16.1 or body is None or body.tag != "Find:Find" or not body.findtext("Find:SearchId", "").strip():
        raise BadFind("not a 16.1 Find with a SearchId")
    execute = body.find("Find:ExecuteSearch")
    if execute is None:
        raise BadFind("no ExecuteSearch")
    mailbox, gal = execute.find("Find:MailBoxSearchCriterion"), execute.find("Find:GALSearchCriterion")
    criterion = mailbox if mailbox is not None else gal
    if criterion is None or (mailbox is not None and gal is not None):
        raise BadFind("exactly one search criterion is needed")
    query = criterion.find("Find:Query")
    if query is None:
        raise BadFind("no Query")
    if mailbox is not None:
        text = query.findtext("Find:FreeText", "").strip()
        collection_id = query.findtext("AirSync:CollectionId")
        kind = query.findtext("AirSync:Class", "Email")
        if kind != "Email":
            raise BadFind(f"class {kind!r} cannot be searched")
    else:
        text, collection_id = (query.value_text() or "").strip(), None
    if not text or len(text) > MAX_QUERY_CHARS:
        raise BadFind("the query must have 1 to 256 characters")
    options = criterion.find("Find:Options")
    low, high = _range(options.findtext("Find:Range") if options is not None else None, limit)
    picture = options.find("Find:Picture") if options is not None and gal is not None else None
    return FindRequest(gal is not None, text, collection_id, low, high, picture)


def _range(text: str | None, limit: int) -> tuple[int, int]:
    if text is None:
        return 0, limit - 1
    low_text, sep, high_text = text.partition("-")
    if not sep or not low_text.isdigit() or not high_text.isdigit() or len(text) > 12:
        raise BadFind(f"bad Range {text!r}")
    low, high = int(low_text), int(high_text)
    if high < low:
        raise BadFind(f"bad Range {text!r}")
    return low, min(high, low + limit - 1)


def find(eas: Eas, req: EasRequest) -> Any:
    try:
        request = parse(req.body, req.v, eas.config.max_search_results)
    except BadFind as exc:
        log.info("bad Find: %s", exc, extra={"event": "eas.find_invalid"})
        return _status("2")
    if request.gal:
        return eas.read(req, lambda session: _gal(session, req, request, eas.config.max_search_results))
    if eas.mail is None or (request.collection_id is not None and not mailitems.concerns_mail(
            eas, request.collection_id)):
        return _status("3" if eas.mail is not None else "2")
    return _mailbox(eas, req, request).addErrback(mailitems.unavailable_response, "Find:Find", "Find:Status", "110")


def _response(store: str, results: list[Element], low: int, total: int) -> EasResponse:
    response = E("Find:Response", E("ItemOperations:Store", store), E("Find:Status", "1"), *results)
    if results:
        response.children += [E("Find:Range", f"{low}-{low + len(results) - 1}"), E("Find:Total", str(total))]
    else:
        response.append(E("Find:Total", "0"))
    return EasResponse(E("Find:Find", E("Find:Status", "1"), response))


# ------------------------------------------------------------------ mailbox


def _mailbox(eas: Eas, req: EasRequest, request: FindRequest) -> Deferred[EasResponse]:
    assert eas.mail is not None
    mail = eas.mail
    account = req.principal.email

    def imap(conn: Any) -> EasResponse:
        folders = mailitems.mail_folders(eas, conn, account)
        if request.collection_id is not None:
            folder = mailitems.mail_folder(eas, conn, account, request.collection_id)
            if folder is None:
                return _status("3")
            folders = [folder]
        wanted = request.high + 1
        total = 0
        candidates: list[tuple[datetime, int, Any]] = []
        for folder in folders:
            uids = gateway.search(conn, folder.name, request.text, None, None, in_body=eas.config.search_mail_body)
            total += len(uids)
            meta = gateway.fetch_meta(conn, uids[:wanted])  # the folder's newest `wanted` (UIDs grow with arrival)
            candidates += [(meta[u][1] or EPOCH, u, folder) for u in uids[:wanted] if u in meta]
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        results = []
        for _, uid, folder in candidates[request.low:request.high + 1]:
            result = _mail_result(conn, folder, uid, mail.settings.max_fetch_bytes)
            if result is not None:
                results.append(result)
        return _response("Mailbox", results, request.low, total)

    return mail.run(account, imap)


def _mail_result(conn: Any, folder: Any, uid: int, max_bytes: int) -> Element | None:
    got = gateway.fetch_messages(conn, folder.name, [uid], max_bytes)
    if uid not in got:
        return None
    try:
        item = read_message(uid, got[uid].raw, got[uid].flags, got[uid].internaldate, got[uid].size)
    except Exception as exc:  # noqa: BLE001 - a poison mail is left out of the results
        log.warning("find result skipped: %s", exc, extra={"event": "eas.mail_find_skipped"})
        return None
    props = E("Find:Properties")
    for tag, value in (("Email:Subject", item.subject), ("Email:DateReceived", eas_date(item.received)),
                       ("Email:DisplayTo", item.display_to), ("Find:DisplayCc", item.cc), ("Email:From", item.sender),
                       ("Email:Importance", str(item.importance)),
                       ("Email:Read", "1" if FLAG_SEEN in item.flags else "0"),
                       ("Email2:IsDraft", "1" if b"\\Draft" in item.flags else "0"),
                       ("Find:Preview", " ".join(item.plain().split())[:PREVIEW_CHARS]),
                       ("Find:HasAttachments", "1" if any(not a.inline for a in item.attachments) else "0")):
        if value:
            props.append(E(tag, value))
    return E("Find:Result", E("AirSync:Class", "Email"), E("AirSync:ServerId", str(uid)),
             E("AirSync:CollectionId", mailfolders.server_id(folder)), props)


# ------------------------------------------------------------------ GAL


def _gal(session: UserSession, req: EasRequest, request: FindRequest, limit: int) -> EasResponse:
    matches = [c for c in session.search_objects(GLOBAL_ADDRESS_BOOK, request.text, limit=request.high + 1)
               if isinstance(c, Contact)]
    logins = {u.contact_id: u.login for u in session.users()}
    max_size, budget = None, [limit]
    if request.picture is not None:
        size, count = request.picture.findtext("Find:MaxSize"), request.picture.findtext("Find:MaxPictures")
        max_size = int(size) if size and size.isdigit() else None
        budget = [int(count) if count and count.isdigit() else limit]

    def result(contact: Contact) -> Element:
        props = E("Find:Properties")
        for tag, attr in GAL_FIELDS:
            value = getattr(contact, attr)
            if value:
                props.append(E(f"GAL:{tag}", value))
        if logins.get(contact.object_id):
            props.append(E("GAL:Alias", logins[contact.object_id]))
        if request.picture is not None:
            props.append(_picture(contact, max_size, budget))
        return E("Find:Result", props)

    page = matches[request.low:request.high + 1]
    return _response("GAL", render_each("eas", page, result, folder_id=GLOBAL_ADDRESS_BOOK), request.low,
                     len(matches))
