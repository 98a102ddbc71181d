"""sd_notify for `Type=notify` units: READY=1 once every listener is up, STOPPING=1 on shutdown.

The protocol is one datagram of `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET` (a name
starting with `@` is in the abstract namespace), so no library is needed. Without the variable (not
run by systemd) every call does nothing. A notification that cannot be sent is logged, never fatal.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("oxsync.systemd")


def notify(*states: str) -> bool:
    """Send `states` (e.g. "READY=1", "STATUS=serving") to systemd; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc, extra={"event": "systemd.notify_failed"})
        return False
    return True
