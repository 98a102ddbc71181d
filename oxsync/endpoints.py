"""What a `[server]` endpoint string says (interface, port), and the server as clients see it (public
scheme and host, printed by `serve` and used by autoconfig, profiles and Autodiscover); where UDP push
listens. Apart from config.py, which holds the settings themselves."""

from __future__ import annotations

import re
import socket

from oxsync.config import ServerSettings


def endpoint_interface(endpoint: str) -> str:
    """The `interface=` of a Twisted `tcp:`/`ssl:` endpoint string ('' = all interfaces)."""
    for part in re.split(r"(?<!\\):", endpoint)[2:]:
        if part.startswith("interface="):
            return part[len("interface="):].replace("\\:", ":")
    return ""


def endpoint_port(endpoint: str) -> int | None:
    """The port of a `tcp:`/`ssl:` endpoint string (`tcp:8080:...` or `tcp:port=8080`), when it has one."""
    parts = re.split(r"(?<!\\):", endpoint)
    if len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    for part in parts[1:]:
        if part.startswith("port=") and part[5:].isdigit():
            return int(part[5:])
    return None


def public_scheme(server: ServerSettings) -> str:
    """`public_scheme`, else https for an `ssl:` endpoint."""
    return server.public_scheme or ("https" if server.http_endpoint.startswith("ssl:") else "http")


def public_host(server: ServerSettings, bound_port: int | None = None) -> str:
    """What clients enter as the server: `public_host`, else the endpoint's interface (or this machine's
    name when it listens everywhere) with the port unless it is the scheme's default."""
    if server.public_host:
        return server.public_host
    interface = endpoint_interface(server.http_endpoint)
    host = interface if interface not in ("", "0.0.0.0", "::") else socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    port = bound_port or endpoint_port(server.http_endpoint)
    default = 443 if public_scheme(server) == "https" else 80
    return host if port in (None, default) else f"{host}:{port}"


def udp_bind_interface(server: ServerSettings) -> str:
    """Where UDP push listens: `udp_interface`, else where HTTP listens."""
    return server.udp_interface or endpoint_interface(server.http_endpoint)
