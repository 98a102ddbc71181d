"""`make serve`'s demo mail server: a Dovecot under var/dovecot with the demo users' mailboxes.

It authenticates on the demo store like a production Dovecot (docs/mail.md), listens on loopback only
(IMAP 10143, LMTP 10024, ManageSieve 14190, or free ports when those are taken), and gets a few demo
mails by LMTP the first time. Under root Dovecot runs as the `dovecot` user, which then owns var/ (root
keeps full access); the store stays 0600.
"""

from __future__ import annotations

import logging
import os
import secrets
import smtplib
import socket
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from oxsync.mail.dovecot import Listeners
from oxsync.mail.runner import START_ATTEMPTS, DovecotProcess, DovecotUnavailable, distinct_ports, hand_to

log = logging.getLogger("oxsync.mail.demo")
DEMO_PORTS = (10143, 10024, 14190)
DEMO_MAILS = (
    ("Bienvenue sur oxsync", "Votre messagerie, vos contacts, vos calendriers et vos tâches, partout.", None),
    ("Réunion d'équipe lundi", "Ordre du jour en pièce jointe.", ("ordre-du-jour.txt", b"1. Projets\n2. Divers\n")),
    ("Votre compte est prêt", "Configurez votre téléphone avec un compte Exchange.", None),
)


def _taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ports() -> Listeners:
    if not any(_taken(p) for p in DEMO_PORTS):
        return Listeners(*DEMO_PORTS)
    imap, lmtp, sieve = distinct_ports(3)
    return Listeners(imap, lmtp, sieve)


def _message(subject: str, body: str, attachment: tuple[str, bytes] | None, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "oxsync <postmaster@localhost>", to, subject
    msg["Date"], msg["Message-ID"] = formatdate(), make_msgid(domain="oxsync.demo")
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="text", subtype="plain", filename=attachment[0])
    return msg.as_bytes()


def start_demo_dovecot(var: Path, store_url: str, addresses: list[str]) -> DovecotProcess | None:
    """Start the demo Dovecot (None, with one log line, when Dovecot is not installed or cannot start)."""
    var = var.resolve()
    base = var / "dovecot"
    secret = base / "master-password"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(24))
            secret.chmod(0o600)
        proc = DovecotProcess(base, store_url, _ports(), secret.read_text().strip())
        if os.geteuid() == 0:
            hand_to(var, "dovecot")
        proc.start(attempts=START_ATTEMPTS)  # its ports were chosen before Dovecot binds them
    except (DovecotUnavailable, OSError, KeyError) as exc:
        log.warning("demo mail server not started: %s", exc, extra={"event": "mail.demo_unavailable"})
        return None
    marker = base / "demo-mails-delivered"
    if not marker.exists():
        try:
            with smtplib.LMTP(proc.listeners.address, proc.listeners.lmtp, timeout=30) as lmtp:
                for address in addresses:
                    for subject, body, attachment in DEMO_MAILS:
                        lmtp.sendmail("postmaster@localhost", [address], _message(subject, body, attachment, address))
            marker.write_text("yes\n")
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("demo mails not delivered: %s", exc, extra={"event": "mail.demo_delivery_failed"})
    return proc
