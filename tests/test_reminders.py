"""Reminder mails, the daily task digest and collected addresses, with a real SMTP relay (aiosmtpd)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from oxsync.mail import reminders as reminder_mails  # noqa: F401 - registers the renderers
from oxsync.model import Appointment, Contact, Module, Task
from oxsync.model.appointment import Recurrence, RecurrenceType
from oxsync.model.task import TaskStatus
from oxsync.model.timeutil import to_ms
from oxsync.store import reminders
from oxsync.store.collect import TITLE
from tests.smtp_sink import drain

DUE = datetime(2031, 5, 6, 8, 0, tzinfo=UTC)
T = to_ms(DUE)


def bob_task(world, **fields):  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.bob, Module.TASK)
    with world.as_user(world.bob, write=True) as session:
        return folder, session.create_object(folder, Task(title="File the VAT return", **fields))


def test_task_reminder_is_mailed_once_when_due(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder, task = bob_task(world, alarm=DUE, end_date=date(2031, 5, 7), note="Form 3310")
    assert reminders.scan(relayed, now=T - 1) == 0
    results: list[int] = []
    scanners = [threading.Thread(target=lambda: results.append(reminders.scan(relayed, now=T + 1000)))
                for _ in range(3)]  # several nodes scan at once
    for t in scanners:
        t.start()
    for t in scanners:
        t.join(30)
    assert sum(results) == 1
    assert reminders.scan(relayed, now=T + 60_000) == 0
    assert drain(relayed) == 1
    [mail] = sink.messages
    msg = mail.parsed()
    assert mail.recipients == ["bob@example.com"] and msg["Subject"] == "Reminder: File the VAT return (due 2031-05-07)"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert "Due: 2031-05-07" in body and "Form 3310" in body
    with world.as_user(world.bob, write=True) as session:  # a new reminder time is a new reminder
        current = session.get_object(folder, task.object_id)
        current.alarm = DUE + timedelta(hours=2)
        session.update_object(folder, current)
        session.update_object(folder, session.get_object(folder, task.object_id))
    assert reminders.scan(relayed, now=T + 2 * 3_600_000) == 1
    assert drain(relayed) == 1 and len(sink.messages) == 2


def test_no_reminder_when_done_switched_off_or_too_late(relayed, world) -> None:  # type: ignore[no-untyped-def]
    bob_task(world, alarm=DUE, status=TaskStatus.DONE)
    bob_task(world, alarm=DUE - timedelta(days=3))  # the server was down: skipped, not mailed late
    assert reminders.scan(relayed, now=T) == 0
    with relayed.transaction(world.tenant_id, write=True) as tx:
        reminders.set_options(tx, world.bob, reminder_mails=False)
    bob_task(world, alarm=DUE + timedelta(minutes=1))
    assert reminders.scan(relayed, now=T + 120_000) == 0
    assert relayed.outbound.list() == []


def test_appointment_email_alarm(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    folder = world.default_folder(world.alice, Module.CALENDAR)
    start = DUE + timedelta(hours=1)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(folder, Appointment(title="Dentist", start_date=start, end_date=start + timedelta(hours=1),
                                                  alarm=30, extra={"VALARM:ACTION": "ACTION:EMAIL"}))
        session.create_object(folder, Appointment(title="Popup only", start_date=start + timedelta(hours=2),
                                                  end_date=start + timedelta(hours=3), alarm=150))
    assert reminders.scan(relayed, now=to_ms(start) - 31 * 60_000) == 0
    assert reminders.scan(relayed, now=to_ms(start) - 30 * 60_000) == 1
    assert drain(relayed) == 1
    assert sink.messages[0].parsed()["Subject"] == "Reminder: Dentist @ 2031-05-06 09:00 UTC"


def test_series_email_alarm_is_mailed_per_occurrence(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    """A daily series with an e-mail alarm: one mail per occurrence, naming that occurrence, none for a
    deleted occurrence, never twice for the same one."""
    folder = world.default_folder(world.alice, Module.CALENDAR)
    start = DUE + timedelta(hours=1)
    with world.as_user(world.alice, write=True) as session:
        appt = session.create_object(folder, Appointment(
            title="Stand-up", start_date=start, end_date=start + timedelta(minutes=15), alarm=10,
            recurrence=Recurrence(type=RecurrenceType.DAILY, occurrences=4), extra={"VALARM:ACTION": "ACTION:EMAIL"}))
        session.delete_occurrence(folder, appt.object_id, (start + timedelta(days=1)).date())
    day = 86_400_000
    first = to_ms(start) - 10 * 60_000
    assert reminders.scan(relayed, now=first - 1) == 0
    assert reminders.scan(relayed, now=first) == 1
    assert reminders.scan(relayed, now=first + 60_000) == 0  # not twice
    assert reminders.scan(relayed, now=first + day) == 0  # the second occurrence was deleted
    assert reminders.scan(relayed, now=first + 2 * day) == 1
    assert reminders.scan(relayed, now=first + 3 * day) == 1
    assert reminders.scan(relayed, now=first + 4 * day) == 0  # four occurrences: the series is over
    assert drain(relayed) == 3
    subjects = [m.parsed()["Subject"] for m in sink.messages]
    assert subjects == ["Reminder: Stand-up @ 2031-05-06 09:00 UTC", "Reminder: Stand-up @ 2031-05-08 09:00 UTC",
                        "Reminder: Stand-up @ 2031-05-09 09:00 UTC"]


def test_daily_digest_of_current_and_upcoming_tasks(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    today = date(2031, 5, 6)
    bob_task(world, start_date=today - timedelta(days=2), end_date=today + timedelta(days=1))  # current
    folder = world.default_folder(world.bob, Module.TASK)
    with world.as_user(world.bob, write=True) as session:
        session.create_object(folder, Task(title="Overdue report", end_date=today - timedelta(days=1)))
        session.create_object(folder, Task(title="Prepare audit", end_date=today + timedelta(days=3)))
        session.create_object(folder, Task(title="Far away", end_date=today + timedelta(days=40)))
        session.create_object(folder, Task(title="Already done", end_date=today, status=TaskStatus.DONE))
    seven = to_ms(datetime(2031, 5, 6, 7, 30, tzinfo=UTC))
    assert reminders.scan_digests(relayed, now=seven) == 0  # nobody asked for one
    with relayed.transaction(world.tenant_id, write=True) as tx:
        reminders.set_options(tx, world.bob, digest_hour=7)
    assert reminders.scan_digests(relayed, now=seven - 3_600_000) == 0  # not yet 7:00
    assert reminders.scan_digests(relayed, now=seven) == 1
    assert reminders.scan_digests(relayed, now=seven + 600_000) == 0  # once a day
    assert drain(relayed) == 1
    msg = sink.messages[0].parsed()
    assert msg["Subject"] == "Tasks for 2031-05-06: 2 current, 1 upcoming"
    body = msg.get_content()
    current, upcoming = body.split("Upcoming:")
    assert "File the VAT return" in current and "Overdue report" in current
    assert "Prepare audit" in upcoming and "Far away" not in body and "Already done" not in body
    assert reminders.scan_digests(relayed, now=seven + 86_400_000) == 1  # the next day


def test_collected_addresses(relayed, world) -> None:  # type: ignore[no-untyped-def]
    contacts = world.default_folder(world.alice, Module.CONTACT)
    with world.as_user(world.alice, write=True) as session:
        session.create_object(contacts, Contact(display_name="Old Friend", email1="friend@elsewhere.org"))
        session.send_mail("c0", "alice@example.com", ["first@elsewhere.org"], b"Subject: x\r\n\r\nx\r\n")
    with world.as_user(world.alice) as session:
        assert TITLE not in [a.folder.title for a in session.list_folders()]  # off by default
    with relayed.transaction(world.tenant_id, write=True) as tx:
        reminders.set_options(tx, world.alice, collect_addresses=True)
    with world.as_user(world.alice, write=True) as session:
        session.send_mail("c1", "alice@example.com", ["friend@elsewhere.org", "new@elsewhere.org", "bob@example.com",
                                                      "Other@Elsewhere.org"], b"Subject: x\r\n\r\nx\r\n",
                          names={"new@elsewhere.org": "New Person"})
        session.send_mail("c1", "alice@example.com", ["again@elsewhere.org"], b"Subject: x\r\n\r\nx\r\n")  # replay
        session.send_mail("c2", "alice@example.com", ["new@elsewhere.org"], b"Subject: y\r\n\r\ny\r\n")
    with world.as_user(world.alice) as session:
        [folder] = [a.folder for a in session.list_folders() if a.folder.title == TITLE]
        collected = sorted((c.email1, c.display_name) for c in session.list_objects(folder.id))
    assert collected == [("new@elsewhere.org", "New Person"), ("other@elsewhere.org", "other@elsewhere.org")]


def test_cli_mail_options(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from oxsync.cli import main

    url = f"sqlite:///{tmp_path}/cli.db"

    def run(*argv: str) -> tuple[int, str]:
        code = main(["--db", url, *argv])
        return code, capsys.readouterr().out

    assert run("init", "--domain", "example.com")[0] == 0
    assert run("user", "add", "bob", "--password", "pw-bob-123")[0] == 0
    assert json.loads(run("user", "mail-options", "bob", "--json")[1]) == {
        "reminder_mails": True, "digest_hour": None, "collect_addresses": False}
    assert run("user", "mail-options", "bob", "--digest-hour", "7", "--collect-addresses", "on")[0] == 0
    assert json.loads(run("user", "mail-options", "bob", "--json")[1]) == {
        "reminder_mails": True, "digest_hour": 7, "collect_addresses": True}
    assert "7:00 UTC" in run("user", "mail-options", "bob")[1]
    assert run("user", "mail-options", "bob", "--digest-hour", "25")[0] == 2


def test_senders_of_delivered_mail_are_collected_but_not_list_mail(relayed, world) -> None:  # type: ignore[no-untyped-def]
    from oxsync.mail.itip_in import delivered

    def mail(sender: str, *headers: str) -> bytes:
        return (f"From: {sender}\r\nTo: alice@example.com\r\nSubject: hi\r\n" + "".join(h + "\r\n" for h in headers)
                + "\r\nhello\r\n").encode()

    assert delivered(relayed, "alice@example.com", mail("Zoe Client <zoe@client.org>")) == [
        "sender already known (or collecting is off)"]  # off by default
    with relayed.transaction(world.tenant_id, write=True) as tx:
        reminders.set_options(tx, world.alice, collect_addresses=True)
    assert delivered(relayed, "alice@example.com", mail("Zoe Client <zoe@client.org>")) == ["collected zoe@client.org"]
    assert delivered(relayed, "alice@example.com", mail("Zoe Client <zoe@client.org>")) == [
        "sender already known (or collecting is off)"]
    for headers in (["List-Id: <news.list.org>"], ["Precedence: bulk"], ["Auto-Submitted: auto-replied"]):
        assert delivered(relayed, "alice@example.com", mail("news@list.org", *headers)) == [
            "list mail: sender not collected"]
    assert delivered(relayed, "nobody@nowhere.org", mail("x@y.org")) == ["unknown recipient"]
    with world.as_user(world.alice) as session:
        [folder] = [a.folder for a in session.list_folders() if a.folder.title == TITLE]
        assert [(c.email1, c.display_name) for c in session.list_objects(folder.id)] == [("zoe@client.org", "Zoe Client")]
