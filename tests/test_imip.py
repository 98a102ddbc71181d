"""iMIP to external participants (RFC 6047/5546): what the relay receives when meetings organised in
oxsync are created, changed, answered and cancelled, parsed with the `email` package and icalendar."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from icalendar import Calendar

from oxsync.mail import imip  # noqa: F401 - registers the renderer
from oxsync.model import Appointment, Confirmation, Module, Participant, ParticipantKind
from oxsync.model.appointment import Recurrence, RecurrenceType
from tests.smtp_sink import Received, drain

START = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
EVE = "eve@partner.org"
BOB = "bob@example.com"


def calendar_of(received: Received) -> tuple[str, Calendar]:
    msg = received.parsed()
    parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return parts[0].get_param("method"), Calendar.from_ical(parts[0].get_content())


def meeting(world, *externals: tuple[str, str], **fields):  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    parts = [Participant(ParticipantKind.USER, world.bob)]
    parts += [Participant(ParticipantKind.EXTERNAL_USER, email=email, display_name=name) for email, name in externals]
    appt = Appointment(title="Budget review", location="Room 2", start_date=START, end_date=START + timedelta(hours=1),
                       participants=parts, alarm=15, **fields)
    with world.as_user(world.alice, write=True) as session:
        return folder, session.create_object(folder, appt)


def test_invitation_update_and_cancel(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder, appt = meeting(world, (EVE, "Eve Partner"), ("zoe@other.net", ""))
    assert drain(relayed) == 2  # one per external attendee, none to bob (he has it in his calendar)
    by_rcpt = {m.recipients[0]: m for m in sink.messages}
    assert set(by_rcpt) == {EVE, "zoe@other.net"}
    mail = by_rcpt[EVE]
    msg = mail.parsed()
    assert mail.sender == "alice@example.com" and msg["From"].addresses[0].addr_spec == "alice@example.com"
    assert msg["To"].addresses[0].addr_spec == EVE and msg["Subject"].startswith("Invitation: Budget review")
    assert msg["Content-Class"] == "urn:content-classes:calendarmessage"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/calendar"]
    method, cal = calendar_of(mail)
    assert method == "REQUEST" and str(cal["METHOD"]) == "REQUEST"
    [event] = cal.walk("VEVENT")
    uid = str(event["UID"])
    assert uid == appt.uid or uid
    assert int(event["SEQUENCE"]) == 0 and event["DTSTART"].dt == START
    assert str(event["ORGANIZER"]) == "mailto:alice@example.com"
    attendees = {str(a).lower(): a for a in event["ATTENDEE"]}
    assert {"mailto:" + EVE, "mailto:zoe@other.net", "mailto:" + BOB} <= set(attendees)
    assert attendees["mailto:" + EVE].params["RSVP"] == "TRUE"
    assert not list(cal.walk("VALARM"))  # alice's own reminder stays hers

    with world.as_user(world.alice, write=True) as session:  # re-save, nothing significant: no mail
        same = session.get_object(folder, appt.object_id)
        session.update_object(folder, same)
        session.confirm(folder, appt.object_id, Confirmation.TENTATIVE)
    assert drain(relayed) == 0

    with world.as_user(world.alice, write=True) as session:  # new time: SEQUENCE 1 to everyone outside
        moved = session.get_object(folder, appt.object_id)
        moved.start_date, moved.end_date = START + timedelta(days=1), START + timedelta(days=1, hours=1)
        session.update_object(folder, moved)
    assert drain(relayed) == 2
    for mail in sink.messages[2:]:
        method, cal = calendar_of(mail)
        [event] = cal.walk("VEVENT")
        assert method == "REQUEST" and int(event["SEQUENCE"]) == 1 and str(event["UID"]) == uid
        assert event["DTSTART"].dt == START + timedelta(days=1)
        assert mail.parsed()["Subject"].startswith("Updated invitation")
    with world.as_user(world.alice) as session:
        assert session.get_object(folder, appt.object_id).sequence == 1  # the store says it changed it

    with world.as_user(world.alice, write=True) as session:  # zoe removed: CANCEL to her only
        current = session.get_object(folder, appt.object_id)
        current.participants = [p for p in current.participants if p.email != "zoe@other.net"]
        session.update_object(folder, current)
    assert drain(relayed) == 1
    method, cal = calendar_of(sink.messages[4])
    assert method == "CANCEL" and sink.messages[4].recipients == ["zoe@other.net"]
    assert str(cal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"

    with world.as_user(world.alice, write=True) as session:  # deleted by the organiser: CANCEL, SEQUENCE 2
        session.delete_object(folder, appt.object_id)
    assert drain(relayed) == 1
    method, cal = calendar_of(sink.messages[5])
    [event] = cal.walk("VEVENT")
    assert (method, sink.messages[5].recipients, int(event["SEQUENCE"])) == ("CANCEL", [EVE], 2)
    assert sink.messages[5].parsed()["Subject"].startswith("Cancelled: Budget review")
    assert len({m.parsed()["Message-ID"] for m in sink.messages}) == 6


def test_added_attendee_gets_the_current_version_once(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder, appt = meeting(world, (EVE, "Eve"))
    assert drain(relayed) == 1
    with world.as_user(world.alice, write=True) as session:
        current = session.get_object(folder, appt.object_id)
        current.participants.append(Participant(ParticipantKind.EXTERNAL_USER, email="new@other.net"))
        session.update_object(folder, current)
        session.update_object(folder, session.get_object(folder, appt.object_id))
    assert drain(relayed) == 1 and sink.messages[1].recipients == ["new@other.net"]
    assert int(calendar_of(sink.messages[1])[1].walk("VEVENT")[0]["SEQUENCE"]) == 0


def test_internal_only_meetings_send_nothing(relayed, world) -> None:  # type: ignore[no-untyped-def]
    meeting(world)
    assert relayed.outbound.list() == []


def test_reply_to_an_external_organiser(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.bob, Module.CALENDAR)
    invite = Appointment(title="Partner sync", start_date=START, end_date=START + timedelta(hours=1),
                         uid="ext-uid-1@partner.org", organizer=EVE, sequence=3,
                         participants=[Participant(ParticipantKind.EXTERNAL_USER, email=EVE, display_name="Eve"),
                                       Participant(ParticipantKind.USER, world.bob)])
    with world.as_user(world.bob, write=True) as session:
        stored = session.create_object(folder, invite)
    assert drain(relayed) == 0  # we do not invite on behalf of an outside organiser
    for _ in range(2):  # iOS answers twice: one REPLY
        with world.as_user(world.bob, write=True) as session:
            session.confirm(folder, stored.object_id, Confirmation.ACCEPT)
    assert drain(relayed) == 1
    mail = sink.messages[0]
    assert mail.sender == BOB and mail.recipients == [EVE]
    method, cal = calendar_of(mail)
    [event] = cal.walk("VEVENT")
    assert method == "REPLY" and str(event["UID"]) == "ext-uid-1@partner.org" and int(event["SEQUENCE"]) == 3
    attendee = event["ATTENDEE"]
    assert str(attendee).lower() == "mailto:" + BOB and attendee.params["PARTSTAT"] == "ACCEPTED"
    assert str(event["ORGANIZER"]) == "mailto:" + EVE
    with world.as_user(world.bob, write=True) as session:  # deleting it = declining: one more REPLY
        session.delete_object(folder, stored.object_id)
    assert drain(relayed) == 1
    assert calendar_of(sink.messages[1])[1].walk("VEVENT")[0]["ATTENDEE"].params["PARTSTAT"] == "DECLINED"


def test_occurrence_change_names_the_instance(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder, appt = meeting(world, (EVE, "Eve"), recurrence=Recurrence(RecurrenceType.DAILY, occurrences=5))
    assert drain(relayed) == 1
    assert "RRULE" in calendar_of(sink.messages[0])[1].walk("VEVENT")[0]
    with world.as_user(world.alice, write=True) as session:
        series = session.get_object(folder, appt.object_id)
        changed = dataclasses.replace(series, object_id=None, recurrence=None, title="Budget review (long)",
                                      start_date=START + timedelta(days=2, hours=1),
                                      end_date=START + timedelta(days=2, hours=3))
        session.change_occurrence(folder, appt.object_id, date(2031, 3, 6), changed)
    drain(relayed)
    instance = [m for m in sink.messages[1:] if "RECURRENCE-ID" in calendar_of(m)[1].walk("VEVENT")[0]]
    assert len(instance) == 1
    event = calendar_of(instance[0])[1].walk("VEVENT")[0]
    assert event["RECURRENCE-ID"].dt.date() == date(2031, 3, 6) and str(event["UID"]) == str(
        calendar_of(sink.messages[0])[1].walk("VEVENT")[0]["UID"])


def test_caldav_put_invites_the_outside_through_the_running_queue(live_server, store, world, sink) -> None:  # type: ignore[no-untyped-def]
    """A dialect (CalDAV) saves a meeting with an outside attendee; the server's own worker sends the REQUEST."""
    from oxsync.dav import install
    from tests.davhelp import Dav, event

    running = live_server(store, setup=install, outbound={"smtp_relay": f"127.0.0.1:{sink.port}",
                                                          "poll_seconds": 3600.0})
    dav = Dav(running.port, world)
    extra = ("ORGANIZER;CN=Alice:mailto:alice@example.com\r\n"
             "ATTENDEE;CN=Eve;PARTSTAT=NEEDS-ACTION:mailto:eve@partner.org\r\n")
    reply = dav.put(dav.calendar() + "dav-meeting.ics", event("dav-meeting-1", "From Thunderbird", extra=extra))
    assert reply.status in (201, 204)
    [mail] = sink.wait_for(1)
    method, cal = calendar_of(mail)
    [vevent] = cal.walk("VEVENT")
    assert method == "REQUEST" and str(vevent["UID"]) == "dav-meeting-1" and mail.recipients == ["eve@partner.org"]


def _reply_from(request: Received, attendee: str, partstat: str, sender: str | None = None) -> bytes:
    """What an outside calendar (Gmail, Outlook) answers: the REQUEST's event, METHOD:REPLY, only us."""
    from email.message import EmailMessage

    _, cal = calendar_of(request)
    cal["METHOD"] = "REPLY"
    for vevent in cal.walk("VEVENT"):
        mine = [a for a in vevent["ATTENDEE"] if str(a).lower() == f"mailto:{attendee}"]
        del vevent["ATTENDEE"]
        mine[0].params["PARTSTAT"] = partstat
        vevent.add("ATTENDEE", mine[0])
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender or attendee, "alice@example.com", f"{partstat}: Budget review"
    msg.set_content("answer")
    msg.add_alternative(cal.to_ical().decode(), subtype="calendar", params={"method": "REPLY"})
    return msg.as_bytes()


def test_outside_answer_updates_the_attendee_status(relayed, world, sink, backend, store_url, capsys) -> None:  # type: ignore[no-untyped-def]
    from oxsync.mail.itip_in import handle

    folder, appt = meeting(world, (EVE, "Eve Partner"))
    assert drain(relayed) == 1
    request = sink.messages[0]

    def eve_status() -> Confirmation:
        with world.as_user(world.bob) as session:  # an internal attendee sees it too
            bob_folder = world.default_folder(world.bob, Module.CALENDAR)
            got = session.get_object(bob_folder, appt.object_id)
        return next(p.confirmation for p in got.participants if p.email == EVE)

    assert eve_status() == Confirmation.NONE
    forged = _reply_from(request, EVE, "DECLINED", sender="mallory@evil.example")
    assert handle(relayed, "alice@example.com", forged) == [f"{EVE}: not from the attendee (mallory@evil.example)"]
    assert eve_status() == Confirmation.NONE
    with world.as_user(world.alice) as session:
        before = session.revision()[0]
    assert handle(relayed, "alice@example.com", _reply_from(request, EVE, "ACCEPTED")) == [f"{EVE}: updated"]
    assert eve_status() == Confirmation.ACCEPT
    with world.as_user(world.alice) as session:
        after = session.revision()[0]
    assert after > before
    assert handle(relayed, "alice@example.com", _reply_from(request, EVE, "ACCEPTED")) == [f"{EVE}: unchanged"]
    with world.as_user(world.alice) as session:
        assert session.revision()[0] == after  # a repeated REPLY writes nothing
    assert drain(relayed) == 0  # the organiser's store learning an answer sends no mail
    if backend == "sqlite":  # the hand-off an MTA or Sieve pipe runs
        import io

        from oxsync.cli import main

        capsys.readouterr()
        stdin = io.TextIOWrapper(io.BytesIO(_reply_from(request, EVE, "TENTATIVE")))
        import sys

        saved, sys.stdin = sys.stdin, stdin
        try:
            assert main(["--db", store_url, "mail", "itip-in", "alice@example.com"]) == 0
        finally:
            sys.stdin = saved
        assert capsys.readouterr().out.strip() == f"{EVE}: updated"
        assert eve_status() == Confirmation.TENTATIVE
