"""Exchange ActiveSync: WBXML codec, HTTP layer, commands, data-class mappers.

`install(service)` registers `/Microsoft-Server-ActiveSync` and Autodiscover on the service's site and
subscribes the parked-request registry to the change bus.
"""

from __future__ import annotations

from typing import Any


def install(service: Any) -> Any:
    """Attach ActiveSync to an `OxsyncService`; returns the `Eas` instance (tests and benches use it)."""
    from oxsync.eas.autodiscover import AutodiscoverRoot
    from oxsync.eas.http import ActiveSyncResource
    from oxsync.eas.service import Eas

    ctx = service.site.context
    reactor = service.async_store.reactor
    eas = Eas(ctx.settings, ctx.async_store, ctx.bus, ctx.authenticator, reactor)
    resource = ActiveSyncResource(eas)
    root = service.site.root
    root.register("Microsoft-Server-ActiveSync", resource)
    root.register("microsoft-server-activesync", resource)
    autodiscover = AutodiscoverRoot(eas)
    root.register("autodiscover", autodiscover)
    root.register("Autodiscover", autodiscover)
    service.eas = eas
    if eas.mail is not None:
        from oxsync.eas.mailpush import MailRunner

        MailRunner(eas).setServiceParent(service)
    return eas
