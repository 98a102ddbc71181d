"""`GET /health`: 200 when the reactor answers and a trivial store query succeeds on the pool, else 503.

The query goes through the same thread pool as real work, so a saturated or dead pool shows up here.
Each listener (HTTP, admin, UDP push) is reported up or down; any down makes it 503. No authentication
and no details beyond these states, the answering process's id (`process`: with `[server]
processes` > 1 several processes answer on one port; it tells an operator which one did) and how many
Argon2 password checks that process ran (`password_hashes`: with `[server] processes` > 1 the first
process runs the node's, a further one only when the first could not answer; docs/cluster.md), and on
SQLite the writer's turn's counts (`writer_turns`: writes that waited for another serving process's
write, writes not granted a turn; store.engine.WriterTurn).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.runtime import DeferredStore
from oxsync.web import send_json

log = logging.getLogger("oxsync.web.health")


class HealthResource(Resource):
    isLeaf = True

    def __init__(self, async_store: DeferredStore,
                 listener_states: Callable[[], dict[str, dict[str, Any]]] | None = None,
                 password_hashes: Callable[[], int] = lambda: 0) -> None:
        super().__init__()
        self.async_store = async_store
        self.listener_states = listener_states or dict
        self.password_hashes = password_hashes
        store: Any = getattr(async_store, "store", None)
        self.writer_turns: Callable[[], dict[str, int]] = getattr(store, "writer_turns", dict)

    def render_GET(self, request: Request) -> object:
        d = self.async_store.ping()
        d.addCallbacks(self._ok, self._failed, callbackArgs=(request,), errbackArgs=(request,))
        return NOT_DONE_YET

    render_HEAD = render_GET

    def _listeners(self) -> dict[str, bool]:
        return {name: bool(state.get("up")) for name, state in self.listener_states().items()}

    def _ok(self, elapsed_ms: float, request: Request) -> None:
        listeners = self._listeners()
        healthy = all(listeners.values())
        send_json(request, 200 if healthy else 503,
                  {"status": "ok" if healthy else "error", "store": "ok", "revision_check_ms": round(elapsed_ms, 2),
                   "listeners": {name: "up" if up else "down" for name, up in listeners.items()},
                   "process": os.getpid(), "password_hashes": self.password_hashes(),
                   "writer_turns": self.writer_turns()},
                  {b"Cache-Control": b"no-store"})

    def _failed(self, failure: Failure, request: Request) -> None:
        log.error("health check failed: %s", failure.getErrorMessage(), extra={"event": "health.failed"})
        listeners = {name: "up" if up else "down" for name, up in self._listeners().items()}
        send_json(request, 503, {"status": "error", "store": "error", "listeners": listeners},
                  {b"Cache-Control": b"no-store"})
