"""Thunderbird autoconfig (config-v1.1.xml): `/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=…`
and the `autoconfig.<domain>` host form (`/mail/config-v1.1.xml`), with the CalDAV and CardDAV accounts.

Unauthenticated by design (clients ask before they know a password); it answers only for tenants this
server holds (404 otherwise) and says nothing about accounts. The IMAP and SMTP servers are listed when
mail is configured (`[mail] imap_host`, `[outbound] smtp_relay`).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.advertised import MailServer, imap_server, smtp_server
from oxsync.config import Settings
from oxsync.endpoints import public_host, public_scheme
from oxsync.web import send_bytes, send_text

CONFIG_FILE = b"config-v1.1.xml"


def domain_of(request: Request) -> str | None:
    """The mail domain asked about: from `emailaddress`, else from an `autoconfig.<domain>` Host."""
    address = (request.args.get(b"emailaddress") or [b""])[0].decode("utf-8", "replace").strip().lower()
    if "@" in address:
        return address.rsplit("@", 1)[1] or None
    host = (request.getHeader(b"host") or b"").decode("latin-1").split(":")[0].strip().lower()
    if not host.startswith("autoconfig."):
        return None
    return host[len("autoconfig."):] or None


def config_xml(settings: Settings, domain: str) -> bytes:
    base = f"{public_scheme(settings.server)}://{public_host(settings.server)}"
    d = escape(domain)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<clientConfig version="1.1">',
        f'  <emailProvider id="{d}">',
        f"    <domain>{d}</domain>",
        f"    <displayName>{d}</displayName>",
        f"    <displayShortName>{d}</displayShortName>",
    ]
    lines += _server_lines("incomingServer", "imap", imap_server(settings))
    lines += _server_lines("outgoingServer", "smtp", smtp_server(settings))
    lines.append("  </emailProvider>")
    for element, kind in (("addressBook", "carddav"), ("calendar", "caldav")):
        lines += [
            f'  <{element} type="{kind}">',
            "    <username>%EMAILADDRESS%</username>",
            "    <authentication>http-basic</authentication>",
            f"    <serverURL>{escape(base)}/.well-known/{kind}</serverURL>",
            f"  </{element}>",
        ]
    lines.append("</clientConfig>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _server_lines(element: str, kind: str, server: MailServer | None) -> list[str]:
    if server is None:
        return []
    return [
        f'    <{element} type="{kind}">',
        f"      <hostname>{escape(server.host)}</hostname>",
        f"      <port>{server.port}</port>",
        f"      <socketType>{server.socket_type}</socketType>",
        "      <username>%EMAILADDRESS%</username>",
        "      <authentication>password-cleartext</authentication>",
        f"    </{element}>",
    ]


class AutoconfigResource(Resource):
    isLeaf = True

    def __init__(self, settings: Settings, async_store: Any) -> None:
        super().__init__()
        self.settings = settings
        self.async_store = async_store

    def render_GET(self, request: Request) -> Any:
        if not request.path.rstrip(b"/").endswith(b"/mail/" + CONFIG_FILE):
            send_text(request, 404, "not found\n")
            return NOT_DONE_YET
        domain = domain_of(request)
        if not domain or len(domain) > 253:
            send_text(request, 400, "give ?emailaddress=user@domain\n")
            return NOT_DONE_YET
        d = self.async_store.run(self.async_store.store.tenant, domain)
        d.addCallbacks(self._found, self._unknown, callbackArgs=(request, domain), errbackArgs=(request,))
        return NOT_DONE_YET

    def _found(self, _tenant: object, request: Request, domain: str) -> None:
        send_bytes(request, 200, config_xml(self.settings, domain), b"application/xml; charset=utf-8",
                   {b"Cache-Control": b"max-age=3600"})

    def _unknown(self, failure: Failure, request: Request) -> None:
        send_text(request, 404, "no such domain here\n")


class WellKnownRouter(Resource):
    """`/.well-known/autoconfig/...` to us; every other name to the resource that was there before."""

    def __init__(self, previous: Resource | None, autoconfig: AutoconfigResource) -> None:
        super().__init__()
        self.previous = previous
        self.autoconfig = autoconfig

    def getChild(self, path: bytes, request: Request) -> Resource:  # noqa: N802 - Twisted API
        if path == b"autoconfig":
            return self.autoconfig
        if self.previous is None:
            return super().getChild(path, request)
        if self.previous.isLeaf:
            return self.previous  # it reads request.path itself (the CalDAV/CardDAV redirects)
        return self.previous.getChildWithDefault(path, request)
