"""The serving processes' writer's file lock (SQLite, `[server] processes` > 1; `engine.WriterTurn`).

Each serving process's writer's turn holds an exclusive `flock` on `<database>-writer.lock` from before
its BEGIN IMMEDIATE to after its COMMIT, so that the processes' writers follow each other at once instead
of meeting in SQLite's busy handler (which polls with sleeps of 1 to 100 ms and leaves the database idle
meanwhile). A blocking `flock` cannot be given a timeout nor be interrupted from Python (it is retried on
EINTR), and polling it with LOCK_NB would bring those idle gaps back. So the wait is split in two:

- the turn's owner tries LOCK_NB first: a free lock costs one system call and no other thread;
- when another process holds it, one waiter thread of the process blocks in `flock(LOCK_EX)` (in the
  kernel, without the GIL) and the owner waits on a condition with what is left of its timeout: the
  grant wakes the waiter, which wakes the owner once; no polling on either side.

The owner that times out gives up (the caller goes on to SQLite's database lock and its busy timeout).
A grant that arrives after its owner gave up goes to the owner waiting by then, if any, or is released
at once: the lock is never held by nobody. `close` ends the waiter thread and closes the descriptor; a
waiter still blocked in `flock` then ends, releasing the lock and closing the descriptor itself, as soon
as the kernel grants it (it cannot be woken earlier), and a process that dies releases everything.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time

log = logging.getLogger("oxsync.store.engine")


class WriterFileLock:
    """An exclusive `flock` on `path` with a bounded wait. `acquire` and `release` are called by one
    thread at a time (the owner of the process's writer's turn); `close` when no turn is held."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.waits = 0
        """Acquisitions that found the lock held by another process (a work count)."""
        self.timeouts = 0
        """...of which gave up at their timeout."""
        self.late_grants = 0
        """Grants that came when no owner waited any more, released at once."""
        mutex = threading.Lock()
        self._asked = threading.Condition(mutex)
        """The waiter thread waits here for a request."""
        self._answered = threading.Condition(mutex)
        """The owner waits here for the waiter's grant."""
        self._requested = False
        """The waiter thread takes the lock (blocks in `flock`, or is about to)."""
        self._wanted = False
        """An owner waits for the grant."""
        self._granted = False
        """The waiter holds the lock for the waiting owner."""
        self._closed = False
        self._thread: threading.Thread | None = None

    def acquire(self, timeout_s: float) -> bool:
        """Take the lock: True once held, False if another process held it for longer than `timeout_s`."""
        with self._answered:
            if self._closed:
                raise RuntimeError(f"{self.path}: closed")
            if not self._requested:  # else the waiter blocks for it already: take its grant
                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
            self.waits += 1
            deadline = time.monotonic() + timeout_s
            if timeout_s <= 0 and not self._requested:
                self.timeouts += 1
                return False
            self._ask_waiter()
            self._wanted = True
            try:
                while not self._granted and self._requested:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.timeouts += 1
                        return False
                    self._answered.wait(remaining)
                granted, self._granted = self._granted, False
                if not granted:  # the waiter's flock failed (logged): as a timeout
                    self.timeouts += 1
                return granted
            finally:
                self._wanted = False

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """End the waiter thread and close the descriptor (no turn holds the lock now)."""
        with self._asked:
            if self._closed:
                return
            self._closed = True
            thread, blocked = self._thread, self._requested
            self._asked.notify()
        if blocked:
            return  # the waiter closes the descriptor once its flock returns (the kernel's grant)
        if thread is not None:
            thread.join()
        os.close(self.fd)

    def _ask_waiter(self) -> None:
        """(Holding the mutex.) Have the waiter thread block in `flock` for the lock."""
        if self._requested:
            return
        self._requested = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._wait_for_grants, name="oxsync-writer-lock", daemon=True)
            self._thread.start()
        else:
            self._asked.notify()

    def _wait_for_grants(self) -> None:
        """The waiter thread: on each request, block in `flock` until the other process lets go, then hand
        the lock to the owner waiting now, or release it at once if none does."""
        while True:
            with self._asked:
                while not self._requested and not self._closed:
                    self._asked.wait()
                if not self._requested:  # closed, and nothing asked
                    return
            failed = None
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX)  # blocks in the kernel, without the GIL
            except OSError as exc:
                failed = exc
            with self._answered:
                self._requested = False
                if failed is None and self._wanted and not self._closed:
                    self._granted = True
                elif failed is None:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                    self.late_grants += 1
                closed = self._closed
                self._answered.notify()
            if failed is not None:
                log.warning("the writer's file lock could not be taken: %r", failed)
            if closed:
                os.close(self.fd)
                return
