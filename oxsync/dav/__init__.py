"""CalDAV (RFC 4791, 6638) and CardDAV (RFC 6352) with sync-collection (RFC 6578) over the store.

Entry point: `install(service)` registers /dav and /.well-known and returns nothing. Answering
PROPFIND on `/` needs a hook in `server.RootResource` (see `RootHook` and the report).
"""

from __future__ import annotations

from typing import Any

from oxsync.dav.resource import DavResource, RootHook, WellKnown


def install(service: Any) -> None:
    site = service.site
    dav = DavResource(site.context)
    site.root.register("dav", dav)
    site.root.register(".well-known", WellKnown())
    hook = RootHook(dav)
    site.dav_root_hook = hook
    add_hook = getattr(site.root, "add_root_hook", None)  # the hook server.RootResource is asked for
    if add_hook is not None:
        add_hook(hook)


__all__ = ["DavResource", "RootHook", "WellKnown", "install"]
