"""ValidateCert over the real ActiveSync endpoint, against a PKI generated here: root, intermediate, leaves."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oxsync.eas import install
from oxsync.eas.wbxml import E
from tests.eas_client import client

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
NOW = datetime.now(UTC)


def make_cert(name: str, key, issuer_name: str | None = None, issuer_key=None, *, ca: bool = False,  # type: ignore[no-untyped-def]
              usage=ExtendedKeyUsageOID.EMAIL_PROTECTION, days: tuple[int, int] = (-1, 365)) -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW + timedelta(days=days[0])).not_valid_after(NOW + timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@pytest.fixture
def pki(tmp_path):  # type: ignore[no-untyped-def]
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("root", "inter", "leaf", "rogue")}
    root = make_cert("Test Root", keys["root"], ca=True)
    inter = make_cert("Test Intermediate", keys["inter"], "Test Root", keys["root"], ca=True)
    certs = {
        "root": root, "inter": inter,
        "good": make_cert("alice@example.com", keys["leaf"], "Test Intermediate", keys["inter"]),
        "expired": make_cert("old@example.com", keys["leaf"], "Test Intermediate", keys["inter"], days=(-400, -30)),
        "tls_only": make_cert("web", keys["leaf"], "Test Intermediate", keys["inter"], usage=ExtendedKeyUsageOID.SERVER_AUTH),
        "forged": make_cert("eve@example.com", keys["leaf"], "Test Intermediate", keys["rogue"]),  # wrong signer
        "self": make_cert("self@example.com", keys["rogue"]),
    }
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return certs, str(bundle)


def validate(phone, certs: list[str], chain: list[str], crl: bool = False) -> list[str]:  # type: ignore[no-untyped-def]
    body = E("ValidateCert:ValidateCert", E("ValidateCert:Certificates", *[E("ValidateCert:Certificate", c) for c in certs]))
    if chain:
        body.append(E("ValidateCert:CertificateChain", *[E("ValidateCert:Certificate", c) for c in chain]))
    if crl:
        body.append(E("ValidateCert:CheckCrl", "1"))
    reply = phone.post("ValidateCert", body)
    assert reply.text("ValidateCert:Status") == "1"
    return [c.findtext("ValidateCert:Status") for c in reply.body.findall("ValidateCert:Certificate")]


def test_certificates_are_checked_against_chain_and_trusted_roots(live_server, store, world, pki) -> None:  # type: ignore[no-untyped-def]
    certs, bundle = pki
    running = live_server(store, setup=install, eas={"trusted_ca_file": bundle})
    phone = client(running)
    phone.provision()
    chain = [b64(certs["inter"])]
    got = validate(phone, [b64(certs[n]) for n in ("good", "expired", "tls_only", "forged", "self")], chain)
    assert got == ["1", "7", "6", "3", "4"]  # ok, expired, not for e-mail, bad signature, untrusted root
    assert validate(phone, [b64(certs["good"])], []) == ["5"]  # the intermediate is missing: chain broken
    assert validate(phone, [b64(certs["good"])], chain, crl=True) == ["16"]  # no CRL fetching: unknown, not "ok"
    untrusting = live_server(store, setup=install, eas={"trusted_ca_file": "/nonexistent.pem"})
    other = client(untrusting, device_id="testdevice02")
    other.provision()
    assert validate(other, [b64(certs["good"])], chain + [b64(certs["root"])]) == ["4"]  # root sent, but not trusted
    empty = other.post("ValidateCert", E("ValidateCert:ValidateCert", E("ValidateCert:Certificates")))
    assert empty.text("ValidateCert:Status") == "2"
