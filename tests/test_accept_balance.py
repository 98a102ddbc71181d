"""The serving processes' accept balance (`[server] processes`, oxsync/listeners.py `AcceptBoard`,
`balanced_accepts`): a process with more open connections than another leaves a waiting connection to
the other (looking again every RETRY_SECONDS) and takes it itself once it has waited DEFER_SECONDS or
the counts turned; one with no more takes it at once. Real sockets on loopback, a real shared memfd
board, a reactor instance that is never run (the test calls the port's read handler as the reactor
would) and a Clock for the deferral."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from oxsync.listeners import ABSENT, DEFER_SECONDS, RETRY_SECONDS, AcceptBoard, SharedSocketEndpoint
from oxsync.web.limits import ConnectionCounts


class _Site(Factory):
    """Counts what it built; `connections` as the real Site keeps them (per client address)."""

    def __init__(self) -> None:
        self.built = 0
        self.connections = ConnectionCounts()

    def buildProtocol(self, addr: Any) -> Protocol:  # noqa: N802 - Twisted API
        self.built += 1
        return Protocol()


class _Node:
    def __init__(self) -> None:
        self.listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listening.bind(("127.0.0.1", 0))
        self.listening.listen(16)
        self.listening.setblocking(False)
        self.reactor = EPollReactor()  # not installed, never run
        self.clock = Clock()
        self.board = AcceptBoard.create(2)  # this process: slot 0; the other: slot 1
        self.other = AcceptBoard(self.board.fd, 2, 1)  # the other process's view of the same memory
        self.site = _Site()
        ports: list[Any] = []
        SharedSocketEndpoint(self.reactor, self.listening.fileno(), self.board, self.clock).listen(
            self.site).addCallback(ports.append)
        self.port = ports[0]
        self.clients: list[socket.socket] = []

    def connect(self) -> None:
        self.clients.append(socket.create_connection(self.listening.getsockname(), timeout=5))

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for conn in list(self.reactor.getReaders()) + list(self.reactor.getWriters()):
            if conn is not self.port and hasattr(conn, "socket"):
                conn.socket.close()
        self.port.socket.close()
        self.reactor._poller.close()
        self.listening.close()


@pytest.fixture
def node() -> Iterator[_Node]:
    made = _Node()
    yield made
    made.close()


def test_the_board_is_shared_memory_and_follows_the_sites_open_connections(node: _Node) -> None:
    assert node.other.fewest_elsewhere() == 0  # slot 0 published at listen: no connection yet
    assert node.board.fewest_elsewhere() == ABSENT  # the other process has not started
    node.site.connections["10.0.0.1"] += 2
    node.site.connections["10.0.0.2"] += 1
    assert node.other.fewest_elsewhere() == 3
    node.site.connections["10.0.0.1"] -= 1
    del node.site.connections["10.0.0.2"]
    assert node.other.fewest_elsewhere() == 1
    node.other.publish(4)
    assert node.board.fewest_elsewhere() == 4
    node.board.leave(1)  # the first process saw the copy end
    assert node.board.fewest_elsewhere() == ABSENT


def test_a_process_with_no_more_connections_than_the_other_accepts_at_once(node: _Node) -> None:
    node.site.connections["10.0.0.1"] += 2
    node.other.publish(2)
    node.connect()
    node.port.doRead()
    assert node.site.built == 1 and node.port.deferred_accepts == 0


def test_a_busier_process_leaves_the_connection_to_the_other_first(node: _Node) -> None:
    node.site.connections["10.0.0.1"] += 3
    node.other.publish(1)
    node.connect()
    node.port.doRead()
    assert node.site.built == 0 and node.port.deferred_accepts == 1
    assert node.port not in node.reactor.getReaders()  # no busy loop on a socket it leaves alone
    node.clock.advance(RETRY_SECONDS)
    assert node.port in node.reactor.getReaders()  # looks again: still waiting, the other still less busy
    node.port.doRead()
    assert node.site.built == 0 and node.port.deferred_accepts == 1  # the same connection, left again
    other, _ = node.listening.accept()  # the other process takes it
    other.close()
    node.clock.advance(RETRY_SECONDS)
    assert node.site.built == 0 and node.port in node.reactor.getReaders() and node.port.waiting_since is None


def test_a_connection_nobody_else_takes_is_taken_after_the_deferral(node: _Node) -> None:
    node.site.connections["10.0.0.1"] += 3
    node.other.publish(1)  # the other process is busy: it does not accept
    node.connect()
    for _ in range(round(DEFER_SECONDS / RETRY_SECONDS) - 1):
        node.port.doRead()
        node.clock.advance(RETRY_SECONDS)
    assert node.site.built == 0
    node.clock.advance(RETRY_SECONDS * 1.5)
    node.port.doRead()
    assert node.site.built == 1 and node.port.deferred_accepts == 1


def test_a_process_that_is_no_longer_the_busier_takes_the_connection(node: _Node) -> None:
    node.site.connections["10.0.0.1"] += 3
    node.other.publish(2)
    node.connect()
    node.port.doRead()
    assert node.site.built == 0
    node.other.publish(4)  # the other took connections meanwhile
    node.clock.advance(RETRY_SECONDS)
    node.port.doRead()
    assert node.site.built == 1
