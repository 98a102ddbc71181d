"""`[server] processes`: several serving processes on one node, one listening socket.

One Python process serves with about one core (the GIL). On PostgreSQL, nodes already share everything
through the database and tell each other about commits with LISTEN/NOTIFY (docs/cluster.md), so further
processes on the same host are further nodes: the first process binds the HTTP port, starts
`processes - 1` copies of its own command with the listening socket's descriptor in the environment
(`OXSYNC_LISTEN_FD`; the same interpreter arguments, so the same configuration and command line), and
each of them accepts on that same socket (the kernel hands each connection to
one process). What must have one owner stays with the first process: the UDP push port, the admin and
console listeners, outbound mail and pruning. The first process restarts a copy that exits; a copy
dies with the first process: the kernel sends it SIGTERM when the first process ends, however it ends
(`die_with_parent`, Linux's PR_SET_PDEATHSIG; it also checks its parent every second, elsewhere), so
after a `kill -9` no copy keeps the port nor serves a request beside a restarted server. The copies
serve with the first process's settings as it resolved them (`OXSYNC_SETTINGS_FD`: a memfd of their
JSON, so what `serve` added at start, e.g. the demo's mail server, holds in every process). Each copy also gets one end
of a fresh socketpair (`OXSYNC_CHANNEL_FD`; anonymous, no path) whose other end the first process hands
to `channel`: over it the first process checks passwords for the copy (oxsync/web/password_broker.py).

On SQLite (one database file, one node) the processes also share two things PostgreSQL gives nodes:
their writers take turns across processes on a file lock beside the database (`store.engine.WriterTurn`,
so the next writer starts the moment the last commits), and they tell each other about their commits
over the same channel (oxsync/push/procbus.py): the first process relays, and a copy that loses its
channel stops and is started again rather than serve without hearing the others. An in-memory SQLite
database cannot be shared: refused.

`processes = "auto"` (the default) is resolved once, at start, by `resolve`: one process per core this
process may run on, at most `processes_auto_max`, and 1 where several cannot serve (`single_reason`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import signal as signals
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import _parseServer
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from oxsync.config import PROCESSES_AUTO, Settings, apply_overrides
from oxsync.listeners import AcceptBoard, ServerStartError, shared_tcp_socket

log = logging.getLogger("oxsync.server")

LISTEN_FD_ENV = "OXSYNC_LISTEN_FD"
"""Set in a further serving process: the descriptor of the listening socket it accepts on."""
PARENT_ENV = "OXSYNC_PARENT_PID"
CHANNEL_FD_ENV = "OXSYNC_CHANNEL_FD"
"""Set in a further serving process: its end of the socketpair to the first process."""
BOARD_FD_ENV = "OXSYNC_ACCEPT_BOARD_FD"
BOARD_SLOT_ENV = "OXSYNC_ACCEPT_BOARD_SLOT"
"""Set in a further serving process: the processes' shared open-connection counts and its slot there
(`listeners.AcceptBoard`: the process with the fewest open connections accepts the next one)."""
RESTART_DELAY_SECONDS = 1.0
"""A serving process that exits is started again after this long (never in a tight loop)."""
STOP_GRACE_SECONDS = 10.0
"""On shutdown, a serving process that has not ended this long after SIGTERM is killed."""


SETTINGS_FD_ENV = "OXSYNC_SETTINGS_FD"
"""Set in a further serving process: a memfd holding the first process's settings (JSON)."""
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the kernel sends this process when the thread that started it ends."""


@dataclass(frozen=True)
class Resolved:
    """How many serving processes `serve` runs (`count`) and why, in words for the operator (`why`)."""

    count: int
    why: str
    auto: bool


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: a container's or `taskset`'s limit, not the
    machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def single_reason(settings: Settings, store: Any) -> str | None:
    """Why only one process can serve here (None: several can): an endpoint other than `tcp:` (the
    processes share a plain TCP socket), or a SQLite database in memory (one process's alone)."""
    endpoint = settings.server.http_endpoint
    kind = _kind(endpoint)
    if kind != "tcp":
        return (f"the http_endpoint is {kind}: (several processes share a tcp: socket only; put TLS in front of "
                "a tcp: endpoint for more)")
    try:
        _parseServer(endpoint, None)
    except Exception:  # noqa: BLE001 - its listener refuses it with the reason, as with one process
        return "the http_endpoint is invalid"
    engine = getattr(store, "engine", None)
    if engine is not None and engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:" or "mode=memory" in database:
            return "the SQLite database is in memory (one process's own)"
    return None


def _kind(endpoint: str) -> str:
    """`tcp`, `ssl`, `unix`... of a Twisted endpoint string (its parts are checked by its listener)."""
    return endpoint.split(":", 1)[0].strip().lower()


METRICS_OF_THE_FIRST = ("the admin listener's /metrics counts the first serving process's requests only (the "
                        "copies' are not added to it yet)")
"""Why "auto" serves with one process where `/metrics` is served, and what an explicit count > 1 is
warned of at start: a scrape would see only part of the node's traffic."""


def resolve(settings: Settings, store: Any) -> Resolved:
    """The serving processes to run: `[server] processes` as written, or for "auto" one per usable core
    at most `processes_auto_max`, and 1 when `single_reason` says several cannot serve here or the admin
    listener serves `/metrics` (`METRICS_OF_THE_FIRST`: "auto" picks what is measured whole)."""
    server = settings.server
    if server.processes != PROCESSES_AUTO:
        return Resolved(server.processes, f"[server] processes = {server.processes}", False)
    reason = single_reason(settings, store)
    if reason is None and server.admin_endpoint:
        reason = METRICS_OF_THE_FIRST
    if reason is not None:
        return Resolved(1, f"auto: one, as {reason}", True)
    cores = usable_cores()
    count = min(cores, server.processes_auto_max)
    why = f"auto: {cores} usable core{'s' if cores != 1 else ''}"
    if count < cores:
        why += f", at most [server] processes_auto_max = {server.processes_auto_max}"
    return Resolved(count, why, True)


def resolved_settings(settings: Settings, resolved: Resolved) -> Settings:
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, processes=resolved.count))


def shared_listener(settings: Settings, store: Any) -> socket.socket:
    """The first process's listening socket for `[server] processes` > 1, after checking the setting
    can hold here (ServerStartError, one line, when not)."""
    count = settings.server.processes
    if count < 1:
        raise ServerStartError(f"[server] processes must be at least 1, not {count}")
    reason = single_reason(settings, store)
    if reason is not None and _kind(settings.server.http_endpoint) == "tcp":  # else: shared_tcp_socket's line
        raise ServerStartError(f"[server] processes > 1 cannot serve here: {reason}")
    return shared_tcp_socket(settings.server.http_endpoint)


def settings_memfd(settings: Settings) -> int:
    """A memfd with `settings` as JSON, inheritable: each copy serves with the first process's settings."""
    fd = os.memfd_create("oxsync-settings", 0)  # not MFD_CLOEXEC: handed down
    os.write(fd, json.dumps(dataclasses.asdict(settings)).encode())
    return fd


def inherited_settings(settings: Settings) -> Settings:
    """In a further serving process: the first process's settings when it handed them down (else
    `settings`, read from the same configuration and command line)."""
    fd = os.environ.get(SETTINGS_FD_ENV)
    if not fd:
        return settings
    size = os.fstat(int(fd)).st_size
    data = json.loads(os.pread(int(fd), size, 0))
    os.close(int(fd))
    return apply_overrides(Settings(), data)


def is_copy() -> bool:
    """This process is a further serving process started by the first one."""
    return os.environ.get(LISTEN_FD_ENV) is not None


def die_with_parent() -> None:
    """In a further serving process, as early as it can: have the kernel send it SIGTERM when the first
    process ends, however it ends (`kill -9` included), so that it never keeps the listening socket nor
    serves beside a restarted server. The first process may have died before the request took effect
    (no signal will come then): checked right after, and this process leaves at once. Not Linux: the
    once-a-second check of `stop_with_parent` alone."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signals.SIGTERM), 0, 0, 0)
    if parent and os.getppid() != parent:
        raise SystemExit("oxsync: the first serving process is gone; this copy does not serve")


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
                 channel: Callable[[socket.socket], None] | None = None, board: AcceptBoard | None = None,
                 settings: Settings | None = None) -> None:
        self.reactor = reactor
        self.settings_fd = settings_memfd(settings) if settings is not None else None
        """The first process's settings, handed to every copy (`inherited_settings`)."""
        self.board = board
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
        env.pop("NOTIFY_SOCKET", None)  # the first process alone talks to systemd (NotifyAccess=main)
        child_fds: dict[int, int | str] = {0: 0, 1: 1, 2: 2, fd: fd}
        if self.settings_fd is not None:
            env[SETTINGS_FD_ENV] = str(self.settings_fd)
            child_fds[self.settings_fd] = self.settings_fd
        if self.board is not None:
            env[BOARD_FD_ENV], env[BOARD_SLOT_ENV] = str(self.board.fd), str(index + 1)
            child_fds[self.board.fd] = self.board.fd
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
        if self.board is not None:
            self.board.leave(index + 1)  # the others no longer leave connections to it
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


def inherited_board() -> AcceptBoard | None:
    """In a further serving process: the accept board the first process handed down (None: none)."""
    fd, slot = os.environ.get(BOARD_FD_ENV), os.environ.get(BOARD_SLOT_ENV)
    if not fd or not slot:
        return None
    slots = int(os.fstat(int(fd)).st_size) // 8
    return AcceptBoard(int(fd), slots, int(slot))


def stop_with_parent(reactor: Any, service: Any) -> None:
    """In a further serving process: stop when the first process is gone (it would not restart us, and
    nobody would stop us). The fallback of `die_with_parent` (seen within a second)."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)

    def check() -> None:
        if parent and os.getppid() != parent and reactor.running:
            log.warning("the first serving process is gone; stopping", extra={"event": "server.parent_gone"})
            reactor.stop()
    watch = LoopingCall(check)
    watch.clock = reactor
    service.parent_watch = watch
    reactor.callWhenRunning(watch.start, 1.0, False)
