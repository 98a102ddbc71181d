"""What push needs from the server, typed here so that `oxsync.push` stays below `oxsync.runtime` and
`oxsync.web` (the direction is web -> runtime -> push: `DeferredStore` publishes to the `ChangeBus`).

`runtime.DeferredStore` is a `StorePool` and the assembly's service is a `PushHost`, by shape (Protocols:
no import back up).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from twisted.application.service import IService
from twisted.internet.defer import Deferred

from oxsync.push.bus import ChangeBus
from oxsync.store.api import Store

T = TypeVar("T")


class StorePool(Protocol):
    """The store's thread pool (`oxsync.runtime.DeferredStore`): `run` calls a store function off the
    reactor thread and fires on it."""

    @property
    def store(self) -> Store: ...

    @property
    def reactor(self) -> Any: ...

    def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> Deferred[T]: ...


class PushHost(Protocol):
    """The server as `install_pgbus` sees it (a narrower `oxsync.web.context.DialectHost`)."""

    @property
    def async_store(self) -> StorePool: ...

    @property
    def bus(self) -> ChangeBus: ...

    def addService(self, service: IService) -> None: ...
