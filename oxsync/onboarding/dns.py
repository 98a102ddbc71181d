"""DNS records that let clients find the server from an e-mail address alone (`oxsync dns`):
RFC 6764 SRV/TXT for CalDAV and CardDAV, the Autodiscover SRV record (Outlook, phones), and the
`autodiscover.` / `autoconfig.` host names (Thunderbird's host-form autoconfig)."""

from __future__ import annotations

import ipaddress

from oxsync.config import Settings
from oxsync.onboarding.profile import _host_port

TTL = 3600


def dns_records(settings: Settings, domain: str) -> list[str]:
    host, port, tls = _host_port(settings)
    target = f"{host}." if not _is_ip(host) else None
    d = f"{domain.rstrip('.')}."
    secure, plain = ("s", "") if tls else ("", "s")
    records = []
    for service in ("caldav", "carddav"):
        records.append(f"_{service}{secure}._tcp.{d} {TTL} IN SRV 0 1 {port} {target or host}")
        records.append(f'_{service}{secure}._tcp.{d} {TTL} IN TXT "path=/.well-known/{service}"')
        records.append(f"_{service}{plain}._tcp.{d} {TTL} IN SRV 0 0 0 .")  # RFC 6764: not offered
    if tls:
        records.append(f"_autodiscover._tcp.{d} {TTL} IN SRV 0 1 {port} {target}")
    for name in ("autodiscover", "autoconfig"):
        if target is not None:
            records.append(f"{name}.{d} {TTL} IN CNAME {target}")
        else:
            kind = "AAAA" if ipaddress.ip_address(host).version == 6 else "A"
            records.append(f"{name}.{d} {TTL} IN {kind} {host}")
    return records


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
