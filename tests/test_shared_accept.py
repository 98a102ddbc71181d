"""The serving processes' shared listening socket (`[server] processes`): each process accepts one
waiting connection per wake-up, so a burst of clients is spread over the processes instead of going
to whichever woke first (oxsync/listeners.py). Real sockets on loopback, a reactor instance that is
never run: the test calls the port's read handler itself, as the reactor would."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory, Protocol

from oxsync.listeners import SharedSocketEndpoint


class _Counting(Factory):
    def __init__(self) -> None:
        self.built = 0

    def buildProtocol(self, addr: Any) -> Protocol:  # noqa: N802 - Twisted API
        self.built += 1
        return Protocol()


def test_a_shared_port_accepts_one_waiting_connection_per_wakeup() -> None:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    listening.setblocking(False)
    reactor = EPollReactor()  # not installed, never run
    factory = _Counting()
    clients: list[socket.socket] = []
    port: Any = None
    try:
        ports: list[Any] = []
        SharedSocketEndpoint(reactor, listening.fileno()).listen(factory).addCallback(ports.append)
        port = ports[0]
        for _ in range(5):  # a burst: all five wait in the backlog before the process wakes
            clients.append(socket.create_connection(listening.getsockname(), timeout=5))
        port.doRead()
        assert factory.built == 1  # Twisted's own loop took all 5 at once
        port.doRead()
        port.doRead()
        assert factory.built == 3
    finally:
        for client in clients:
            client.close()
        if port is not None:
            for conn in list(reactor.getReaders()) + list(reactor.getWriters()):
                if conn is not port and hasattr(conn, "socket"):
                    conn.socket.close()
            port.socket.close()
        reactor._poller.close()
        listening.close()
