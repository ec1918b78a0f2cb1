"""Chain verification for the subscriber: pyca's RFC 5280/CABF verifier plus CRL and ARL checks.

``verify_certificate`` returns the verified path or raises :class:`ChainInvalid` with a reason a server
administrator can act on: expired, not yet valid, wrong host, unknown issuer, revoked, sub-CA revoked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ecert.client.chain import issued_by
from ecert.client.ct_policy import ClientLogList, CtReport, check_ct
from ecert.client.errors import ChainInvalid
from ecert.client.store import is_self_signed

__all__ = ["Verified", "hostname_matches", "transparency_of", "verify_certificate"]


@dataclass(frozen=True)
class Verified:
    """A chain that verified: leaf first, trust anchor last, and what the revocation check saw."""

    chain: tuple[x509.Certificate, ...]
    hostname: str
    via_cross: bool
    revocation_notes: tuple[str, ...] = field(default=())


def _subject(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):  # absent, or malformed
        return None


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching on the SAN only (no CN fallback); a wildcard covers exactly one left label."""
    san = _san(cert)
    if san is None:
        return False
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    host = hostname.lower().rstrip(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _peer_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def verify_certificate(
    leaf: x509.Certificate,
    *,
    hostname: str,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    now: datetime,
    max_chain_depth: int | None = None,
) -> Verified:
    """Verify ``leaf`` for ``hostname`` at ``now`` and check every link against the imported CRLs.

    Intermediates are everything the store holds that is not a trust anchor, cross-certificates
    included, so a path through the cross-certificate to another installed root is found when it is
    the only one. Raises :class:`ChainInvalid`; never returns a failure.
    """
    if not roots:
        raise ChainInvalid(
            "no trusted root is installed; run 'ecert ca install ROOT.pem' first", reason="unknown-issuer"
        )
    builder = PolicyBuilder().store(Store(list(roots))).time(now)
    if max_chain_depth is not None:
        builder = builder.max_chain_depth(max_chain_depth)
    try:
        verifier = builder.build_server_verifier(_peer_name(hostname))  # type: ignore[arg-type]
        path = verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        try:
            explained = _explain(leaf, hostname, roots, intermediates, now, str(exc))
        except Exception:  # noqa: BLE001 - a certificate too malformed even to explain
            explained = ChainInvalid(f"the chain does not verify: {exc}", reason="invalid")
        raise explained from exc
    except ValueError as exc:  # e.g. an unsupported name type or a malformed extension
        raise ChainInvalid(f"the certificate cannot be verified: {exc}", reason="invalid") from exc
    chain = tuple(path)
    _check_leaf_policy(leaf)
    notes = _check_revocation(chain, crls, now)
    return Verified(
        chain=chain,
        hostname=hostname,
        via_cross=_uses_cross(chain, roots, intermediates),
        revocation_notes=notes,
    )


def _uses_cross(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], pool: Sequence[x509.Certificate]
) -> bool:
    """True when a link in the path is a cross-certificate: a CA whose subject and key also appear
    in a self-signed certificate we know (the same CA, signed by another root)."""
    selfsigned = [c for c in [*roots, *pool] if is_self_signed(c)]
    for cert in chain[1:]:
        if is_self_signed(cert):
            continue
        for ss in selfsigned:
            if ss.subject == cert.subject and ss.public_key() == cert.public_key():
                return True
    return False


def _explain(
    leaf: x509.Certificate,
    hostname: str,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    now: datetime,
    detail: str,
) -> ChainInvalid:
    """Turn pyca's failure into the first reason an administrator can act on."""
    if now > leaf.not_valid_after_utc:
        return ChainInvalid(
            f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            reason="expired",
            rule="RFC 5280 4.1.2.5",
        )
    if now < leaf.not_valid_before_utc:
        return ChainInvalid(
            f"the certificate is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            reason="not-yet-valid",
            rule="RFC 5280 4.1.2.5",
        )
    if not hostname_matches(leaf, hostname):
        san = _san(leaf)
        names = ", ".join(str(v) for v in san.get_values_for_type(x509.DNSName)) if san else "no SAN"
        return ChainInvalid(
            f"the certificate is not for {hostname} (it names {names})",
            reason="wrong-host",
            rule="RFC 6125 6.4",
        )
    # Walk by name and signature towards a root, noting expired CA certificates on the way.
    pool = [*intermediates, *roots]
    current = leaf
    for _ in range(8):
        if any(issued_by(current, r) for r in roots):
            break
        parents = [c for c in pool if issued_by(current, c)]
        if not parents:
            issuer = current.issuer.rfc4514_string()
            return ChainInvalid(
                f"unknown issuer: no installed CA certificate for {issuer!r}; "
                "install the sub-CA and root with 'ecert ca install'",
                reason="unknown-issuer",
            )
        current = parents[0]
        if now > current.not_valid_after_utc:
            return ChainInvalid(
                f"the CA certificate {_subject(current)!r} expired on {current.not_valid_after_utc:%Y-%m-%d}",
                reason="expired",
            )
    return ChainInvalid(f"the chain does not verify: {detail}", reason="invalid")


def _check_leaf_policy(leaf: x509.Certificate) -> None:
    """Web PKI rules pyca leaves to the caller: key strength, serverAuth EKU, positive serial."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048 or key.key_size % 8:
            raise ChainInvalid(f"the certificate has a weak RSA-{key.key_size} key", reason="weak-key", rule="BR 6.1.5")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise ChainInvalid(f"the certificate uses the curve {key.curve.name}", reason="weak-key", rule="BR 6.1.5")
    else:
        raise ChainInvalid(
            f"the certificate's key type {type(key).__name__} is not allowed for TLS servers",
            reason="weak-key",
            rule="BR 6.1.5",
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise ChainInvalid(
            "the certificate has no extendedKeyUsage, so it is not a TLS server certificate",
            reason="wrong-usage",
            rule="BR 7.1.2.7.10",
        ) from None
    if (
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH not in eku
        or x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    ):
        raise ChainInvalid(
            "the certificate is not for TLS servers (extendedKeyUsage lacks serverAuth only)",
            reason="wrong-usage",
            rule="BR 7.1.2.7.10",
        )
    if leaf.serial_number <= 0:
        raise ChainInvalid("the certificate's serial number is not positive", reason="invalid", rule="RFC 5280 4.1.2.2")


def _check_crl_form(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    """Refuse (fail closed) a CRL that its issuer could not validly have issued."""
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    except x509.ExtensionNotFound:
        number = None
    if number is None or number.critical:
        raise ChainInvalid(
            f"the CRL from {_subject(issuer)!r} has a missing or critical CRL number; it cannot be trusted",
            reason="crl-invalid",
            rule="RFC 5280 5.2.3",
        )
    try:
        ku = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.crl_sign:
        raise ChainInvalid(
            f"{_subject(issuer)!r} may not sign CRLs (keyUsage has no cRLSign); its CRL cannot be trusted",
            reason="crl-invalid",
            rule="RFC 5280 4.2.1.3",
        )


def _check_revocation(
    chain: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList], now: datetime
) -> tuple[str, ...]:
    """Check each certificate against CRLs signed by its issuer (RFC 5280 6.3).

    A serial on a validly signed CRL is revoked for good, so a stale CRL still revokes; it only
    cannot vouch that a certificate is good, which is reported as a note.
    """
    notes: list[str] = []
    for index in range(len(chain) - 1):
        cert, issuer = chain[index], chain[index + 1]
        usable = [
            crl
            for crl in crls
            if crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        ]
        if not usable:
            if index == 0:
                notes.append(f"no CRL from {_subject(issuer)!r} is imported; revocation of the certificate unchecked")
            else:
                notes.append(
                    f"no ARL from {_subject(issuer)!r} is imported; revocation of {_subject(cert)!r} unchecked"
                )
            continue
        for crl in usable:
            _check_crl_form(crl, issuer)
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                when = entry.revocation_date_utc
                if index == 0:
                    raise ChainInvalid(
                        f"the certificate (serial {cert.serial_number:x}) was revoked on {when:%Y-%m-%d}",
                        reason="revoked",
                        rule="RFC 5280 6.3",
                    )
                raise ChainInvalid(
                    f"the sub-CA {_subject(cert)!r} was revoked on {when:%Y-%m-%d} (listed on the ARL); "
                    "install the new sub-CA certificate",
                    reason="sub-ca-revoked",
                    rule="RFC 5280 6.3",
                )
        if not any(
            c.last_update_utc <= now and (c.next_update_utc is None or now <= c.next_update_utc) for c in usable
        ):
            notes.append(f"the CRL from {_subject(issuer)!r} is out of date; import a fresh one")
    return tuple(notes)


def transparency_of(verified: Verified, logs: ClientLogList | None, *, now: datetime) -> CtReport:
    """Certificate Transparency of a verified chain: the leaf's embedded SCTs against ``logs`` (None: not checked).

    Reported beside the chain, never instead of it: a browser refuses a certificate without enough SCTs, but
    whether that makes ``ecert verify`` fail is the caller's choice (``--require-ct``). The issuer that the SCTs'
    precertificate entry names is the verified path's second certificate (RFC 6962 3.2).
    """
    issuer = verified.chain[1] if len(verified.chain) > 1 else None
    return check_ct(verified.chain[0], issuer, logs, now=now)
