"""CRL and ARL signing, and the revocation values (entries, reason codes, hashes) OCSP shares.

Pure functions: the caller streams revoked rows from the database as ``RevokedEntry`` values and
stores the DER that comes back; nothing here opens a socket, a session or reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import CRLEntryExtensionOID

from ecert.core.errors import PolicyViolation

__all__ = [
    "RevokedEntry",
    "ALLOWED_REASONS",
    "ALLOWED_CA_REASONS",
    "CRL_MAX_VALIDITY",
    "ARL_MAX_VALIDITY",
    "check_reason",
    "signature_hash",
    "build_crl",
]

# BR 7.2.2 (CRL entry reasonCode): the reasons a subscriber certificate may be revoked for. No
# entry may say "unspecified" (omit the extension instead) and certificateHold is forbidden.
ALLOWED_REASONS: frozenset[x509.ReasonFlags] = frozenset(
    {
        x509.ReasonFlags.key_compromise,
        x509.ReasonFlags.superseded,
        x509.ReasonFlags.cessation_of_operation,
        x509.ReasonFlags.affiliation_changed,
        x509.ReasonFlags.privilege_withdrawn,
    }
)
# BR 7.2.2: a CA certificate (the ARL) may also be revoked for cACompromise.
ALLOWED_CA_REASONS: frozenset[x509.ReasonFlags] = ALLOWED_REASONS | {x509.ReasonFlags.ca_compromise}

# BR 4.9.7: a CRL for subscriber certificates is valid for at most 10 days; one that covers only
# subordinate CA certificates (the ARL, signed by the offline root) for at most twelve months.
CRL_MAX_VALIDITY = timedelta(days=10)
ARL_MAX_VALIDITY = timedelta(days=365)

# RFC 5280 4.1.2.2 and 5.2.3: serials and CRL numbers fit in 20 octets as positive INTEGERs.
_MAX_INTEGER = 1 << 159
_EPOCH_1950 = datetime(1950, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One revoked certificate as a CRL lists it; ``reason=None`` means the reasonCode is omitted."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None

    def __post_init__(self) -> None:
        if not 0 < self.serial < _MAX_INTEGER:
            raise PolicyViolation(
                "a certificate serial number must be positive and at most 159 bits",
                rule="RFC 5280 4.1.2.2",
                value=self.serial,
            )
        if self.revoked_at.tzinfo is None or self.revoked_at < _EPOCH_1950:
            raise PolicyViolation(
                "a revocation date must be an aware datetime on or after 1950-01-01",
                rule="RFC 5280 5.1.2.6",
                value=self.revoked_at,
            )


def check_reason(reason: x509.ReasonFlags | None, *, for_ca: bool) -> None:
    """Raise unless ``reason`` may appear on a CRL entry or OCSP response (BR 7.2.2).

    ``None`` is allowed: a revocation without a stated reason carries no reasonCode at all.
    """
    if reason is None:
        return
    allowed = ALLOWED_CA_REASONS if for_ca else ALLOWED_REASONS
    if reason not in allowed:
        kind = "a CA certificate" if for_ca else "a subscriber certificate"
        raise PolicyViolation(
            f"revocation reason {getattr(reason, 'name', reason)!s} is not allowed for {kind}",
            rule="BR 7.2.2",
            value=reason,
        )


def signature_hash(public_key: object) -> hashes.SHA256 | hashes.SHA384:
    """The hash a CA key signs with: SHA-256 for RSA and P-256, SHA-384 for P-384 (BR 7.1.3.2)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return hashes.SHA256()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return hashes.SHA256()
        if isinstance(public_key.curve, ec.SECP384R1):
            return hashes.SHA384()
    raise PolicyViolation(
        "the signing key must be RSA, P-256 or P-384",
        rule="BR 6.1.5",
        value=type(public_key).__name__,
    )


def authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI pointing at the issuer: its own SKI when it has one (RFC 5280 4.2.1.1)."""
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def check_window(
    this_update: datetime,
    next_update: datetime,
    *,
    longest: timedelta,
    rule: str,
    now: datetime | None,
    shortest: timedelta = timedelta(0),
) -> None:
    """Refuse a validity window that is naive, backwards, too short or too long, or starts later than now."""
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise PolicyViolation("thisUpdate and nextUpdate must be aware datetimes", rule=rule, value=this_update)
    span = next_update - this_update
    if span <= timedelta(0) or span < shortest or span > longest:
        raise PolicyViolation(f"the validity window {span} is outside {shortest} to {longest}", rule=rule, value=span)
    if now is not None and this_update > now:
        raise PolicyViolation("thisUpdate must not be in the future", rule=rule, value=this_update)


def _reason_extensions(
    for_ca: bool,
) -> dict[x509.ReasonFlags | None, list[x509.Extension[x509.ExtensionType]]]:
    """One shared, non-critical reasonCode extension list per allowed reason (BR 7.2.2; RFC 5280 5.3.1)."""
    table: dict[x509.ReasonFlags | None, list[x509.Extension[x509.ExtensionType]]] = {None: []}
    oid = CRLEntryExtensionOID.CRL_REASON
    for reason in ALLOWED_CA_REASONS if for_ca else ALLOWED_REASONS:
        # The value is cryptography's own DER of CRLReason, wrapped so that each of a million
        # entries copies the bytes instead of re-encoding the enum (about 15% of build()).
        encoded = x509.UnrecognizedExtension(oid, x509.CRLReason(reason).public_bytes())
        table[reason] = [x509.Extension(oid, False, encoded)]
    return table


def _revoked_certificates(
    entries: Iterable[RevokedEntry], *, for_ca: bool, this_update: datetime
) -> list[x509.RevokedCertificate]:
    """Turn entries into pyca RevokedCertificate objects, checking each one on the way.

    This is the hot loop at a million entries. The documented chain
    ``RevokedCertificateBuilder().serial_number(s).revocation_date(d).add_extension(...).build()``
    makes three intermediate builders and re-validates each value; passing the three values to
    the builder's public constructor and calling ``build()`` once does the same work in Rust at
    about half the cost (measured with bench/crl.py; a unit test pins that both encode alike,
    for UTC and non-UTC times). The checks the chain would make (serial range, 1950 floor) are
    already done by ``RevokedEntry``; the shared reason extensions come from a table; times are
    passed as aware UTC datetimes, which the Rust side reads as UTC.
    """
    extensions = _reason_extensions(for_ca)
    lookup = extensions.get
    latest = this_update.astimezone(UTC)
    build = x509.RevokedCertificateBuilder
    out: list[x509.RevokedCertificate] = []
    append = out.append
    seen: set[int] = set()
    add_seen = seen.add
    for entry in entries:
        reason_ext = lookup(entry.reason)
        if reason_ext is None:
            check_reason(entry.reason, for_ca=for_ca)  # raises with the BR 7.2.2 sentence
            raise AssertionError("unreachable: every allowed reason is in the table")
        when = entry.revoked_at
        if when.tzinfo is not UTC:
            when = when.astimezone(UTC)
        if when > latest:
            raise PolicyViolation(
                "a certificate cannot be listed as revoked after the CRL's thisUpdate",
                rule="RFC 5280 5.1.2.6",
                value=entry.serial,
            )
        serial = entry.serial
        if serial in seen:
            raise PolicyViolation("a serial number is listed twice", rule="RFC 5280 5.1.2.6", value=serial)
        add_seen(serial)
        append(build(serial, when, reason_ext).build())
    return out


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: object,
    entries: Iterable[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
    idp_url: str | None = None,
    is_arl: bool = False,
    now: datetime | None = None,
) -> bytes:
    """Sign a v2 CRL (or, with ``is_arl``, the root's ARL) and return its DER.

    Profile (BR 7.2, RFC 5280 5): version 2; issuer = the issuing CA's subject; CRL number and
    AKI (from the issuer's SKI), both non-critical; a non-critical reasonCode on entries that
    have a reason. The ARL carries a critical IssuingDistributionPoint with onlyContainsCACerts
    and no name; a partitioned subscriber CRL (``idp_url`` given) one with that URL as its full
    name and onlyContainsUserCerts, byte-for-byte the CRLDP URL of the certificates it covers
    (BR 7.2.2.1). A full subscriber CRL has no IDP (NOT RECOMMENDED there).
    ``entries`` may be a generator: only the encoded entries are held, never the rows.
    """
    if not 0 <= number < _MAX_INTEGER:
        raise PolicyViolation(
            "the CRL number must be a non-negative 20-octet INTEGER", rule="RFC 5280 5.2.3", value=number
        )
    check_window(
        this_update,
        next_update,
        longest=ARL_MAX_VALIDITY if is_arl else CRL_MAX_VALIDITY,
        rule="BR 4.9.7",
        now=now,
    )
    _check_crl_issuer(issuer_cert)
    idp = _issuing_distribution_point(idp_url, is_arl)
    public_key = issuer_cert.public_key()
    algorithm = signature_hash(public_key)
    # A CRL signed by the wrong key would be refused by every relying party: compare the keys
    # first (cheap; verifying the finished signature costs a tenth of the build at 1M entries).
    if issuer_key.public_key() != public_key:  # type: ignore[attr-defined]
        raise PolicyViolation("the CRL signing key does not match the issuer certificate", rule="RFC 5280 5.1.1.3")
    revoked = _revoked_certificates(entries, for_ca=is_arl, this_update=this_update)

    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer_cert.subject,
        last_update=this_update,
        next_update=next_update,
        revoked_certificates=revoked,  # all at once: add_revoked_certificate copies the list each call
    )
    builder = builder.add_extension(authority_key_identifier(issuer_cert), critical=False)  # RFC 5280 5.2.1
    builder = builder.add_extension(x509.CRLNumber(number), critical=False)  # RFC 5280 5.2.3
    if idp is not None:
        builder = builder.add_extension(idp, critical=True)  # RFC 5280 5.2.5: always critical
    crl = builder.sign(issuer_key, algorithm)  # type: ignore[arg-type]
    return crl.public_bytes(Encoding.DER)


def _check_crl_issuer(issuer_cert: x509.Certificate) -> None:
    """Only a CA certificate asserting cRLSign may issue a CRL (RFC 5280 4.2.1.3)."""
    try:
        key_usage = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is None or not key_usage.crl_sign:
        raise PolicyViolation(
            "the CRL issuer certificate does not assert cRLSign",
            rule="RFC 5280 4.2.1.3",
            value=issuer_cert.subject.rfc4514_string(),
        )


def _issuing_distribution_point(idp_url: str | None, is_arl: bool) -> x509.IssuingDistributionPoint | None:
    """The IDP of BR 7.2.2.1: the ARL's scope, or the partition URL of a partitioned subscriber CRL.

    The ARL is the root's full and complete CRL, so it names no distribution point: the root
    certificate has no CRLDP (BR 7.1.2.11.2), and OpenSSL's ``-crl_check_all`` checks the root
    against the ARL too and refuses it with "different CRL scope" (error 44) when the ARL's IDP
    names one. It says only onlyContainsCACerts.
    """
    if is_arl and idp_url is not None:
        raise PolicyViolation(
            "the ARL is a full and complete CRL and names no distribution point (OpenSSL then refuses "
            "the root itself with 'different CRL scope')",
            rule="BR 7.2.2.1",
            value=idp_url,
        )
    if idp_url is not None and not idp_url.startswith("http://"):
        # BR 7.1.2.11.2 / 7.2.2: distribution points are plain-HTTP URLs.
        raise PolicyViolation("the distribution point URL must be an http:// URL", rule="BR 7.2.2", value=idp_url)
    full_name = [x509.UniformResourceIdentifier(idp_url)] if idp_url else None
    if not is_arl and full_name is None:
        return None
    return x509.IssuingDistributionPoint(
        full_name=full_name,
        relative_name=None,
        only_contains_user_certs=not is_arl,
        only_contains_ca_certs=is_arl,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
