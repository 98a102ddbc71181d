"""Assembly: every client dialect and the cross-node bus on one `OxService`.

The protocol packages never import each other; this module (like server.py) is where they meet.
"""

from __future__ import annotations

from oxsync.server import OxService


def install_all(service: OxService) -> None:
    """ActiveSync, the OX WebDAV/XML servlets with UDP push, CalDAV/CardDAV, the PostgreSQL bus, and the
    web console with the admin API on its own listener when `[console] endpoint` is set; onboarding
    (autoconfig, /profile) after DAV, whose /.well-known it extends."""
    from oxsync.console import install as install_console
    from oxsync.eas import install as install_eas
    from oxsync.onboarding import install as install_onboarding
    from oxsync.push.pgbus import install_pgbus
    from oxsync.webdav.dav import install as install_dav
    from oxsync.webdav.ox import install as install_ox

    for install in (install_eas, install_ox, install_dav, install_onboarding, install_pgbus, install_console):
        install(service)
