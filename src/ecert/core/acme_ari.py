"""ACME Renewal Information (RFC 9773): the certificate identifier and the suggested renewal window.

Pure: the caller passes the certificate's dates, whether it is revoked or marked for replacement, and the
current time; nothing here reads a clock or the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from .acme_rules import AcmeRefusal, ProblemType

__all__ = ["RETRY_AFTER", "RETRY_AFTER_URGENT", "CertId", "RenewalWindow", "parse_cert_id", "cert_id", "window"]

# RFC 9773 4.3: how long a client should wait before asking again (the RFC's example is six hours).
RETRY_AFTER = timedelta(hours=6)
RETRY_AFTER_URGENT = timedelta(hours=1)


@dataclass(frozen=True)
class CertId:
    """RFC 9773 4.1: the issuer's key identifier (from the AKI) and the serial number's DER content octets."""

    key_identifier: bytes
    serial: int


@dataclass(frozen=True)
class RenewalWindow:
    """RFC 9773 4.2: suggestedWindow (start before end), and Retry-After; ``urgent`` when it lies in the past."""

    start: datetime
    end: datetime
    retry_after: timedelta
    urgent: bool


def _b64url_decode(text: str) -> bytes:
    import base64

    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _serial_octets(serial: int) -> bytes:
    """The DER INTEGER content octets of a positive serial: big-endian, a leading zero when the top bit is set."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def cert_id(key_identifier: bytes, serial: int) -> str:
    """RFC 9773 4.1: base64url(keyIdentifier) "." base64url(serial content octets), no padding."""
    return f"{_b64url(key_identifier)}.{_b64url(_serial_octets(serial))}"


def parse_cert_id(text: str) -> CertId:
    """Read a renewalInfo path segment (RFC 9773 4.1); malformed when it is not two base64url parts."""
    parts = text.split(".")
    try:
        if len(parts) != 2:
            raise ValueError("two parts expected")
        key_identifier, serial_octets = _b64url_decode(parts[0]), _b64url_decode(parts[1])
    except ValueError:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "the certificate identifier is not base64url(AKI keyIdentifier).base64url(serial)",
            rule="RFC 9773 4.1",
            value=text[:200],
        ) from None
    serial = int.from_bytes(serial_octets, "big", signed=True)
    if serial <= 0 or serial_octets != _serial_octets(serial):
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "the serial in the certificate identifier is not a DER-encoded positive integer",
            rule="RFC 9773 4.1",
            value=parts[1],
        )
    return CertId(key_identifier, serial)


def _jitter(serial: int, span: timedelta) -> timedelta:
    """A fixed share of ``span`` picked by the serial, so certificates issued together spread their renewals
    while one certificate always gets the same window (a client asking twice sees no change)."""
    digest = hashlib.sha256(_serial_octets(serial)).digest()
    return span * (int.from_bytes(digest[:4], "big") / 2**32)


def window(
    *, not_before: datetime, not_after: datetime, serial: int, revoked: bool, replace_now: bool, now: datetime
) -> RenewalWindow:
    """RFC 9773 4.2: start at two thirds of the validity (plus jitter), or "now" (a window in the past).

    A revoked certificate, or one the operator marked for replacement (an incident, BR 4.9.1.1), should be
    replaced at once: the window then ends before ``now`` and clients renew on their next look.
    """
    if revoked or replace_now:
        return RenewalWindow(now - timedelta(hours=2), now - timedelta(hours=1), RETRY_AFTER_URGENT, True)
    validity = not_after - not_before
    start = not_before + validity * 2 / 3 + _jitter(serial, validity / 30)
    return RenewalWindow(start, start + validity / 6, RETRY_AFTER, False)
