"""The outbound mail worker as the assembly installs it: queue work plus the periodic tasks (queue
pruning, due reminders, daily digests), with every renderer registered."""

from __future__ import annotations

from typing import Any

from oxsync.config import Settings
from oxsync.mail import imip, reminders  # noqa: F401 - register their renderers
from oxsync.mail.outbound import OutboundWorker
from oxsync.store import reminders as due
from oxsync.store.api import Store

PRUNE_EVERY_SECONDS = 3600.0


def outbound_service(store: Store, reactor: Any, settings: Settings | None = None,
                     node: str | None = None) -> OutboundWorker:
    settings = settings or store.settings
    out = settings.outbound
    tasks: list[tuple[float, Any]] = [
        (PRUNE_EVERY_SECONDS, store.outbound.prune),
        (out.reminder_scan_seconds, lambda: due.scan(store, settings=settings)),
        (out.digest_scan_seconds, lambda: due.scan_digests(store, settings=settings)),
    ]
    return OutboundWorker(store, reactor, settings=settings, node=node, extra_tasks=tasks)
