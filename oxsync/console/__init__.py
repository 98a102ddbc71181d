"""The web console and the admin API (issue 16): MailAdmin's pages for providers, customers and users.

A peer of the dialects: imports the model, the store's public API and web/ helpers, never eas/, ox/ or
dav/; only the assembly (oxsync/dialects.py) mounts it, on its own listener. See docs/console.md.
"""

from __future__ import annotations

from typing import Any


def install(service: Any) -> Any:
    from oxsync.console.app import install as install_console

    return install_console(service)
