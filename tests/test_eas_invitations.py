"""Invitations from outside in the Inbox (real Dovecot, real SMTP relay): shown to the phone as meeting
requests, answered with MeetingResponse, which files the meeting in the calendar and sends the REPLY."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from oxsync.eas import install
from oxsync.eas.wbxml import E
from oxsync.model import Appointment, Confirmation, Module
from tests.eas_client import client, items


@pytest.fixture
def phone(live_server, mail, sink):  # type: ignore[no-untyped-def]
    running = live_server(mail.store, setup=install, mail=mail.dovecot.mail_settings(),
                          outbound={"smtp_relay": f"127.0.0.1:{sink.port}", "poll_seconds": 3600.0})
    c = client(running, user=mail.alice_address, version="16.1")
    c.provision()
    c.folder_sync("0")
    return c


def invitation(mail, method: str = "REQUEST") -> bytes:  # type: ignore[no-untyped-def]
    ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Partner//EN\r\nMETHOD:" + method + "\r\n"
           "BEGIN:VEVENT\r\nUID:partner-meeting-42@partner.org\r\nSEQUENCE:2\r\nDTSTAMP:20310301T080000Z\r\n"
           "DTSTART:20310310T140000Z\r\nDTEND:20310310T150000Z\r\nSUMMARY:Contract review\r\n"
           "LOCATION:Partner HQ\r\nORGANIZER;CN=Eve Partner:mailto:eve@partner.org\r\n"
           f"ATTENDEE;CN=Alice;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{mail.alice_address}\r\n"
           "ATTENDEE;CN=Eve Partner;PARTSTAT=ACCEPTED:mailto:eve@partner.org\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Eve Partner <eve@partner.org>", mail.alice_address, "Contract review"
    msg.set_content("You are invited.")
    msg.add_alternative(ics, subtype="calendar", params={"method": method})
    return msg.as_bytes()


def test_invitation_is_a_meeting_request_and_the_answer_goes_back(phone, mail, sink) -> None:  # type: ignore[no-untyped-def]
    mail.deliver(invitation(mail))
    mail.deliver(b"From: bob@example.net\r\nTo: x@y.z\r\nSubject: plain\r\n\r\nno invitation\r\n")
    inbox = phone.folder_of_type(2)
    phone.sync(inbox, "0")
    got = items(phone.sync(inbox, window=10))
    by_class = {data.findtext("Email:MessageClass"): (sid, data) for sid, data in got.items()}
    assert set(by_class) == {"IPM.Schedule.Meeting.Request", "IPM.Note"}
    sid, data = by_class["IPM.Schedule.Meeting.Request"]
    request = data.find("Email:MeetingRequest")
    assert request.findtext("Email:StartTime") == "2031-03-10T14:00:00.000Z"
    assert request.findtext("Email:EndTime") == "2031-03-10T15:00:00.000Z"
    assert request.findtext("Email:Organizer") == "eve@partner.org"
    assert request.findtext("Email:Location") == "Partner HQ"
    assert request.findtext("Email:ResponseRequested") == "1"
    assert b"partner-meeting-42@partner.org" in base64.b64decode(request.findtext("Email:GlobalObjId"))
    assert request.findtext("Email2:MeetingMessageType") == "1"

    def respond(kind: str):  # type: ignore[no-untyped-def]
        reply = phone.post("MeetingResponse", E("MeetingResponse:MeetingResponse", E(
            "MeetingResponse:Request", E("MeetingResponse:UserResponse", kind),
            E("MeetingResponse:CollectionId", inbox), E("MeetingResponse:RequestId", sid))))
        return reply.body.find("MeetingResponse:Result")

    result = respond("1")
    assert result.findtext("MeetingResponse:Status") == "1"
    calendar_id = int(result.findtext("MeetingResponse:CalendarId"))
    [answer] = sink.wait_for(1)
    assert answer.sender == mail.alice_address and answer.recipients == ["eve@partner.org"]
    part = next(p for p in answer.parsed().walk() if p.get_content_type() == "text/calendar")
    [event] = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert str(event["UID"]) == "partner-meeting-42@partner.org" and int(event["SEQUENCE"]) == 2
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert str(event["ATTENDEE"]).lower() == f"mailto:{mail.alice_address}"
    with mail.store.session(mail.tenant_id, mail.alice) as session:
        folder = next(a.folder.id for a in session.list_folders()
                      if a.folder.module == Module.CALENDAR and a.folder.default_folder)
        stored = session.get_object(folder, calendar_id)
        assert isinstance(stored, Appointment) and stored.organizer == "eve@partner.org"
        mine = next(p for p in stored.participants if p.entity == mail.alice)
        assert mine.confirmation == Confirmation.ACCEPT
    imap = mail.imap()
    imap.select_folder("INBOX", readonly=True)
    assert imap.search(["SUBJECT", "Contract review"]) == []  # the answered request went to Deleted Items
    imap.select_folder("Trash", readonly=True)
    [trashed] = imap.search(["SUBJECT", "Contract review"])
    imap.logout()
    # iOS answers twice: one REPLY (the request now sits in Trash, where the phone answers from)
    trash = phone.folder_of_type(4)

    def respond_in(folder: str, server_id: str, kind: str):  # type: ignore[no-untyped-def]
        reply = phone.post("MeetingResponse", E("MeetingResponse:MeetingResponse", E(
            "MeetingResponse:Request", E("MeetingResponse:UserResponse", kind),
            E("MeetingResponse:CollectionId", folder), E("MeetingResponse:RequestId", server_id))))
        return reply.body.find("MeetingResponse:Result")

    assert respond_in(trash, str(trashed), "1").findtext("MeetingResponse:Status") == "1"
    assert len(sink.messages) == 1
    assert respond_in(trash, str(trashed), "3").findtext("MeetingResponse:CalendarId") is None  # a second REPLY
    assert len(sink.wait_for(2)) == 2
