"""Assembly: every client dialect and the cross-node bus on one `OxsyncService`.

The protocol packages never import each other; this module (like server.py) is where they meet.
"""

from __future__ import annotations

from oxsync.server import OxsyncService


def install_all(service: OxsyncService) -> None:
    """ActiveSync, the OX WebDAV/XML servlets with UDP push, CalDAV/CardDAV, the PostgreSQL bus, and the
    web console with the admin API on its own listener when `[console] endpoint` is set; onboarding
    (autoconfig, /profile) after DAV, whose /.well-known it extends."""
    from oxsync.console import install as install_console
    from oxsync.dav import install as install_dav
    from oxsync.eas import install as install_eas
    from oxsync.onboarding import install as install_onboarding
    from oxsync.ox import install as install_ox
    from oxsync.push.pgbus import install_pgbus

    for install in (install_eas, install_ox, install_dav, install_onboarding, install_pgbus, install_console):
        install(service)
