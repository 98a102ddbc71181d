"""`GET /health`: 200 when the reactor answers and a trivial store query succeeds on the pool, else 503.

The query goes through the same thread pool as real work, so a saturated or dead pool shows up here.
No authentication and no details beyond the status (it is usually exposed to load balancers).
"""

from __future__ import annotations

import logging

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.runtime import AsyncStore
from oxsync.web import send_json

log = logging.getLogger("oxsync.web.health")


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, async_store: AsyncStore) -> None:
        super().__init__()
        self.async_store = async_store

    def render_GET(self, request: Request) -> object:
        d = self.async_store.ping()
        d.addCallbacks(self._ok, self._failed, callbackArgs=(request,), errbackArgs=(request,))
        return NOT_DONE_YET

    render_HEAD = render_GET

    def _ok(self, elapsed_ms: float, request: Request) -> None:
        send_json(request, 200, {"status": "ok", "store": "ok", "revision_check_ms": round(elapsed_ms, 2)},
                  {b"Cache-Control": b"no-store"})

    def _failed(self, failure: Failure, request: Request) -> None:
        log.error("health check failed: %s", failure.getErrorMessage(), extra={"event": "health.failed"})
        send_json(request, 503, {"status": "error", "store": "error"}, {b"Cache-Control": b"no-store"})
