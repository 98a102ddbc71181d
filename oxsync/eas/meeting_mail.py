"""MeetingResponse on an invitation that arrived by mail (a meeting organised outside oxsync).

The invitation is read from the mail (IMAP, BODY.PEEK), put in the user's default calendar if it is
not there yet (by UID; the outside organiser stays the organiser), and the user's answer is set with
`UserSession.confirm`: the store then queues the iMIP REPLY to the organiser (store/itip.py), in the
same transaction. The answered request then moves to Deleted Items, as Exchange does. Requests on
calendar items are answered as before (`commands/items.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from oxsync.eas import mailfolders
from oxsync.eas.request import EasRequest, EasResponse
from oxsync.eas.service import Eas
from oxsync.eas.wbxml import E, Element
from oxsync.mail import gateway
from oxsync.mail.invitation import find_invitation
from oxsync.model import Appointment, Confirmation, Module, Participant, ParticipantKind
from oxsync.store.errors import StoreError
from oxsync.store.session import UserSession

log = logging.getLogger("oxsync.eas.meeting_mail")
RESPONSES = {"1": Confirmation.ACCEPT, "2": Confirmation.TENTATIVE, "3": Confirmation.DECLINE}
"""Same as commands/items.py."""


def _resolver(session: UserSession) -> Callable[[str], Participant | None]:
    """ATTENDEE address -> internal participant (user or resource) of this tenant, else None."""
    def resolve(address: str) -> Participant | None:
        found = session.find_principal(address.strip().lower())
        if found is None:
            return None
        kind = ParticipantKind.USER if found[0] == "user" else ParticipantKind.RESOURCE
        return Participant(kind=kind, entity=found[1], email=address.strip().lower())
    return resolve


def _default_calendar(session: UserSession) -> int | None:
    for access in session.list_folders():
        folder = access.folder
        if folder.module == Module.CALENDAR and folder.default_folder and folder.owner == session.user_id:
            return folder.id
    return None


def _answer_invitation(session: UserSession, request_id: str, raw: bytes | None, answer: Confirmation) -> Element:
    result = E("MeetingResponse:Result", E("MeetingResponse:RequestId", request_id))
    invitation = find_invitation(raw, resolve=_resolver(session)) if raw else None
    calendar = _default_calendar(session)
    if invitation is None or invitation.method != "REQUEST" or calendar is None:
        result.append(E("MeetingResponse:Status", "2"))
        return result
    try:
        stored = session.find_by_uid(calendar, invitation.uid)
        if not isinstance(stored, Appointment):
            event = invitation.appointment
            event.uid, event.object_id, event.ignore_conflicts = invitation.uid, None, True
            stored = session.create_object(calendar, event)
        assert stored.object_id is not None
        session.confirm(calendar, stored.object_id, answer, "")
    except StoreError as exc:
        log.warning("invitation answer refused: %s", exc, extra={"event": "eas.meeting_mail_refused"})
        result.append(E("MeetingResponse:Status", "2"))
        return result
    result.append(E("MeetingResponse:Status", "1"))
    if answer != Confirmation.DECLINE:
        result.append(E("MeetingResponse:CalendarId", str(stored.object_id)))
    return result


def respond(eas: Eas, req: EasRequest, requests: list[Element],
            store_answer: Callable[[UserSession, Element], Element]) -> Deferred[EasResponse]:
    mail = eas.mail
    assert mail is not None
    account = req.principal.email
    wanted = [(r.findtext("MeetingResponse:CollectionId", ""), r.findtext("MeetingResponse:RequestId", ""))
              for r in requests]

    def fetch(conn: Any) -> dict[tuple[str, str], bytes]:
        folders = mail.list_folders_sync(conn, account)
        found: dict[tuple[str, str], bytes] = {}
        for cid, rid in wanted:
            folder = mailfolders.find(folders, cid) if mailfolders.is_mail_id(cid) else None
            if folder is None or not rid.isdigit():
                continue
            got = gateway.fetch_messages(conn, folder.name, [int(rid)], mail.settings.max_fetch_bytes)
            if int(rid) in got:
                found[(cid, rid)] = got[int(rid)].raw
        return found

    def answer_all(raws: dict[tuple[str, str], bytes]) -> Deferred[EasResponse]:
        def work(session: UserSession) -> EasResponse:
            out = E("MeetingResponse:MeetingResponse")
            for request, key in zip(requests, wanted, strict=True):
                if not mailfolders.is_mail_id(key[0]):
                    out.append(store_answer(session, request))
                    continue
                answer = RESPONSES.get(request.findtext("MeetingResponse:UserResponse", ""))
                if answer is None:
                    out.append(E("MeetingResponse:Result", E("MeetingResponse:RequestId", key[1]),
                                 E("MeetingResponse:Status", "2")))
                    continue
                out.append(_answer_invitation(session, key[1], raws.get(key), answer))
            return EasResponse(out)
        return eas.write(req, work)

    def tidy(response: EasResponse) -> Deferred[EasResponse] | EasResponse:
        """Answered requests leave the Inbox for Deleted Items, as Exchange does (the phone sees them go)."""
        results = response.body.findall("MeetingResponse:Result") if isinstance(response.body, Element) else []
        answered = [key for key, result in zip(wanted, results, strict=True)
                    if mailfolders.is_mail_id(key[0]) and result.findtext("MeetingResponse:Status") == "1"]

        def move(conn: Any) -> None:
            folders = mail.list_folders_sync(conn, account)
            trash = mailfolders.special(folders, "trash")
            for cid, rid in answered:
                folder = mailfolders.find(folders, cid)
                if trash is not None and folder is not None and folder.name != trash.name:
                    gateway.move(conn, folder.name, [int(rid)], trash.name)

        if not answered:
            return response
        moved = mail.run(account, move)
        moved.addErrback(lambda f: log.warning("answered invitation not moved: %s", f.getErrorMessage(),
                                               extra={"event": "eas.meeting_mail_move_failed"}))
        return moved.addCallback(lambda _: response)

    return mail.run(account, fetch).addCallback(answer_all).addCallback(tidy)
