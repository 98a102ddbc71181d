"""The SQLite writers' turn across processes (`store.engine.WriterTurn` with a lock file,
`store.writer_lock.WriterFileLock`) on real file locks: the test holds `<database>-writer.lock` through
its own descriptor, as another serving process would (flock locks of two open descriptions exclude each
other in one process as across processes).

What must hold: a free lock is taken without any other thread; a held one is waited for without polling
(one non-blocking try, one blocking `flock` on the waiter thread, the owner woken by the grant); the wait
is bounded by the turn's timeout, after which the write goes on (`not_granted`) to SQLite's database
lock and its busy timeout; a grant that arrives after its owner gave up goes to the next owner waiting,
or is released at once, never held by nobody; `close` ends the waiter thread and the descriptor, at
once when idle, at the grant when blocked in `flock`."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from oxsync.store import writer_lock
from oxsync.store.engine import WRITER_LOCK_SUFFIX, WriterTurn
from oxsync.store.writer_lock import WriterFileLock
from tests.live import wait_until

LONG = 120.0
"""A timeout no turn below reaches: the turn must be woken by the grant, not by its timeout."""
SHORT = 0.05
"""A timeout every turn below reaches while the test holds the lock."""


_flock = fcntl.flock
"""The test's own flock (the `flocks` fixture counts the writer's file lock's calls only)."""


class Holder:
    """Another process's writer, played by the test: its own open description of the lock file."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def hold(self) -> None:
        _flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def let_go(self) -> None:
        _flock(self.fd, fcntl.LOCK_UN)

    def can_take(self) -> bool:
        """Whether the lock is free (taken and let go again at once if so)."""
        try:
            _flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        _flock(self.fd, fcntl.LOCK_UN)
        return True


@pytest.fixture
def lock_path(tmp_path: Path) -> str:
    return f"{tmp_path}/x.db{WRITER_LOCK_SUFFIX}"


@pytest.fixture
def holder(lock_path: str) -> Iterator[Holder]:
    other = Holder(lock_path)
    yield other
    other.let_go()
    os.close(other.fd)


@pytest.fixture
def flocks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The `flock` calls of the writer's file lock, by kind ("try", "wait", "unlock")."""
    calls: list[str] = []

    def counted(fd: int, operation: int) -> None:
        calls.append("unlock" if operation == fcntl.LOCK_UN else "try" if operation & fcntl.LOCK_NB else "wait")
        _flock(fd, operation)
    monkeypatch.setattr(writer_lock.fcntl, "flock", counted)
    return calls


def _turn_in_thread(turn: WriterTurn, inside: threading.Event, leave: threading.Event | None = None,
                    seen: list[bool] | None = None, holder: Holder | None = None) -> threading.Thread:
    """One write's turn on a thread of its own: sets `inside` once in its turn, notes whether the test's
    holder could take the lock meanwhile (`seen`), leaves once `leave` is set."""
    def write() -> None:
        with turn.turn():
            if seen is not None and holder is not None:
                seen.append(holder.can_take())
            inside.set()
            if leave is not None:
                leave.wait(LONG)
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_free_lock_is_taken_at_once_without_another_thread(lock_path: str, holder: Holder,
                                                              flocks: list[str]) -> None:
    turn = WriterTurn(LONG, lock_file=lock_path)
    try:
        for _ in range(3):
            with turn.turn():
                assert not holder.can_take()  # held for the whole turn
            assert holder.can_take()  # released after it
        assert flocks == ["try", "unlock"] * 3
        assert turn.file_waits == 0 and turn.not_granted == 0
        assert turn._file is not None and turn._file._thread is None  # no waiter thread
    finally:
        turn.close()


def test_a_held_lock_is_waited_for_without_polling_and_handed_over_at_its_release(
        lock_path: str, holder: Holder, flocks: list[str]) -> None:
    turn = WriterTurn(LONG, lock_file=lock_path)
    holder.hold()
    inside, seen = threading.Event(), []  # type: ignore[var-annotated]
    try:
        writer = _turn_in_thread(turn, inside, seen=seen, holder=holder)
        assert wait_until(lambda: turn.file_waits == 1)
        assert not inside.is_set()  # waits while the other process holds it
        holder.let_go()
        assert inside.wait(LONG) and seen == [False]  # in its turn with the lock, well before its timeout
        writer.join(LONG)
        assert flocks == ["try", "wait", "unlock"]  # one try, one blocking flock: no polling
        assert turn.not_granted == 0 and holder.can_take()
    finally:
        turn.close()


def test_a_wait_is_bounded_and_a_late_grant_is_released_at_once(lock_path: str, holder: Holder,
                                                                 flocks: list[str]) -> None:
    turn = WriterTurn(SHORT, lock_file=lock_path)
    holder.hold()
    inside = threading.Event()
    try:
        writer = _turn_in_thread(turn, inside)
        writer.join(LONG)
        assert inside.is_set() and not writer.is_alive()  # its write went on without the file lock
        assert turn.not_granted == 1 and turn.file_waits == 1
        assert turn._file is not None
        holder.let_go()  # the waiter thread is granted the lock now, for nobody
        assert wait_until(lambda: turn._file is not None and turn._file.late_grants == 1, LONG)
        assert holder.can_take()  # released at once
        with turn.turn():  # the next turn takes it at once
            assert not holder.can_take()
        assert holder.can_take()
        assert turn.not_granted == 1 and turn.file_waits == 1
        assert flocks == ["try", "wait", "unlock", "try", "unlock"]
    finally:
        turn.close()


def test_a_grant_that_comes_after_its_owner_gave_up_goes_to_the_next_owner(lock_path: str,
                                                                          holder: Holder) -> None:
    turn = WriterTurn(SHORT, lock_file=lock_path)
    holder.hold()
    try:
        first = _turn_in_thread(turn, threading.Event())
        first.join(LONG)
        assert turn.not_granted == 1  # gave up; the waiter thread still blocks in flock
        turn.timeout_s = LONG
        inside, leave, seen = threading.Event(), threading.Event(), []  # type: ignore[var-annotated]
        second = _turn_in_thread(turn, inside, leave, seen, holder)
        assert wait_until(lambda: turn.file_waits == 2)
        assert not inside.is_set()
        holder.let_go()
        assert inside.wait(LONG) and seen == [False]  # the waiter's grant is the second turn's lock
        assert not holder.can_take()
        leave.set()
        second.join(LONG)
        assert holder.can_take()
        assert turn.not_granted == 1 and turn._file is not None and turn._file.late_grants == 0
    finally:
        turn.close()


def test_close_ends_the_waiter_thread_and_never_keeps_the_lock(lock_path: str, holder: Holder) -> None:
    turn = WriterTurn(SHORT, lock_file=lock_path)
    holder.hold()
    with turn.turn():  # not granted: the waiter thread blocks in flock
        pass
    file = turn._file
    assert file is not None and file._thread is not None
    turn.close()  # cannot wake a blocked flock: the waiter ends at the grant
    assert file._thread.is_alive()
    holder.let_go()
    file._thread.join(LONG)
    assert not file._thread.is_alive() and holder.can_take()
    with pytest.raises(OSError):
        os.fstat(file.fd)  # closed by the waiter (no other descriptor was opened meanwhile)

    idle = WriterFileLock(lock_path)  # an idle waiter thread ends at close
    holder.hold()
    assert not idle.acquire(SHORT)
    holder.let_go()
    assert wait_until(lambda: idle.late_grants == 1, LONG)
    assert idle._thread is not None and idle._thread.is_alive()
    idle.close()
    assert not idle._thread.is_alive() and holder.can_take()
    with turn.turn():  # a closed turn opens the lock again at its next write
        assert not holder.can_take()
    turn.close()


def test_a_sqlite_write_whose_file_lock_is_not_granted_goes_on_to_the_database_lock(tmp_path: Path) -> None:
    """Through the store: the write completes (SQLite's lock is free), counted `not_granted`."""
    from sqlalchemy import text

    from tests.fixtures import make_store

    store = make_store(f"sqlite:///{tmp_path}/x.db")
    try:
        store.settings = replace(store.settings, store=replace(store.settings.store, busy_timeout_ms=50))
        assert store._writers is not None
        store._writers.timeout_s = SHORT
        store.share_writer_turns()
        holder = Holder(f"{tmp_path}/x.db{WRITER_LOCK_SUFFIX}")
        holder.hold()
        try:
            with store.transaction(1, write=True) as tx:
                tx.conn.execute(text("CREATE TABLE t (x INTEGER)"))
            assert store.writer_turns() == {"file_waits": 1, "not_granted": 1}
        finally:
            holder.let_go()
            os.close(holder.fd)
        file = store._writers._file
        assert file is not None and wait_until(lambda: file.late_grants == 1, LONG)
        with store.transaction(1, write=True) as tx:
            tx.conn.execute(text("INSERT INTO t VALUES (1)"))
        assert store.writer_turns() == {"file_waits": 1, "not_granted": 1}
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    finally:
        store.dispose()
