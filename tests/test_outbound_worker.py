"""The outbound worker's scheduling (oxsync/mail/outbound.py) over the real store and a real SMTP sink,
with a reactor whose cross-thread calls the test delivers in the order it chooses."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock

from oxsync.mail.outbound import OutboundWorker

MIME = b"From: alice@example.com\r\nTo: friend@elsewhere.org\r\nSubject: hi\r\n\r\nHello\r\n"
WAIT_SECONDS = 20.0
"""Bound on waiting for a worker thread's answer (it only ever arrives sooner)."""


class SteppedReactor(Clock):
    """A clock whose `callFromThread` calls wait in a queue until the test delivers them, one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()

    def callFromThread(self, fn: Callable[..., Any], *args: Any) -> None:  # noqa: N802 - Twisted's name
        self.calls.put((fn, args))

    def next_call(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.calls.get(timeout=WAIT_SECONDS)


def test_a_wake_while_every_slot_is_busy_is_not_lost(relayed, world, sink) -> None:  # type: ignore[no-untyped-def]
    """SQLite runs one attempt at a time. If mail commits while that attempt (which looked at the queue
    before the commit) is still in flight, its wake finds no free slot; the mail must still go out when
    the attempt finishes, not at the next poll an hour later."""
    reactor = SteppedReactor()
    worker = OutboundWorker(relayed, reactor, settings=relayed.settings, node="n1")
    assert worker.concurrency == 1 or relayed.engine.dialect.name != "sqlite"
    worker.concurrency = 1  # the same on PostgreSQL: one slot, so the wake finds it busy
    worker.startService()  # the first poll starts an attempt at once
    try:
        assert worker.in_flight == 1
        finished_empty = reactor.next_call()  # that attempt found nothing; its answer is not delivered yet
        with world.as_user(world.alice, write=True) as session:
            assert session.send_mail("k1", "alice@example.com", ["friend@elsewhere.org"], MIME, "hi")
        wake, args = reactor.next_call()  # the commit woke the worker (from the committing thread)
        wake(*args)
        assert worker.in_flight == 1 and sink.messages == []  # no free slot: nothing started
        fn, args = finished_empty
        fn(*args)  # the old attempt's answer: nothing sent
        assert worker.in_flight == 1, "the remembered wake starts another attempt"
        fn, args = reactor.next_call()
        fn(*args)  # sent; an attempt that found mail starts another, which finds nothing
        fn, args = reactor.next_call()
        fn(*args)
        assert worker.processed == 1 and worker.in_flight == 0
        assert [m.recipients for m in sink.messages] == [["friend@elsewhere.org"]]
        assert [m.state for m in relayed.outbound.list()] == ["sent"]
    finally:
        worker.stopService()
