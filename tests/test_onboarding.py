"""Onboarding: Thunderbird autoconfig (well-known and autoconfig.<domain> forms) with CalDAV/CardDAV,
`/profile` (.mobileconfig with EAS, CalDAV, CardDAV; signed with the server's certificate on TLS),
`oxsync dns`; the onboarding package imports no dialect."""

from __future__ import annotations

import ast
import http.client
import plistlib
import ssl
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from oxsync.dialects import install_all
from tests.live import http_request
from tests.serveproc import ROOT, oxsync, self_signed

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PUBLIC = {"http_endpoint": "tcp:0:interface=127.0.0.1", "udp_port": 0, "public_host": "sync.example.com",
          "public_scheme": "https"}


@SQLITE_ONLY
def test_autoconfig_both_forms(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=PUBLIC)
    status, headers, body = http_request(
        running.port, "GET", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com")
    assert status == 200 and headers["content-type"].startswith("application/xml")
    doc = etree.fromstring(body)
    assert doc.find("emailProvider").get("id") == "example.com"
    assert doc.find("addressBook[@type='carddav']/serverURL").text == "https://sync.example.com/.well-known/carddav"
    assert doc.find("calendar[@type='caldav']/serverURL").text == "https://sync.example.com/.well-known/caldav"
    assert doc.find("calendar/username").text == "%EMAILADDRESS%"
    host_form = http_request(running.port, "GET", "/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.com"})
    assert host_form[0] == 200 and host_form[2] == body
    assert http_request(running.port, "GET", "/mail/config-v1.1.xml?emailaddress=x%40elsewhere.org")[0] == 404
    assert http_request(running.port, "GET", "/.well-known/autoconfig/mail/config-v1.1.xml")[0] == 400
    assert http_request(running.port, "GET", "/.well-known/caldav")[0] == 301  # DAV's well-known still answers


@SQLITE_ONLY
def test_profile_has_the_three_accounts_and_no_password(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    running = live_server(store, setup=install_all, server=PUBLIC)
    assert http_request(running.port, "GET", "/profile")[0] == 401
    status, headers, body = http_request(running.port, "GET", "/profile", auth=("alice", "alice-pw"))
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    assert b"alice-pw" not in body
    profile = plistlib.loads(body)
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    assert set(payloads) == {"com.apple.eas.account", "com.apple.caldav.account", "com.apple.carddav.account"}
    eas = payloads["com.apple.eas.account"]
    assert (eas["Host"], eas["SSL"], eas["UserName"]) == ("sync.example.com", True, "alice@example.com")
    caldav = payloads["com.apple.caldav.account"]
    assert (caldav["CalDAVHostName"], caldav["CalDAVPort"], caldav["CalDAVUseSSL"]) == ("sync.example.com", 443, True)
    assert caldav["CalDAVPrincipalURL"] == "https://sync.example.com/dav/principals/alice/"
    again = plistlib.loads(http_request(running.port, "GET", "/profile", auth=("alice", "alice-pw"))[2])
    assert [p["PayloadUUID"] for p in again["PayloadContent"]] == [p["PayloadUUID"] for p in profile["PayloadContent"]]
    bob = plistlib.loads(http_request(running.port, "GET", "/profile", auth=("bob", "bob-pw"))[2])
    assert bob["PayloadUUID"] != profile["PayloadUUID"]


@SQLITE_ONLY
def test_profile_is_signed_with_the_tls_certificate(live_server, store, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key, cert = self_signed(tmp_path, "localhost")
    running = live_server(store, setup=install_all, server={
        "http_endpoint": f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}", "udp_port": 0})
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", running.port, timeout=30, context=context)
    import base64
    conn.request("GET", "/profile", headers={"Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200
    signed = tmp_path / "p.mobileconfig"
    signed.write_bytes(body)
    verified = subprocess.run(["openssl", "smime", "-verify", "-inform", "DER", "-in", str(signed), "-CAfile", str(cert),
                               "-purpose", "any"], capture_output=True, timeout=60)
    assert verified.returncode == 0, verified.stderr
    profile = plistlib.loads(verified.stdout)
    assert {p["PayloadType"] for p in profile["PayloadContent"]} >= {"com.apple.eas.account"}
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs7

    [signer] = pkcs7.load_der_pkcs7_certificates(body)
    assert signer == x509.load_pem_x509_certificate(cert.read_bytes())


def test_dns_records(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    assert oxsync("--db", db, "init", "--domain", "example.org").returncode == 0
    result = oxsync("--db", db, "dns", "--tenant", "example.org", "--public-host", "sync.example.org",
                    "--public-scheme", "https", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = set(result.stdout.splitlines())
    for record in ("_caldavs._tcp.example.org. 3600 IN SRV 0 1 443 sync.example.org.",
                   "_carddavs._tcp.example.org. 3600 IN SRV 0 1 443 sync.example.org.",
                   '_caldavs._tcp.example.org. 3600 IN TXT "path=/.well-known/caldav"',
                   "_caldav._tcp.example.org. 3600 IN SRV 0 0 0 .",
                   "_autodiscover._tcp.example.org. 3600 IN SRV 0 1 443 sync.example.org.",
                   "autoconfig.example.org. 3600 IN CNAME sync.example.org."):
        assert record in lines, result.stdout
    unknown = oxsync("--db", db, "dns", "--tenant", "nowhere.org", timeout=60)
    assert unknown.returncode == 1 and "nowhere.org" in unknown.stderr


def test_onboarding_imports_no_dialect() -> None:
    for path in (ROOT / "oxsync" / "onboarding").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("oxsync.eas", "oxsync.ox", "oxsync.dav", "oxsync.push", "oxsync.mail")), (path, name)


def test_autoconfig_and_mac_profile_name_the_mail_servers_when_mail_exists(live_server, store, world) -> None:  # type: ignore[no-untyped-def]
    """Mail configured: Thunderbird gets the IMAP and SMTP servers, a Mac (`?mail=imap`) an IMAP/SMTP account
    in place of the Exchange one; without mail, neither is offered (and `?mail=imap` is a clean 404)."""
    from oxsync.config import apply_overrides
    from oxsync.model import Protocol
    from oxsync.onboarding.autoconfig import config_xml
    from oxsync.onboarding.profile import profile_plist

    mail = apply_overrides(store.settings, {"mail": {"imap_host": "imap.example.com", "imap_port": 993,
                                                     "imap_tls": "implicit"},
                                            "outbound": {"smtp_relay": "smtp.example.com:587"}})
    doc = etree.fromstring(config_xml(mail, "example.com"))
    imap = doc.find("emailProvider/incomingServer[@type='imap']")
    assert (imap.findtext("hostname"), imap.findtext("port"), imap.findtext("socketType")) == (
        "imap.example.com", "993", "SSL")
    smtp = doc.find("emailProvider/outgoingServer[@type='smtp']")
    assert (smtp.findtext("hostname"), smtp.findtext("port"), smtp.findtext("socketType")) == (
        "smtp.example.com", "587", "STARTTLS")
    assert etree.fromstring(config_xml(store.settings, "example.com")).find("emailProvider/incomingServer") is None

    alice = store.authenticate("alice", "alice-pw", Protocol.DAV)
    mac = {p["PayloadType"]: p for p in profile_plist(mail, alice, "imap")["PayloadContent"]}
    assert "com.apple.eas.account" not in mac
    account = mac["com.apple.mail.managed"]
    assert (account["IncomingMailServerHostName"], account["IncomingMailServerPortNumber"],
            account["IncomingMailServerUseSSL"], account["OutgoingMailServerHostName"]) == (
        "imap.example.com", 993, True, "smtp.example.com")
    assert "com.apple.caldav.account" in mac and "com.apple.carddav.account" in mac
    assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword" for key in account)

    running = live_server(store, setup=install_all, server=PUBLIC)
    assert http_request(running.port, "GET", "/profile?mail=imap", auth=("alice", "alice-pw"))[0] == 404
