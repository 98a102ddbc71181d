"""The outbound mail worker as the assembly installs it: queue work plus the periodic tasks
(queue pruning; reminders and digests once they exist), with every renderer registered."""

from __future__ import annotations

from typing import Any

from oxsync.config import Settings
from oxsync.mail import imip  # noqa: F401 - registers the iMIP renderer
from oxsync.mail.outbound import OutboundWorker
from oxsync.store.api import Store

PRUNE_EVERY_SECONDS = 3600.0


def outbound_service(store: Store, reactor: Any, settings: Settings | None = None,
                     node: str | None = None) -> OutboundWorker:
    settings = settings or store.settings
    tasks: list[tuple[float, Any]] = [(PRUNE_EVERY_SECONDS, store.outbound.prune)]
    return OutboundWorker(store, reactor, settings=settings, node=node, extra_tasks=tasks)
