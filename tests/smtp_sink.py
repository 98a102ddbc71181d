"""An SMTP sink on loopback (aiosmtpd): records envelopes and message bytes as the relay received them.

`refuse` holds SMTP replies to give, one per DATA, before accepting again (e.g. "451 4.3.0 try later");
`hold` (a threading.Event) makes the final answer to DATA wait until it is set: the message is already
recorded as received, the sender has no answer yet, so a test can kill a node inside that window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""

    def parsed(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)  # type: ignore[return-value]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        if self.sink.refuse:
            return self.sink.refuse.pop(0)
        data = envelope.original_content or envelope.content
        self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(data)))
        self.sink.in_data += 1
        # held: the relay has the message but the sender has no answer yet (the crash window)
        while self.sink.hold is not None and not self.sink.hold.is_set():
            await asyncio.sleep(0.01)
        return "250 2.0.0 queued"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.refuse: list[str] = []
        self.hold: threading.Event | None = None
        self.in_data = 0
        for attempt in range(5):  # aiosmtpd needs a concrete port; another process may take it first
            self.port = _free_port()
            self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
            try:
                self.controller.start()
                break
            except OSError:
                if attempt == 4:
                    raise

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first `count` messages, waiting (bounded) for asynchronous senders to deliver them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"expected {count} mails, the relay got {len(self.messages)}"
        return self.messages[:count]

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.controller.stop()


def drain(store) -> int:  # type: ignore[no-untyped-def]
    """Work the outbound queue until it is empty; every mail must have been sent. Returns how many."""
    from oxsync.mail.outbound import process_one

    sent = 0
    while (mail := process_one(store, "test")) is not None:
        assert mail.state == "sent", mail
        sent += 1
    return sent
