"""Listening services: HTTP (client-facing and admin) on Twisted endpoint strings, and how the
server learns that every listener is up.

What must hold: a listener that cannot start is an error the operator sees at once (one line, non-zero
exit from `oxsync serve`), never a server that runs without listening. So the endpoint string is parsed
when the service is built (bad syntax, option typos and missing TLS files fail there, before anything
starts), and `when_listening()` of every listener is awaited before the server calls itself ready.
Any child service with `listener_name` and `when_listening()` counts (the OX UDP push has them too).
"""

from __future__ import annotations

import logging
import mmap
import os
import select
import socket
import struct
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import _parseServer, serverFromString
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.python.failure import Failure
from twisted.web.server import Site
from zope.interface import implementer

from oxsync.metrics import LISTENERS_UP

log = logging.getLogger("oxsync.server")


class ServerStartError(RuntimeError):
    """The server could not start (an endpoint is invalid or could not be bound)."""


class Listener(Protocol):
    listener_name: str

    def when_listening(self) -> Deferred[int]: ...

    def listener_state(self) -> dict[str, Any]: ...


def parse_endpoint(reactor: Any, description: str, what: str) -> IStreamServerEndpoint:
    """The endpoint of a Twisted server string, or ServerStartError with one line saying why not."""
    if description.strip().isdigit():
        raise ServerStartError(f"{what}: {description!r} is not an endpoint; write tcp:{description.strip()}"
                               f" (or tcp:{description.strip()}:interface=0.0.0.0, ssl:...)")
    try:
        return serverFromString(reactor, description)
    except Exception as exc:  # ValueError, TypeError (unknown option), OpenSSL/IO errors (TLS files) ...
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, TypeError) and "keyword" in detail:
            detail = f"unknown option ({detail.rsplit(' ', 1)[-1]})"
        raise ServerStartError(f"{what}: invalid endpoint {description!r}: {detail}") from exc


def shared_tcp_socket(description: str) -> socket.socket:
    """The listening socket of a `tcp:` endpoint string, bound here so that it can be handed to the
    serving processes of `[server] processes` (each adopts it; the kernel gives each connection to one of
    them). ServerStartError (one line) for another endpoint kind or a port that cannot be bound."""
    try:
        kind, args, options = _parseServer(description, None)
    except Exception as exc:  # noqa: BLE001 - reported as the endpoint's error
        raise ServerStartError(f"http listener: invalid endpoint {description!r}: {exc}") from exc
    if kind != "TCP":
        raise ServerStartError(f"[server] processes > 1 needs a tcp: http_endpoint (terminate TLS in front of "
                               f"it), not {description.split(':')[0]}:")
    interface = str(options.get("interface", ""))
    sock = socket.socket(socket.AF_INET6 if ":" in interface else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, int(args[0] if args and args[0] is not None else options.get("port", 0))))
        sock.listen(int(options.get("backlog", 50)))
    except (OSError, ValueError) as exc:
        sock.close()
        raise ServerStartError(f"http listener on {description}: {getattr(exc, 'strerror', None) or exc}") from exc
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


ABSENT = 2**62
"""An `AcceptBoard` slot of a process that is not accepting (not started yet, or ended)."""
DEFER_SECONDS = 0.02
"""A process with more open connections than another leaves a waiting connection at most this long to
the other (which takes it within a reactor turn when it is not busy) before it takes it itself. 5 ms
still let 6/2 splits of 8 connections through on a machine at load 8 (the other process not scheduled
in time); 20 ms gave 4/4 there (bench/README y-sqlite2cost)."""
RETRY_SECONDS = 0.001
"""Meanwhile it looks again this often: the counts may have turned (the other process took one), and a
process that stopped reading for the whole deferral would make the other wait for it in turn."""


class AcceptBoard:
    """The open HTTP connections of each serving process of `[server] processes`, on a few bytes of
    memory they share (a memfd the first process creates and hands to its copies like the listening
    socket): one 8-byte slot per process, written only by its process, read by all. Each process keeps
    its own slot current (`publish`, on every connection made or lost); a stale or torn read only makes
    one accept less balanced, never wrong."""

    def __init__(self, fd: int, slots: int, slot: int) -> None:
        self.fd = fd
        self.slots = slots
        self.slot = slot
        self._memory = mmap.mmap(fd, 8 * slots)

    @classmethod
    def create(cls, slots: int) -> AcceptBoard:
        """The first process's board (slot 0), every slot absent; `fd` is inheritable, for its copies."""
        fd = os.memfd_create("oxsync-accept", 0)
        os.ftruncate(fd, 8 * slots)
        os.set_inheritable(fd, True)
        board = cls(fd, slots, 0)
        for slot in range(slots):
            board._write(slot, ABSENT)
        return board

    def _write(self, slot: int, value: int) -> None:
        struct.pack_into("<q", self._memory, 8 * slot, value)

    def publish(self, open_connections: int) -> None:
        self._write(self.slot, open_connections)

    def leave(self, slot: int | None = None) -> None:
        """This process (or, from the first process, copy `slot`, which ended) accepts no more."""
        self._write(self.slot if slot is None else slot, ABSENT)

    def fewest_elsewhere(self) -> int:
        """The fewest open connections of any other accepting process (ABSENT: none)."""
        return min((struct.unpack_from("<q", self._memory, 8 * slot)[0] for slot in range(self.slots)
                    if slot != self.slot), default=ABSENT)


def _open_connections(factory: Any) -> int:
    counts = getattr(factory, "connections", None)  # the Site's ConnectionCounts
    return int(getattr(counts, "open_total", 0))


@implementer(IStreamServerEndpoint)
class SharedSocketEndpoint:
    """Listens on an already listening TCP socket by its file descriptor (given by the process that bound
    it); the descriptor stays open (Twisted adopts a duplicate), so it can be handed on again.

    Every serving process listens on the same socket, and the kernel wakes each of them when connections
    wait. Twisted's port accepts up to 100 of them per wake-up, so a burst of clients (8 devices, or a
    bench's 8 kept-alive connections) went mostly to whichever process woke first (7/1, 6/2 splits,
    bench/README w-sqliteproc), leaving the other process's core idle. Here a port accepts one connection
    per wake-up, and with a `board` the process with the fewest open connections takes it: one with
    more leaves it DEFER_SECONDS to the others first (balanced_accepts; 7/1 and 6/2 splits of 8
    kept-alive connections were still seen with one accept per wake-up alone, bench/README y-sqlite2cost)."""

    def __init__(self, reactor: Any, fileno: int, board: AcceptBoard | None = None, clock: Any = None) -> None:
        self.reactor = reactor
        self.fileno = fileno
        self.board = board
        self.clock = clock if clock is not None else reactor

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        try:
            probe = socket.socket(fileno=self.fileno)  # learns the address family; detached, not closed
            family = probe.family
            probe.detach()
            port = one_accept_per_wakeup(self.reactor.adoptStreamPort(self.fileno, family, factory))
            if self.board is not None:
                balanced_accepts(port, self.board, self.clock)
            return succeed(port)
        except Exception:  # noqa: BLE001 - reported by the listener service
            return fail()


def one_accept_per_wakeup(port: Any) -> Any:
    """`port` (a Twisted TCP port) accepts one waiting connection each time the reactor finds it readable
    (Twisted's own loop raises `numberAccepts` from 100 as long as connections keep waiting)."""
    read = port.doRead

    def do_read() -> Any:
        port.numberAccepts = 1
        return read()
    port.doRead = do_read
    return port


def balanced_accepts(port: Any, board: AcceptBoard, clock: Any) -> Any:
    """`port` (one accept per wake-up) takes a waiting connection at once when its process has no more open
    connections than the least loaded other process on `board`. Otherwise it stops reading for
    RETRY_SECONDS and then looks again (the reactor calls it while a connection waits): the other process
    takes it meanwhile, or the counts changed and this process is no longer the busier one, or the
    connection has waited DEFER_SECONDS (the other process is busy or gone) and this one takes it. Its
    process's slot follows the Site's open connections (`ConnectionCounts.on_total`)."""
    accept = port.doRead
    counts = getattr(port.factory, "connections", None)
    if counts is not None:
        counts.on_total = board.publish
    board.publish(_open_connections(port.factory))
    port.deferred_accepts = 0
    """Waiting connections this port left to the other processes first (a work count)."""
    port.waiting_since = None
    readable = select.poll()  # not select(): a listening socket's descriptor may be above FD_SETSIZE
    readable.register(port.fileno(), select.POLLIN)

    def resume() -> None:
        if not port.connected:
            return
        if not readable.poll(0):
            port.waiting_since = None  # another process took it
        port.startReading()

    def do_read() -> Any:
        now = clock.seconds()
        if _open_connections(port.factory) <= board.fewest_elsewhere() or (
                port.waiting_since is not None and now - port.waiting_since >= DEFER_SECONDS):
            port.waiting_since = None
            return accept()
        if port.waiting_since is None:
            port.waiting_since = now
            port.deferred_accepts += 1
        port.stopReading()
        clock.callLater(RETRY_SECONDS, resume)
        return None
    port.doRead = do_read
    return port


class HttpListenerService(Service):
    """Listens on a Twisted endpoint string (`tcp:...`, `ssl:...`), or on a socket another process
    bound (`shared_fd`, `[server] processes`); knows the port actually bound."""

    def __init__(self, reactor: Any, description: str, site: Site, name: str = "http",
                 shared_fd: int | None = None, board: AcceptBoard | None = None) -> None:
        self.reactor = reactor
        self.description = description
        self.site = site
        self.name = self.listener_name = name
        self.board = board
        self.endpoint: Any = SharedSocketEndpoint(reactor, shared_fd, board) if shared_fd is not None else \
            parse_endpoint(reactor, description, f"{name} listener")
        self.port: IListeningPort | None = None
        self.failure: Failure | None = None
        self._waiting: list[Deferred[int]] = []

    def startService(self) -> None:  # noqa: N802 - Twisted API
        super().startService()
        self.failure = None
        d = self.endpoint.listen(self.site)
        d.addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        bound = bound_port(port)
        LISTENERS_UP.labels(self.listener_name).set(1)
        log.info("listening", extra={"event": "server.listening", "listener": self.listener_name,
                                     "endpoint": self.description.split(":")[0], "port": bound})
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(bound)

    def _failed(self, failure: Failure) -> None:
        self.failure = failure
        LISTENERS_UP.labels(self.listener_name).set(0)  # reported once, by whoever awaits when_listening()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(failure)

    def when_listening(self) -> Deferred[int]:
        """Fires with the bound port number once listening (at once if already listening or failed)."""
        if self.port is not None:
            return succeed(bound_port(self.port))
        if self.failure is not None:
            return fail(self.failure)
        d: Deferred[int] = Deferred()
        self._waiting.append(d)
        return d

    def listener_state(self) -> dict[str, Any]:
        port = bound_port(self.port) if self.port is not None else None
        return {"up": port is not None, "port": port, "endpoint": self.description.split(":")[0]}

    def stopService(self) -> Deferred[None] | None:  # noqa: N802 - Twisted API
        super().stopService()
        port, self.port = self.port, None
        if self.board is not None:
            self.board.leave()  # the other processes stop leaving connections to this one
        if port is None:
            return None
        LISTENERS_UP.labels(self.listener_name).set(0)
        return port.stopListening()


def bound_port(port: IListeningPort) -> int:
    """The port number a TCP, TLS or UDP listener is bound to (0 for a UNIX socket, which has none)."""
    address = port.getHost()
    return address.port if isinstance(address, IPv4Address | IPv6Address) else 0


def listeners_of(service: Any) -> list[Listener]:
    """Every child service that is a listener (HTTP, admin, UDP push ...), in start order."""
    return [child for child in service if hasattr(child, "listener_name") and hasattr(child, "when_listening")]


def describe_failure(listener: Listener, failure: Failure) -> str:
    """One line: which listener, where, and the operating system's reason."""
    where = getattr(listener, "description", "")
    return f"{listener.listener_name} listener{f' on {where}' if where else ''}: {failure.getErrorMessage()}"
