"""The password broker of `[server] processes` over a real socketpair in the running reactor: a copy's
questions are answered by the first process's single-flighted checks and memory (one hash per distinct
credential), wrong passwords are never remembered, and when the broker is slow (a `task.Clock` drives
the timeout), busy, gone or the question too large, the copy checks the password itself, logged once.
Counts of hashes and answers, never timings. The real processes are in tests/test_server_processes.py."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread

from oxsync.web.password_broker import BrokeredChecks, PasswordChecks, ask_first_process, serve_copies
from tests.live import wait_until

HASH = "$argon2id$v=19$m=19456,t=2,p=1$stand-in"


@dataclass
class Hashes:
    """A stand-in for the hash pool's verify (the broker, not Argon2, is under test): counts the checks;
    `hold` keeps them pending until released."""

    hold: bool = False
    started: list[tuple[str | None, str]] = field(default_factory=list)
    pending: list[tuple[Deferred[bool], bool]] = field(default_factory=list)

    def verify(self, stored_hash: str | None, password: str) -> Deferred[bool]:
        self.started.append((stored_hash, password))
        ok = stored_hash == HASH and password == "right"
        if not self.hold:
            return succeed(ok)
        d: Deferred[bool] = Deferred()
        self.pending.append((d, ok))
        return d

    def release(self) -> None:
        for d, ok in self.pending:
            d.callback(ok)
        self.pending.clear()


@dataclass
class Pair:
    first: PasswordChecks
    copy: BrokeredChecks
    first_hashes: Hashes
    copy_hashes: Hashes
    clock: Clock


@pytest.fixture
def pair(reactor) -> Iterator[Callable[..., Pair]]:  # type: ignore[no-untyped-def]
    made: list[BrokeredChecks] = []

    def make(*, hold: bool = False, timeout: float = 10.0, max_in_flight: int = 16, max_bytes: int = 4096,
             copy_in_flight: int = 16) -> Pair:
        first_hashes, copy_hashes, clock = Hashes(hold=hold), Hashes(), Clock()
        first = PasswordChecks(first_hashes.verify, 900.0, 100)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def connect() -> BrokeredChecks:
            serve_copies(reactor, first, max_in_flight, max_bytes)(ours)
            return ask_first_process(reactor, PasswordChecks(copy_hashes.verify, 900.0, 100), theirs.detach(),
                                     timeout_seconds=timeout, max_in_flight=copy_in_flight, max_bytes=max_bytes,
                                     clock=clock)
        copy = blockingCallFromThread(reactor, connect)
        made.append(copy)
        return Pair(first, copy, first_hashes, copy_hashes, clock)
    yield make
    for copy in made:  # closed quietly: the copy forgets its broker first (no outage logged into the next test)
        broker, copy.broker = copy.broker, None
        if broker is not None:
            blockingCallFromThread(reactor, broker.transport.loseConnection)


def checks(reactor: Any, target: Any, *credentials: tuple[str | None, str]) -> list[bool]:
    """Run `target.check` for each credential at once in the reactor; their outcomes."""
    return list(blockingCallFromThread(reactor, lambda: gatherResults([target.check(*c) for c in credentials])))


def started(reactor: Any, checks: Callable[[], list[Deferred[bool]]]) -> Deferred[list[bool]]:
    """Start the checks in the reactor and return at once with their gathered outcome (still pending)."""
    return blockingCallFromThread(reactor, lambda: [gatherResults(checks())])[0]  # type: ignore[no-any-return]


@pytest.fixture
def outages() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("oxsync.auth")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_copies_share_the_first_process_hash_and_memory(reactor, pair) -> None:  # type: ignore[no-untyped-def]
    p = pair(hold=True)
    d = started(reactor, lambda: [p.first.check(HASH, "right")] + [p.copy.check(HASH, "right") for _ in range(5)])
    assert wait_until(lambda: p.copy.in_flight == 1, 10)  # the copy's 5 are one question, in flight with ...
    assert len(p.first_hashes.started) == 1  # ... the first process's own check: one hash between them
    reactor.callFromThread(p.first_hashes.release)
    assert wait_until(lambda: d.called, 10) and d.result == [True] * 6
    p.first_hashes.hold = False
    assert checks(reactor, p.copy, (HASH, "right")) == [True]  # the copy's own memory now
    assert checks(reactor, p.first, (HASH, "right")) == [True]  # the first process's memory
    assert p.copy.answers == 1 and p.copy.hashes == 0 and p.copy_hashes.started == []
    assert len(p.first_hashes.started) == 1


def test_a_copy_is_answered_from_the_first_process_memory(reactor, pair) -> None:  # type: ignore[no-untyped-def]
    p = pair()
    assert checks(reactor, p.first, (HASH, "right")) == [True]  # the first process verified it itself
    assert checks(reactor, p.copy, (HASH, "right"), (HASH, "right")) == [True, True]
    assert len(p.first_hashes.started) == 1 and p.copy.answers == 1 and p.copy_hashes.started == []
    # a new stored hash (a password change) is a new question: the old answer is never looked up
    assert checks(reactor, p.copy, (HASH + "-new", "right")) == [False]
    assert len(p.first_hashes.started) == 2


def test_a_wrong_password_is_refused_and_never_remembered(reactor, pair) -> None:  # type: ignore[no-untyped-def]
    p = pair()
    for _ in range(3):
        assert checks(reactor, p.copy, (HASH, "wrong")) == [False]
    assert checks(reactor, p.first, (HASH, "wrong")) == [False]
    assert checks(reactor, p.copy, (None, "right")) == [False]  # no such account: checked (a dummy), refused
    assert len(p.first_hashes.started) == 5 and p.copy.answers == 4 and p.copy_hashes.started == []
    assert len(p.first.verified) == 0 and len(p.copy.local.verified) == 0


def test_a_slow_broker_times_out_and_the_copy_checks_itself_logged_once(reactor, pair, outages) -> None:  # type: ignore[no-untyped-def]
    p = pair(hold=True, timeout=5.0)
    d = started(reactor, lambda: [p.copy.check(HASH, "right"), p.copy.check(HASH + "-2", "right")])
    assert wait_until(lambda: len(p.first_hashes.started) == 2, 10)
    blockingCallFromThread(reactor, p.clock.advance, 4.9)
    assert not d.called and p.copy_hashes.started == []
    blockingCallFromThread(reactor, p.clock.advance, 0.2)
    assert wait_until(lambda: d.called, 10) and d.result == [True, False]
    assert len(p.copy_hashes.started) == 2 and p.copy.fallbacks == 2
    assert [r.getMessage() for r in outages] == ["password broker unavailable; checking passwords in this process"]
    assert all("right" not in repr(r.__dict__) and HASH not in repr(r.__dict__) for r in outages)  # no secrets
    reactor.callFromThread(p.first_hashes.release)  # the late answers are dropped
    p.first_hashes.hold = False
    assert checks(reactor, p.copy, (HASH + "-3", "right")) == [False]  # answered again: outage over
    assert p.copy.answers == 1 and len(outages) == 1


def test_the_broker_gone_the_copy_still_logs_users_in(reactor, pair, outages) -> None:  # type: ignore[no-untyped-def]
    p = pair()
    assert checks(reactor, p.copy, (HASH, "right")) == [True] and p.copy.answers == 1
    broker = p.copy.broker
    assert broker is not None
    reactor.callFromThread(broker.transport.loseConnection)
    assert wait_until(lambda: p.copy.broker is None, 10)
    assert checks(reactor, p.copy, (HASH + "-other", "right"), (HASH, "wrong")) == [False, False]
    assert checks(reactor, p.copy, (HASH, "right")) == [True]  # remembered before: no check at all
    p2 = pair()
    reactor.callFromThread(p2.copy.broker.transport.loseConnection)  # type: ignore[union-attr]
    assert wait_until(lambda: p2.copy.broker is None, 10)
    assert checks(reactor, p2.copy, (HASH, "right")) == [True]  # a user logs in, checked in the copy
    assert len(p2.copy_hashes.started) == 1 and p2.first_hashes.started == []
    assert len(p.copy_hashes.started) == 2 and p.copy.fallbacks == 2
    assert [r.reason for r in outages] == ["the first process's channel closed"] * 2  # one each


def test_questions_over_the_bounds_are_checked_by_the_copy(reactor, pair) -> None:  # type: ignore[no-untyped-def]
    p = pair(hold=True, max_in_flight=1, max_bytes=200)  # the broker takes one question at a time
    d = started(reactor, lambda: [p.copy.check(HASH, "right"), p.copy.check(HASH + "-2", "right")])
    assert wait_until(lambda: len(p.first_hashes.started) == 1 and len(p.copy_hashes.started) == 1, 10)
    reactor.callFromThread(p.first_hashes.release)
    assert wait_until(lambda: d.called, 10) and d.result == [True, False]
    p.first_hashes.hold = False
    assert checks(reactor, p.copy, (HASH, "x" * 300)) == [False]  # too large to ask
    assert checks(reactor, p.copy, (HASH, "\ud800")) == [False]  # not UTF-8: AMP cannot carry it
    assert len(p.first_hashes.started) == 1 and len(p.copy_hashes.started) == 3 and p.copy.fallbacks == 3
