"""What the assembly hands to each dialect: the shared context and the service a dialect attaches to.

These types live below the dialects so that no dialect imports the assembly (`server.py`); the
assembly builds them and passes them down (docs/architecture.md, "Directions").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from twisted.application.service import IService

from oxsync.config import Settings
from oxsync.push.bus import ChangeBus
from oxsync.runtime import DeferredStore
from oxsync.store.api import Store
from oxsync.web.auth import Authenticator


@dataclass
class ServerContext:
    """What request handlers of every dialect share."""

    settings: Settings
    store: Store
    async_store: DeferredStore
    bus: ChangeBus
    authenticator: Authenticator


class DialectHost(Protocol):
    """The server as a dialect's `install(service)` sees it: its site (`site.context` is the
    `ServerContext`, `site.root.register(segment, resource)` mounts a resource), the store's thread pool,
    the change bus, and a parent for the dialect's own services."""

    site: Any
    async_store: DeferredStore
    bus: ChangeBus

    def addService(self, service: IService) -> None: ...
