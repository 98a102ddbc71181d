"""`[server] processes`: several serving processes on one node, one listening socket.

One Python process serves with about one core (the GIL). On PostgreSQL, nodes already share everything
through the database and tell each other about commits with LISTEN/NOTIFY (docs/cluster.md), so further
processes on the same host are further nodes: the first process binds the HTTP port, starts
`processes - 1` copies of its own command with the listening socket's descriptor in the environment
(`OXSYNC_LISTEN_FD`; the same interpreter arguments, so the same configuration and command line), and
each of them accepts on that same socket (the kernel hands each connection to
one process). What must have one owner stays with the first process: the UDP push port, the admin and
console listeners, outbound mail and pruning. The first process restarts a copy that exits; a copy
stops when the first process is gone (it checks its parent every second). Each copy also gets one end
of a fresh socketpair (`OXSYNC_CHANNEL_FD`; anonymous, no path) whose other end the first process hands
to `channel`: over it the first process checks passwords for the copy (oxsync/web/password_broker.py).

Refused on SQLite: one database file has one writer at a time (more processes would only queue for
it), and SQLite processes have no notification channel to push each other's changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from oxsync.config import Settings
from oxsync.listeners import ServerStartError, shared_tcp_socket

log = logging.getLogger("oxsync.server")

LISTEN_FD_ENV = "OXSYNC_LISTEN_FD"
"""Set in a further serving process: the descriptor of the listening socket it accepts on."""
PARENT_ENV = "OXSYNC_PARENT_PID"
CHANNEL_FD_ENV = "OXSYNC_CHANNEL_FD"
"""Set in a further serving process: its end of the socketpair to the first process."""
RESTART_DELAY_SECONDS = 1.0
"""A serving process that exits is started again after this long (never in a tight loop)."""
STOP_GRACE_SECONDS = 10.0
"""On shutdown, a serving process that has not ended this long after SIGTERM is killed."""


def shared_listener(settings: Settings, store: Any) -> socket.socket:
    """The first process's listening socket for `[server] processes` > 1, after checking the setting
    can hold here (ServerStartError, one line, when not)."""
    count = settings.server.processes
    if count < 1:
        raise ServerStartError(f"[server] processes must be at least 1, not {count}")
    if store.engine.dialect.name != "postgresql":
        raise ServerStartError(f"[server] processes = {count} needs PostgreSQL: an SQLite database has one writer "
                               "at a time and its processes cannot push each other's changes; use processes = 1")
    return shared_tcp_socket(settings.server.http_endpoint)


class _Watched(ProcessProtocol):
    def __init__(self, owner: ServingProcesses, index: int) -> None:
        self.owner = owner
        self.index = index
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:  # noqa: N802 - Twisted API
        self.ended.callback(None)
        self.owner.ended(self.index, reason)


class ServingProcesses(Service):
    """Starts and keeps `count` further serving processes on the socket `shared` (in the first process)."""

    name = "serving-processes"

    def __init__(self, reactor: Any, shared: socket.socket, count: int,
                 channel: Callable[[socket.socket], None] | None = None) -> None:
        self.reactor = reactor
        self.shared = shared
        self.count = count
        self.channel = channel
        """Takes the first process's end of each copy's socketpair (and closes it when done with it)."""
        self.running_now: dict[int, tuple[Any, _Watched]] = {}
        """index -> (process transport, its protocol) of the processes alive now."""
        self.started = 0
        """Processes started so far (restarts included)."""

    def startService(self) -> None:  # noqa: N802 - Twisted API
        super().startService()
        for index in range(self.count):
            self._start(index)

    def _start(self, index: int) -> None:
        if not self.running:
            return
        fd = self.shared.fileno()
        env = {**os.environ, LISTEN_FD_ENV: str(fd), PARENT_ENV: str(os.getpid())}
        child_fds: dict[int, int | str] = {0: 0, 1: 1, 2: 2, fd: fd}
        ours = theirs = None
        if self.channel is not None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            theirs.set_inheritable(True)
            env[CHANNEL_FD_ENV] = str(theirs.fileno())
            child_fds[theirs.fileno()] = theirs.fileno()
        watched = _Watched(self, index)
        args = [sys.executable, *sys.orig_argv[1:]]  # this very command (`oxsync serve ...`, `python -m ...`)
        try:
            transport = self.reactor.spawnProcess(watched, sys.executable, args, env=env, childFDs=child_fds)
        finally:
            if theirs is not None:
                theirs.close()  # the copy holds its own now
        if ours is not None and self.channel is not None:
            self.channel(ours)
        self.running_now[index] = (transport, watched)
        self.started += 1
        log.info("serving process started", extra={"event": "server.process_started", "pid": transport.pid,
                                                    "index": index + 1})

    def ended(self, index: int, reason: Failure) -> None:
        self.running_now.pop(index, None)
        code = getattr(reason.value, "exitCode", None)
        signal = getattr(reason.value, "signal", None)
        if not self.running:
            return
        log.warning("serving process ended; starting it again", extra={
            "event": "server.process_ended", "index": index + 1, "exit_code": code, "signal": signal})
        self.reactor.callLater(RESTART_DELAY_SECONDS, self._start, index)

    def stopService(self) -> Deferred[Any] | None:  # noqa: N802 - Twisted API
        super().stopService()
        alive = list(self.running_now.values())
        for transport, _ in alive:
            _signal(transport, "TERM")
        if not alive:
            return None
        def kill_the_rest() -> None:
            for transport, _ in alive:
                _signal(transport, "KILL")
        kill = self.reactor.callLater(STOP_GRACE_SECONDS, kill_the_rest)
        done = DeferredList([watched.ended for _, watched in alive])

        def finished(result: Any) -> Any:
            if kill.active():
                kill.cancel()
            return result
        return done.addBoth(finished)


def _signal(transport: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # it ended meanwhile
        transport.signalProcess(name)


def stop_with_parent(reactor: Any, service: Any) -> None:
    """In a further serving process: stop when the first process is gone (it would not restart us, and
    nobody would stop us)."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)

    def check() -> None:
        if parent and os.getppid() != parent and reactor.running:
            log.warning("the first serving process is gone; stopping", extra={"event": "server.parent_gone"})
            reactor.stop()
    watch = LoopingCall(check)
    watch.clock = reactor
    service.parent_watch = watch
    reactor.callWhenRunning(watch.start, 1.0, False)
