"""The IMAP and SMTP servers a mail client (Outlook over IMAP, Thunderbird, an iPhone's IMAP account) is
told to use: one source for `serve`'s printed instructions, Thunderbird autoconfig, Apple profiles and
the console's set-up page."""

from __future__ import annotations

from dataclasses import dataclass

from oxsync.config import Settings

SOCKET_TYPES = {"implicit": "SSL", "starttls": "STARTTLS", "none": "plain"}
"""`[mail] imap_tls` -> autoconfig's socketType."""


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    socket_type: str
    """`SSL`, `STARTTLS` or `plain` (Thunderbird autoconfig's words)."""


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and host:
        return host.strip("[]"), int(port)
    return value.strip("[]"), default_port


def imap_server(settings: Settings) -> MailServer | None:
    """The mailboxes' IMAP server, or None when this server has no mail (`[mail] imap_host` empty)."""
    cfg = settings.mail
    if not cfg.imap_host:
        return None
    return MailServer(cfg.imap_host, cfg.imap_port, SOCKET_TYPES.get(cfg.imap_tls, "plain"))


def smtp_server(settings: Settings) -> MailServer | None:
    """The submission relay, or None when none is configured (`[outbound] smtp_relay`/`[eas] smtp_smarthost`)."""
    relay = settings.outbound.smtp_relay or settings.eas.smtp_smarthost
    if not relay:
        return None
    host, port = split_host_port(relay, 25)
    return MailServer(host, port, "SSL" if port == 465 else "STARTTLS" if port == 587 else "plain")
