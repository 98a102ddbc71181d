"""New mail wakes parked Pings and hanging Syncs: one watcher per node feeding the change bus.

Why a STATUS poll (docs/mail.md): the watcher must cover every folder of every account with a parked
request on this node, without a connection per account held open. IDLE watches one selected mailbox
per connection; NOTIFY (RFC 5465) covers many mailboxes but still one connection per account, held for
as long as the account has a parked request; Dovecot's push_notification plugin needs its Lua driver
(dovecot-lua has no Debian candidate here) or the OX HTTP driver. A poll of `STATUS (UIDNEXT
HIGHESTMODSEQ)` every `watch_interval_seconds` (default 1 s) on pooled, borrowed connections wakes
within about a second of new mail (only new mail wakes: `wakes`), holds no connection between rounds,
and its cost is one STATUS per watched folder per round. A change is published on the bus under the folder's negative bus id, so every parked
request of this node wakes the same way as for a store commit; a parked Ping holds no IMAP connection.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall

from oxsync.mail import gateway

log = logging.getLogger("oxsync.eas.mailpush")

WatchKey = tuple[int, str, str]
"""(tenant, account, IMAP folder name)."""


def wakes(before: tuple[int, int, int], now: tuple[int, int, int]) -> bool:
    """Only new mail (UIDNEXT moved) or a reset folder (UIDVALIDITY) wakes a parked request: flag
    changes and expunges by other clients wait for the device's next Sync (iOS re-notified and
    re-downloaded when every change woke its Ping: Z-Push-contrib#235). New mail is always inside the
    device's window, since the window is counted back from now."""
    return now[0] != before[0] or now[1] > before[1]


class MailWatcher:
    def __init__(self, eas: Any) -> None:
        self.eas = eas
        self.watched: dict[WatchKey, tuple[int, int]] = {}
        """-> (bus id, number of parked requests watching)."""
        self.seen: dict[WatchKey, tuple[int, int, int]] = {}
        """-> (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) last seen."""
        self.rounds = 0
        self.status_commands = 0
        self._running: Deferred[Any] | None = None

    def watch(self, tenant: int, account: str, name: str, bus_id: int,
              baseline: tuple[int, int, int] | None = None) -> WatchKey:
        key = (tenant, account.lower(), name)
        current = self.watched.get(key)
        self.watched[key] = (bus_id, (current[1] if current else 0) + 1)
        if baseline is not None and key not in self.seen:
            self.seen[key] = baseline
        return key

    def unwatch(self, key: WatchKey) -> None:
        current = self.watched.get(key)
        if current is None:
            return
        if current[1] <= 1:
            del self.watched[key]
            self.seen.pop(key, None)
        else:
            self.watched[key] = (current[0], current[1] - 1)

    def poll(self) -> Deferred[Any] | None:
        """One round: STATUS of every watched folder, grouped per account; publishes what moved."""
        if self._running is not None or not self.watched or self.eas.mail is None:
            return None
        self.rounds += 1
        by_account: dict[tuple[int, str], list[str]] = {}
        for tenant, account, name in list(self.watched)[:self.eas.mail.settings.watch_batch]:
            by_account.setdefault((tenant, account), []).append(name)

        def statuses(conn: Any, names: list[str]) -> dict[str, tuple[int, int, int]]:
            out = {}
            for name in names:
                try:
                    st = gateway.status(conn, name)
                except Exception:  # noqa: BLE001 - a folder deleted meanwhile: report it as changed
                    out[name] = (0, 0, 0)
                    continue
                out[name] = (st.uidvalidity, st.uidnext, st.modseq)
            return out

        calls = []
        for (tenant, account), names in by_account.items():
            self.status_commands += len(names)
            d = self.eas.mail.run(account, lambda conn, names=names: statuses(conn, names))
            d.addCallback(self._compare, tenant, account)
            d.addErrback(lambda f: log.warning("mail watch failed: %s", f.getErrorMessage(),
                                               extra={"event": "eas.mail_watch_failed"}))
            calls.append(d)
        done: Deferred[Any] = DeferredList(calls, consumeErrors=True)
        self._running = done

        def finished(result: Any) -> Any:
            self._running = None
            return result

        return done.addBoth(finished)

    def _compare(self, found: dict[str, tuple[int, int, int]], tenant: int, account: str) -> None:
        for name, values in found.items():
            key = (tenant, account, name)
            if key not in self.watched:
                continue
            before = self.seen.get(key)
            self.seen[key] = values
            if before is not None and wakes(before, values):
                self.eas.bus.publish(tenant, [self.watched[key][0]], 0, origin="mail")


class MailRunner(Service):
    """Starts the IMAP pool and the watcher loop with the server; stops them after it."""

    name = "mail"

    def __init__(self, eas: Any) -> None:
        self.eas = eas
        self.watcher = MailWatcher(eas)
        eas.mail_watcher = self.watcher
        self.loop: LoopingCall | None = None
        self.idle_loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self.eas.mail.start()
        self.loop = LoopingCall(self.watcher.poll)
        self.loop.clock = self.eas.reactor
        self.loop.start(self.eas.mail.settings.watch_interval_seconds, now=False)
        self.idle_loop = LoopingCall(self.eas.mail.pool.threads.callInThread, self.eas.mail.pool.close_idle)
        self.idle_loop.clock = self.eas.reactor
        self.idle_loop.start(30, now=False)

    def stopService(self) -> Any:
        for loop in (self.loop, self.idle_loop):
            if loop is not None and loop.running:
                loop.stop()
        self.eas.mail.stop()
        return super().stopService()
