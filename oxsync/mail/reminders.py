"""Render reminder and daily digest mails queued by oxsync/store/reminders.py (plain text, RFC 3834
`Auto-Submitted: auto-generated` so vacation responders and list servers leave them alone)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any

from oxsync.mail.outbound import renderer
from oxsync.model import Appointment, Task
from oxsync.store import dataclass_json
from oxsync.store.api import Store
from oxsync.store.outbound import OutboundMail


def _moment(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return ""


def _message(mail: OutboundMail, subject: str, body: str, created_ms: int) -> bytes:
    to = mail.payload["to"] if mail.payload else ["", mail.recipients[0]]
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = formataddr(("oxsync reminders", mail.sender))
    msg["To"] = formataddr(tuple(to))
    msg["Subject"] = subject
    msg["Date"] = formatdate(created_ms / 1000, usegmt=True)
    domain = mail.sender.rpartition("@")[2] or "oxsync.invalid"
    msg["Message-ID"] = f"<{mail.kind}-{hashlib.sha256(mail.key.encode()).hexdigest()[:32]}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg.as_bytes()


def _task_line(task: Task) -> str:
    due = f" (due {_moment(task.end_date)})" if task.end_date else ""
    done = f", {task.percent_completed}% done" if task.percent_completed else ""
    return f"- {task.title or '(no title)'}{due}{done}"


@renderer("reminder")
def render_reminder(store: Store, mail: OutboundMail) -> bytes:
    assert mail.payload is not None
    payload = mail.payload
    if payload["type"] == "task":
        task: Task = dataclass_json.from_dict(Task, payload["object"])
        lines = [f"Task: {task.title or '(no title)'}"]
        if task.start_date:
            lines.append(f"Start: {_moment(task.start_date)}")
        if task.end_date:
            lines.append(f"Due: {_moment(task.end_date)}")
        lines.append(f"Status: {task.status.name.replace('_', ' ').lower()}, {task.percent_completed}% done")
        subject = f"Reminder: {task.title or '(no title)'}" + (f" (due {_moment(task.end_date)})" if task.end_date else "")
        note = task.note
    else:
        appt: Appointment = dataclass_json.from_dict(Appointment, payload["object"])
        occurrence = payload.get("occurrence_start_ms")  # one occurrence of a series
        when = _moment(datetime.fromtimestamp(occurrence / 1000, UTC) if occurrence is not None else appt.start_date)
        lines = [f"Appointment: {appt.title or '(no title)'}", f"When: {when}"]
        if appt.location:
            lines.append(f"Where: {appt.location}")
        subject = f"Reminder: {appt.title or '(no title)'} @ {when}"
        note = appt.note
    if note:
        lines += ["", note]
    return _message(mail, subject, "\n".join(lines) + "\n", payload["due_ms"])


@renderer("digest")
def render_digest(store: Store, mail: OutboundMail) -> bytes:
    assert mail.payload is not None
    payload = mail.payload
    current = [dataclass_json.from_dict(Task, t) for t in payload["current"]]
    upcoming = [dataclass_json.from_dict(Task, t) for t in payload["upcoming"]]
    lines = [f"Your tasks on {payload['day']}", ""]
    if current:
        lines += ["Current:", *(_task_line(t) for t in current), ""]
    if upcoming:
        lines += ["Upcoming:", *(_task_line(t) for t in upcoming), ""]
    return _message(mail, f"Tasks for {payload['day']}: {len(current)} current, {len(upcoming)} upcoming",
                    "\n".join(lines), payload["created_ms"])
