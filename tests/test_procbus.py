"""The change relay between the serving processes of an SQLite node (oxsync/push/procbus.py), on the
AMP channels the password broker uses (tests/test_server_processes.py runs it with real processes):
a copy's commit reaches the first process's bus and the other copy's, never back to its sender;
the first process's own commits reach every copy; a copy that loses its channel asks to stop, the
first process does not."""

from __future__ import annotations

from typing import Any

from twisted.test import iosim

from oxsync.push.bus import AccountChange, Change, ChangeBus
from oxsync.push.procbus import ProcessRelay
from oxsync.web.password_broker import BrokeredChecks, BrokerFactory, PasswordChecks, _BrokerClient


def _checks() -> PasswordChecks:
    return PasswordChecks(lambda stored, password: None, 0, 1)  # type: ignore[arg-type, return-value]


class Process:
    """One process: its bus, its relay, and what its bus saw."""

    def __init__(self, hub: bool) -> None:
        self.bus = ChangeBus()
        self.lost = 0
        self.relay = ProcessRelay(self.bus, hub=hub, on_lost=self._lost)
        self.changes: list[Change] = []
        self.accounts: list[AccountChange] = []
        self.bus.subscribe(self.changes.append)
        self.bus.subscribe_accounts(self.accounts.append)

    def _lost(self) -> None:
        self.lost += 1


def _node(copies: int) -> tuple[Process, list[Process], list[Any]]:
    first = Process(hub=True)
    factory = BrokerFactory(_checks(), 8, 4096, first.relay)
    others, pumps = [], []
    for _ in range(copies):
        copy = Process(hub=False)
        brokered = BrokeredChecks(_checks(), None, timeout_seconds=1, max_in_flight=8, max_bytes=4096)
        server, client, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), lambda c=copy, b=brokered: _BrokerClient(b, c.relay))
        others.append(copy)
        pumps.append(pump)
    return first, others, pumps


def _flush(pumps: list[Any]) -> None:
    for _ in range(3):
        for pump in pumps:
            pump.flush()


def test_a_copys_commit_reaches_the_first_process_and_the_other_copies_once() -> None:
    first, (one, two), pumps = _node(2)
    one.bus.publish(7, {3, 4}, 42)  # a commit of copy one (origin local)
    _flush(pumps)
    assert [(c.tenant_id, c.folder_ids, c.revision, c.origin) for c in first.changes] == \
        [(7, frozenset({3, 4}), 42, "remote")]
    assert [(c.tenant_id, c.folder_ids, c.revision, c.origin) for c in two.changes] == \
        [(7, frozenset({3, 4}), 42, "remote")]
    assert [c.origin for c in one.changes] == ["local"]  # not echoed back
    first.bus.publish_accounts(7, {9})  # an account change committed by the first process
    first.bus.publish_accounts(None, ())  # a tenant rename or delete: every tenant
    _flush(pumps)
    for copy in (one, two):
        assert [(a.tenant_id, a.user_ids, a.origin) for a in copy.accounts] == \
            [(7, frozenset({9}), "remote"), (None, frozenset(), "remote")]
    first.bus.publish(1, (), 5, origin="remote")  # heard from elsewhere: not relayed again
    two.bus.publish_accounts(1, (), origin="poll")  # each process polls for the CLI itself
    _flush(pumps)
    assert len(one.changes) == 1 and len(first.accounts) == 2 and len(one.accounts) == 2


def test_a_copy_that_loses_its_channel_stops_and_the_first_process_does_not() -> None:
    first, (one,), pumps = _node(1)
    _flush(pumps)
    assert len(first.relay.peers) == 1 and len(one.relay.peers) == 1
    pumps[0].client.transport.loseConnection()
    _flush(pumps)
    assert one.lost == 1 and first.lost == 0 and first.relay.peers == []


def test_a_copy_that_is_ending_does_not_take_its_closing_channel_for_lost(caplog) -> None:  # type: ignore[no-untyped-def]
    """A normal shutdown closes every connection: the copy's relay was told it is ending (`closing`, the
    reactor's "before shutdown"), so no warning and no stop asked; the warning still comes otherwise."""
    first, (one, two), pumps = _node(2)
    _flush(pumps)
    one.relay.closing()
    with caplog.at_level("WARNING", logger="oxsync.push.procbus"):
        pumps[0].client.transport.loseConnection()
        _flush(pumps)
        assert one.lost == 0 and one.relay.peers == [] and len(first.relay.peers) == 1
        assert not [r for r in caplog.records if getattr(r, "event", "") == "procbus.channel_lost"]
        pumps[1].client.transport.loseConnection()  # copy two is not ending: lost, said once
        _flush(pumps)
    assert two.lost == 1
    assert [getattr(r, "event", "") for r in caplog.records if r.name == "oxsync.push.procbus"] == \
        ["procbus.channel_lost"]
