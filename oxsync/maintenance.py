"""Periodic store maintenance run by the server: tombstone pruning in every tenant.

Runs on the store's thread pool, never on the reactor; a failure is logged and retried next round.
"""

from __future__ import annotations

import logging

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred

from oxsync.runtime import DeferredStore
from oxsync.store.api import Store

log = logging.getLogger("oxsync.maintenance")


def prune_all(store: Store) -> dict[str, int]:
    """Prune every tenant's tombstones older than the configured horizon; returns rows removed per domain."""
    return {tenant.domain: store.prune_tombstones(tenant.id) for tenant in store.tenants()}


def prune_service(async_store: DeferredStore, interval_seconds: int) -> TimerService:
    def run() -> Deferred[dict[str, int]]:
        d = async_store.run(prune_all, async_store.store)
        d.addErrback(lambda failure: log.error("tombstone pruning failed: %s", failure.getErrorMessage()))
        return d

    service = TimerService(interval_seconds, run)
    service.setName("prune")
    return service
