"""The ActiveSync dialect instance: shared context for handlers and the parked-request registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from oxsync.config import EasSettings, Settings
from oxsync.eas.exportcache import ExportCache
from oxsync.eas.park import ParkedRequests
from oxsync.eas.request import EasRequest, EasResponse, GateRefused
from oxsync.eas.state import NeedsWriteTransaction, StagedStates, StateStore
from oxsync.mail import MailService
from oxsync.push.bus import ChangeBus
from oxsync.runtime import DeferredStore, SessionOpener
from oxsync.store.protocol_state import StateMoved
from oxsync.store.session import UserSession
from oxsync.web.auth import Authenticator

T = TypeVar("T")


class Eas:
    def __init__(self, settings: Settings, async_store: DeferredStore, bus: ChangeBus,
                 authenticator: Authenticator, reactor: Any) -> None:
        self.settings = settings
        self.async_store = async_store
        self.bus = bus
        self.authenticator = authenticator  # remembers verified logins for every dialect
        self.reactor = reactor
        self.parked = ParkedRequests(reactor, settings.eas.ping_wake_batch)
        self.export_cache = ExportCache(settings.eas.export_cache_objects)
        self.unsubscribe = bus.subscribe(self.parked.on_change)
        self.mail: MailService | None = MailService(settings.mail, reactor) if settings.mail.imap_host else None
        """The IMAP gateway (docs/mail.md); None = no mail server configured (placeholder mail folders)."""
        self.mail_watcher: Any = None
        """oxsync.eas.mailpush.MailWatcher once the server runs with mail."""

    @property
    def config(self) -> EasSettings:
        return self.settings.eas

    def read(self, req: EasRequest, fn: Callable[[UserSession], T], light: bool = False) -> Deferred[T]:
        """`light`: a cheap unit (device state, Provision, Ping checks) served before heavy ones
        (`DeferredStore.run_light`); Sync windows and searches stay heavy."""
        return self.async_store.read(req.tenant_id, req.user_id, fn, light)

    def write(self, req: EasRequest, fn: Callable[[UserSession], T], light: bool = False) -> Deferred[T]:
        return self.async_store.write(req.tenant_id, req.user_id, fn, light)

    def staged(self, req: EasRequest, work: Callable[[UserSession, StateStore], T],
               light: bool = False) -> Deferred[T]:
        """`work` in a read transaction with its device state staged, then that state in a short write
        transaction (`state.StagedStates`); `work` runs again inside one write transaction when it must
        write more than state (`NeedsWriteTransaction`) or when a state it read moved meanwhile. All of
        it is one unit on one pool thread (`DeferredStore.sequence`): no hop back to the reactor and no
        second queueing between the read and the write. `light` says which lane the unit takes. On
        PostgreSQL a write of one state is one compare-and-swap statement that commits alone on the
        read's own connection (`StagedStates.commit_alone`): no second transaction, no BEGIN or COMMIT.

        The request's provisioning gate, when the command runs it here (`EasRequest.gate`), runs first in
        each of these transactions: a Sync is one unit where it was three, and the device record's touch
        is staged with the command's state. A refusal fails the Deferred with `GateRefused` once its
        touch is written."""
        gate = req.take_gate()

        def gated(session: UserSession, states: StateStore) -> T | _Refused:
            refused = gate(states) if gate is not None else None
            return _Refused(refused) if refused is not None else work(session, states)

        def unit(open_session: SessionOpener) -> T:
            try:
                with open_session(False) as session:
                    states = StagedStates(session)
                    result = gated(session, states)
                    # on PostgreSQL a one-state write is one statement on the read's own connection
                    committed = not states.writes or states.commit_alone(session)
                if not committed:
                    with open_session(True) as session:
                        states.commit(session)
                    committed = True
            except (NeedsWriteTransaction, StateMoved):  # StateMoved rolled the state write back
                committed = False
            if not committed:
                with open_session(True) as session:
                    result = gated(session, session)
            return _answer(result)  # a refusal raises once its transaction has committed

        return self.async_store.sequence(req.tenant_id, req.user_id, unit, light)


class _Refused:
    """The gate's refusal, carried out of a unit that must still commit the device record's touch."""

    def __init__(self, response: EasResponse) -> None:
        self.response = response


def _answer(result: T | _Refused) -> T:
    if isinstance(result, _Refused):
        raise GateRefused(result.response)
    return result


Handler = Callable[[Eas, EasRequest], "EasResponse | Deferred[EasResponse]"]
"""A command's code; `oxsync.eas.commands.HANDLERS` binds each command name to one."""
