"""`GET /profile`: an Apple configuration profile (.mobileconfig) for the authenticated user, with the
Exchange ActiveSync, CalDAV and CardDAV accounts; `?mail=imap` puts an IMAP/SMTP account in place of the
Exchange one (macOS Mail has no ActiveSync).

The profile names the server as clients must reach it (`public_host`, TLS per `public_scheme`) and
never contains the password (the device asks for it at installation). Payload UUIDs are derived from
the server and the login, so installing a newer profile replaces the older one. When `[onboarding]
sign_profiles` is on and a certificate and key are known (the `ssl:` endpoint's, or the ones named),
the plist is signed as CMS/PKCS#7 with the certificate included, so iOS shows it as verified.
"""

from __future__ import annotations

import logging
import plistlib
import re
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from oxsync.advertised import imap_server, smtp_server
from oxsync.config import Settings
from oxsync.endpoints import public_host, public_scheme
from oxsync.model import Protocol
from oxsync.store.api import Principal
from oxsync.web import send_bytes, send_text

log = logging.getLogger("oxsync.onboarding")

CONTENT_TYPE = b"application/x-apple-aspen-config"


def _host_port(settings: Settings) -> tuple[str, int, bool]:
    ssl = public_scheme(settings.server) == "https"
    host = public_host(settings.server)
    match = re.match(r"^(\[[^\]]+\]|[^:]+)(?::(\d+))?$", host)
    name, port = (match.group(1), match.group(2)) if match else (host, None)
    return name.strip("[]"), int(port) if port else (443 if ssl else 80), ssl


def profile_plist(settings: Settings, principal: Principal, mail: str = "eas") -> dict[str, Any]:
    """The profile's plist. `mail`: "eas" (phones: mail, contacts and calendars in one Exchange account,
    CalDAV and CardDAV beside it) or "imap" (Macs, whose Mail has no ActiveSync: an IMAP/SMTP account in
    place of the Exchange one; refused with ValueError when this server has no IMAP server)."""
    host, port, ssl = _host_port(settings)
    domain = principal.email.rsplit("@", 1)[-1] if "@" in principal.email else host
    prefix = ".".join(reversed(domain.split("."))) + ".oxsync." + re.sub(r"[^A-Za-z0-9-]", "-", principal.login)
    namespace = uuid.uuid5(uuid.NAMESPACE_DNS, f"{host}/{principal.tenant_id}/{principal.user_id}")
    login = principal.email or principal.login
    label = principal.display_name or principal.login

    def payload(kind: str, name: str, **fields: Any) -> dict[str, Any]:
        return {"PayloadType": kind, "PayloadVersion": 1, "PayloadIdentifier": f"{prefix}.{name}",
                "PayloadUUID": str(uuid.uuid5(namespace, name)).upper(), "PayloadDisplayName": f"{name} ({host})",
                **fields}

    base_path = "" if (port, ssl) in ((443, True), (80, False)) else f":{port}"
    scheme = "https" if ssl else "http"
    if mail == "imap":
        mail_payload = payload("com.apple.mail.managed", "Mail", **_imap_fields(settings, principal.email, login))
    else:
        mail_payload = payload("com.apple.eas.account", "Exchange", EmailAddress=principal.email, Host=host, SSL=ssl,
                               UserName=login, UserDisplayName=label, MailNumberOfPastDaysToSync=30)
    return {
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadIdentifier": prefix,
        "PayloadUUID": str(uuid.uuid5(namespace, "profile")).upper(),
        "PayloadDisplayName": f"{label} at {domain}", "PayloadOrganization": domain,
        "PayloadDescription": "Mail, contacts, calendars and tasks (oxsync)", "PayloadRemovalDisallowed": False,
        "PayloadContent": [
            mail_payload,
            payload("com.apple.caldav.account", "CalDAV", CalDAVAccountDescription=f"Calendars ({domain})",
                    CalDAVHostName=host, CalDAVPort=port, CalDAVUseSSL=ssl, CalDAVUsername=login,
                    CalDAVPrincipalURL=f"{scheme}://{host}{base_path}/dav/principals/{principal.login}/"),
            payload("com.apple.carddav.account", "CardDAV", CardDAVAccountDescription=f"Contacts ({domain})",
                    CardDAVHostName=host, CardDAVPort=port, CardDAVUseSSL=ssl, CardDAVUsername=login,
                    CardDAVPrincipalURL=f"{scheme}://{host}{base_path}/dav/principals/{principal.login}/"),
        ],
    }


def _imap_fields(settings: Settings, email: str, login: str) -> dict[str, Any]:
    imap = imap_server(settings)
    if imap is None:
        raise ValueError("no IMAP server is configured ([mail] imap_host)")
    fields: dict[str, Any] = {
        "EmailAccountType": "EmailTypeIMAP", "EmailAddress": email, "EmailAccountDescription": email,
        "IncomingMailServerHostName": imap.host, "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": imap.socket_type != "plain", "IncomingMailServerUsername": login,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
    }
    smtp = smtp_server(settings)
    if smtp is not None:
        fields |= {"OutgoingMailServerHostName": smtp.host, "OutgoingMailServerPortNumber": smtp.port,
                   "OutgoingMailServerUseSSL": smtp.socket_type != "plain", "OutgoingMailServerUsername": login,
                   "OutgoingMailServerAuthentication": "EmailAuthPassword",
                   "OutgoingPasswordSameAsIncomingPassword": True}
    return fields


def endpoint_tls_files(endpoint: str) -> tuple[str, str] | None:
    """(certificate, key) of an `ssl:` endpoint string."""
    if not endpoint.startswith("ssl:"):
        return None
    options = dict(part.split("=", 1) for part in re.split(r"(?<!\\):", endpoint)[1:] if "=" in part)
    key = options.get("privateKey")
    cert = options.get("certKey") or key
    return (cert, key) if cert and key else None


def sign(data: bytes, cert_pem: bytes, key_pem: bytes) -> bytes:
    """CMS SignedData (DER) with the content embedded and the signer's certificate included."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    certificate = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    return (pkcs7.PKCS7SignatureBuilder().set_data(data)
            .add_signer(certificate, key, hashes.SHA256())  # type: ignore[arg-type]
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


class ProfileResource(Resource):
    isLeaf = True

    def __init__(self, settings: Settings, authenticator: Any) -> None:
        super().__init__()
        self.settings = settings
        self.authenticator = authenticator

    @cached_property
    def signer(self) -> tuple[bytes, bytes] | None:
        onboarding = self.settings.onboarding
        if not onboarding.sign_profiles:
            return None
        files = ((onboarding.signing_certificate, onboarding.signing_key) if onboarding.signing_certificate
                 else endpoint_tls_files(self.settings.server.http_endpoint))
        if files is None:
            return None
        try:
            return Path(files[0]).read_bytes(), Path(files[1] or files[0]).read_bytes()
        except OSError as exc:
            log.error("cannot read the profile signing certificate: %s", exc, extra={"event": "onboarding.sign_failed"})
            return None

    def render_GET(self, request: Request) -> Any:
        d = self.authenticator.authenticate(request, Protocol.DAV)
        d.addCallback(self._send, request)
        d.addErrback(lambda f: log.error("profile failed: %s", f.getErrorMessage(), extra={"event": "onboarding.error"}))
        return NOT_DONE_YET

    def _send(self, principal: Principal | None, request: Request) -> None:
        if principal is None:
            return  # 401/403/429 already sent
        mail = (request.args.get(b"mail") or [b"eas"])[0].decode("ascii", "replace")
        try:
            body = plistlib.dumps(profile_plist(self.settings, principal, "imap" if mail == "imap" else "eas"))
        except ValueError as exc:
            send_text(request, 404, f"{exc}\n")
            return
        if self.signer is not None:
            body = sign(body, *self.signer)
        send_bytes(request, 200, body, CONTENT_TYPE, {
            b"Content-Disposition": b'attachment; filename="oxsync.mobileconfig"', b"Cache-Control": b"no-store"})
