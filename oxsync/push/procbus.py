"""The change bus between the serving processes of one SQLite node (`[server] processes` > 1).

On PostgreSQL every process is a node and hears the others' commits through LISTEN/NOTIFY
(`oxsync.push.pgbus`). SQLite has no such channel, so the processes relay their commits' notices
over the socketpairs the first process hands its copies (`oxsync.processes`, the same AMP connection
the password broker answers on: these are two more commands on it). Each process sends what its own
commits published on its `ChangeBus` (origin "local": folder changes and account changes); the first
process republishes a copy's notices on its own bus and forwards them to the other copies; every
receiver publishes them with origin "remote" (as pgbus does), which wakes parked Pings, sync-collection
and OX waiters, the UDP push, and makes the verified-login caches forget changed accounts.

What must hold: no process serves on after it can no longer hear the others. A copy whose channel
closes stops (`on_lost`: the server stops its reactor) and the first process starts it again with a
fresh channel, as it restarts any copy that exits; the first process stops its copies when it ends.
A channel that closes because this process is ending anyway (`closing`, called when its reactor starts
to shut down: a normal stop closes every connection) is not lost: no warning, no stop asked.
Notices travel in commit order over one stream; extra ones are harmless (subscribers compare revisions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import succeed
from twisted.protocols import amp

from oxsync.push.bus import AccountChange, Change, ChangeBus

log = logging.getLogger("oxsync.push.procbus")

ALL = 0
"""`AccountsChanged.tenant` for "every tenant" (a tenant rename or delete)."""


class FolderChanged(amp.Command):
    """These folders of this tenant reached `revision` (empty `folders`: any folder of the tenant)."""

    arguments = [(b"tenant", amp.Integer()), (b"folders", amp.ListOf(amp.Integer())), (b"revision", amp.Integer())]
    response = []  # no answer
    requiresAnswer = False


class AccountsChanged(amp.Command):
    """These users' accounts changed (`tenant` 0: every tenant; empty `users`: every user)."""

    arguments = [(b"tenant", amp.Integer()), (b"users", amp.ListOf(amp.Integer()))]
    response = []  # no answer
    requiresAnswer = False


COMMANDS: dict[bytes, type[amp.Command]] = {c.commandName: c for c in (FolderChanged, AccountsChanged)}


class ProcessRelay:
    """One process's end of the relay: sends its own commits' notices on every peer channel it holds
    (the first process: one per copy; a copy: the one to the first process) and publishes what arrives
    with origin "remote"; the first process (`hub`) also forwards what one copy sent to the others."""

    def __init__(self, bus: ChangeBus, *, hub: bool, on_lost: Callable[[], object] | None = None) -> None:
        self.bus = bus
        self.hub = hub
        self.on_lost = on_lost
        self.peers: list[amp.AMP] = []
        self.ending = False
        """This process is shutting down (`closing`): its channels close on purpose."""
        self.sent = 0
        self.received = 0
        """Notices sent and received so far (work counts for tests and health)."""
        bus.subscribe(self._local_change)
        bus.subscribe_accounts(self._local_accounts)

    # ------------------------------------------------------------ channels (called by the AMP protocols)

    def joined(self, peer: amp.AMP) -> None:
        self.peers.append(peer)

    def closing(self) -> None:
        """This process is ending (its reactor's shutdown began): channels that close now are not lost."""
        self.ending = True

    def left(self, peer: amp.AMP | None) -> None:
        if peer in self.peers:
            self.peers.remove(peer)
        if not self.hub and self.on_lost is not None and not self.ending:
            log.warning("lost the channel to the first process: stopping (it starts this process again)",
                        extra={"event": "procbus.channel_lost"})
            self.on_lost()

    def responder(self, peer: amp.AMP, name: bytes) -> Callable[[amp.AmpBox], Any] | None:
        """AMP's `locateResponder` for the relay's commands (None: not one of them)."""
        command = COMMANDS.get(name)
        if command is None:
            return None

        def respond(box: amp.AmpBox) -> Any:
            self._received(peer, command, command.parseArguments(box, peer))
            return succeed(amp.AmpBox())
        return respond

    # ------------------------------------------------------------ sending

    def _local_change(self, change: Change) -> None:
        if change.origin == "local":
            self._send(None, FolderChanged, tenant=change.tenant_id, folders=sorted(change.folder_ids),
                       revision=change.revision)

    def _local_accounts(self, change: AccountChange) -> None:
        if change.origin == "local":
            self._send(None, AccountsChanged, tenant=change.tenant_id or ALL, users=sorted(change.user_ids))

    def _send(self, skip: amp.AMP | None, command: type[amp.Command], **arguments: Any) -> None:
        for peer in list(self.peers):
            if peer is skip:
                continue
            try:
                peer.callRemote(command, **arguments)
                self.sent += 1
            except Exception:  # a closing channel: its own connectionLost decides
                log.exception("cannot relay a change", extra={"event": "procbus.send_failed"})

    # ------------------------------------------------------------ receiving

    def _received(self, peer: amp.AMP, command: type[amp.Command], arguments: dict[str, Any]) -> None:
        self.received += 1
        if command is FolderChanged:
            self.bus.publish(arguments["tenant"], arguments["folders"], arguments["revision"], origin="remote")
        else:
            tenant = arguments["tenant"] or None
            self.bus.publish_accounts(tenant, arguments["users"], origin="remote")
        if self.hub:
            self._send(peer, command, **arguments)
