"""ValidateCert: S/MIME certificate checks (MS-ASCMD 2.2.1.22, statuses of 2.2.3.177.18).

Each certificate is parsed, checked for its validity period and e-mail protection usage, and chained
through the CertificateChain the device sent plus the server's trusted roots, verifying every signature.
Revocation (CheckCrl) would need network fetches of CRLs; the server does not make them, so a request
that asks for it gets "revocation status cannot be determined" rather than a silent success.
Runs on the store's thread pool (signature checks are CPU work).
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

STATUS = {
    "ok": 1,
    "bad_signature": 3,
    "untrusted_root": 4,
    "chain_broken": 5,
    "not_for_email": 6,
    "expired": 7,
    "chain_period": 8,
    "not_a_ca": 11,
    "malformed": 10,
    "revocation_unknown": 16,
}
"""Outcome -> ValidateCert Certificate/Status value."""

MAX_CHAIN_LENGTH = 10


PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@cache
def trusted_roots(path: str) -> tuple[x509.Certificate, ...]:
    """The trust anchors (a PEM bundle, e.g. Debian's ca-certificates.crt), one certificate at a time so
    that a single non-conforming root (system bundles hold a few) cannot void the whole bundle."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ()
    roots = []
    for block in PEM_BLOCK.findall(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a legacy root with a non-positive serial number
            try:
                roots.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return tuple(roots)


def parse(blob: str | bytes) -> x509.Certificate | None:
    try:
        der = base64.b64decode(blob, validate=False) if isinstance(blob, str) else blob
        return x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error, TypeError):
        return None


def _in_period(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _for_email(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction
    return ExtendedKeyUsageOID.EMAIL_PROTECTION in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def validate(cert: x509.Certificate, chain: list[x509.Certificate], roots: tuple[x509.Certificate, ...],
             check_crl: bool, now: datetime | None = None) -> str:
    """One outcome key of `STATUS` for `cert`."""
    now = now or datetime.now(UTC)
    if not _in_period(cert, now):
        return "expired"
    if not _for_email(cert):
        return "not_for_email"
    current, seen = cert, 0
    trusted = {r.subject.public_bytes(): r for r in roots}
    candidates = chain + list(roots)
    while seen < MAX_CHAIN_LENGTH:
        seen += 1
        anchor = trusted.get(current.issuer.public_bytes())
        if anchor is not None and (current == anchor or _signed_by(current, anchor)):
            break  # reached a trusted root (or the certificate is one)
        issuers = [c for c in candidates if c.subject == current.issuer and c != current]
        if not issuers:
            if current.issuer == current.subject:
                return "untrusted_root" if _signed_by(current, current) else "bad_signature"
            return "chain_broken"
        issuer = next((c for c in issuers if _signed_by(current, c)), None)
        if issuer is None:
            return "bad_signature"
        if not _is_ca(issuer):
            return "not_a_ca"
        if not _in_period(issuer, now):
            return "chain_period"
        current = issuer
    else:
        return "chain_broken"
    return "revocation_unknown" if check_crl else "ok"


def validate_all(certificates: list[str], chain: list[str], roots_file: str, check_crl: bool) -> list[int]:
    """ValidateCert statuses, one per certificate, in order."""
    parsed_chain = [c for c in (parse(b) for b in chain[:MAX_CHAIN_LENGTH]) if c is not None]
    roots = trusted_roots(roots_file)
    out = []
    for blob in certificates:
        cert = parse(blob)
        out.append(STATUS["malformed"] if cert is None else STATUS[validate(cert, parsed_chain, roots, check_crl)])
    return out
