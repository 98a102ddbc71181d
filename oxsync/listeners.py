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
import socket
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


@implementer(IStreamServerEndpoint)
class SharedSocketEndpoint:
    """Listens on an already listening TCP socket by its file descriptor (given by the process that bound
    it); the descriptor stays open (Twisted adopts a duplicate), so it can be handed on again."""

    def __init__(self, reactor: Any, fileno: int) -> None:
        self.reactor = reactor
        self.fileno = fileno

    def listen(self, factory: Any) -> Deferred[IListeningPort]:
        try:
            probe = socket.socket(fileno=self.fileno)  # learns the address family; detached, not closed
            family = probe.family
            probe.detach()
            return succeed(self.reactor.adoptStreamPort(self.fileno, family, factory))
        except Exception:  # noqa: BLE001 - reported by the listener service
            return fail()


class HttpListenerService(Service):
    """Listens on a Twisted endpoint string (`tcp:...`, `ssl:...`), or on a socket another process
    bound (`shared_fd`, `[server] processes`); knows the port actually bound."""

    def __init__(self, reactor: Any, description: str, site: Site, name: str = "http",
                 shared_fd: int | None = None) -> None:
        self.reactor = reactor
        self.description = description
        self.site = site
        self.name = self.listener_name = name
        self.endpoint: Any = SharedSocketEndpoint(reactor, shared_fd) if shared_fd is not None else \
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
