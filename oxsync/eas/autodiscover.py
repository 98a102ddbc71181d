"""Autodiscover (`/autodiscover/autodiscover.xml`, any case): where the ActiveSync endpoint is.

Answers the `mobilesync` response schema (phones) and the `outlook` 2006a schema (Outlook desktop),
with the MobileSync URL built from the Host the client used. Authenticated like every EAS request;
XML is parsed with entities and network access disabled; a request asking for another schema gets
`ErrorCode 601`, an unreadable one `600`.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from lxml import etree
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.eas.service import Eas
from oxsync.endpoints import public_host, public_scheme
from oxsync.model import Protocol
from oxsync.store.api import Principal
from oxsync.web import send_bytes

log = logging.getLogger("oxsync.eas.autodiscover")

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
MOBILESYNC = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MAX_BODY = 64 * 1024


class AutodiscoverRoot(Resource):
    def __init__(self, eas: Eas) -> None:
        super().__init__()
        self.leaf = AutodiscoverResource(eas)

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path.lower() == b"autodiscover.xml":
            return self.leaf
        return super().getChild(path, request)


def _error(code: int, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{RESPONSE_NS}"><Response>'
            f'<Error Time="00:00:00" Id="1"><ErrorCode>{code}</ErrorCode><Message>{escape(message)}</Message>'
            f'<DebugData /></Error></Response></Autodiscover>').encode()


class AutodiscoverResource(Resource):
    isLeaf = True

    def __init__(self, eas: Eas) -> None:
        super().__init__()
        self.eas = eas

    def render_GET(self, request: Request) -> object:
        return self.render_POST(request)

    def render_POST(self, request: Request) -> object:
        d = self.eas.authenticator.authenticate(request, Protocol.MOBILE)
        d.addCallback(self._answer, request)
        return NOT_DONE_YET

    def _answer(self, principal: Principal | None, request: Request) -> None:
        if principal is None:
            return
        raw = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        schema, email = MOBILESYNC, principal.email
        if raw.strip():
            if len(raw) > MAX_BODY:
                return send_bytes(request, 413, _error(600, "request too large"), b"text/xml; charset=utf-8")
            try:
                parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
                doc = etree.fromstring(raw, parser)
                if doc.getroottree().docinfo.doctype:
                    raise ValueError("DOCTYPE not allowed")
            except (etree.XMLSyntaxError, ValueError) as exc:
                log.warning("bad autodiscover request", extra={"event": "eas.autodiscover_bad", "reason": str(exc)})
                return send_bytes(request, 200, _error(600, "Invalid Request"), b"text/xml; charset=utf-8")
            texts = {etree.QName(el).localname: (el.text or "").strip() for el in doc.iter() if isinstance(el.tag, str)}
            schema = texts.get("AcceptableResponseSchema") or MOBILESYNC
            email = texts.get("EMailAddress") or principal.email
        server = self.eas.settings.server
        host = (request.getHeader(b"host") or public_host(server).encode()).decode("latin-1")
        scheme = "https" if request.isSecure() else public_scheme(server)
        url = escape(f"{scheme}://{host}/Microsoft-Server-ActiveSync")
        name, mail = escape(principal.display_name or principal.login), escape(email or principal.email)
        if schema == MOBILESYNC:
            inner = (f'<Response xmlns="{MOBILESYNC}"><Culture>en:us</Culture><User><DisplayName>{name}</DisplayName>'
                     f'<EMailAddress>{mail}</EMailAddress></User><Action><Settings><Server><Type>MobileSync</Type>'
                     f'<Url>{url}</Url><Name>{url}</Name></Server></Settings></Action></Response>')
        elif schema == OUTLOOK:
            inner = (f'<Response xmlns="{OUTLOOK}"><User><DisplayName>{name}</DisplayName>'
                     f'<EMailAddress>{mail}</EMailAddress></User><Account><AccountType>email</AccountType>'
                     f'<Action>settings</Action><Protocol><Type>MobileSync</Type><Server>{url}</Server>'
                     f'<Url>{url}</Url><LoginName>{escape(principal.login)}</LoginName></Protocol></Account></Response>')
        else:
            return send_bytes(request, 200, _error(601, "Requested schema not available"), b"text/xml; charset=utf-8")
        body = f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="{RESPONSE_NS}">{inner}</Autodiscover>'
        send_bytes(request, 200, body.encode(), b"text/xml; charset=utf-8")
