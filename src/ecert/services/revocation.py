"""Revocation use cases: by the operator, by the subscriber, by proof of key possession, and of issuing CAs.

Each revocation commits with its audit event, then republishes the CA's CRL and OCSP responses at once
(BR 4.9.1.1 allows 24 hours; we take seconds). Key compromise also blocks the key and revokes every
unexpired certificate that shares it (BR 4.9.1.1 item 3, BR 6.1.1.3).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import AttributeOID, NameOID
from sqlalchemy.orm import Session

from ..core.ca_lifecycle import CaAction, CaStatus
from ..core.errors import BadCSR, Conflict, Forbidden, NotFound, PolicyViolation, RateLimited
from ..core.keys import spki_sha256
from ..core.lifecycle import SIGNED_STATUSES, CertStatus
from ..signer.status import check_reason
from ..store import audit, cas, repo, status
from ..store.models import CA, Certificate
from . import publication
from .context import Context

__all__ = [
    "CHALLENGE_LIFETIME",
    "REASONS",
    "CaRevocation",
    "Revocation",
    "apply_due_ca_revocations",
    "parse_reason",
    "publish_status",
    "revocation_challenge",
    "revoke_by_key_proof",
    "revoke_ca",
    "revoke_certificate",
    "revoke_for_application",
]

_log = logging.getLogger("ecert.revocation")

# BR 7.2.2: the reasonCodes a subscriber certificate's revocation may carry, by their RFC 5280 names.
# No reason at all is the BR's "unspecified": the entry then has no reasonCode extension.
REASONS: dict[str, x509.ReasonFlags] = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}
_CA_REASONS = {**REASONS, "cACompromise": x509.ReasonFlags.ca_compromise}  # BR 7.2.2 for CA certificates

CHALLENGE_LIFETIME = timedelta(hours=1)
CHALLENGE_LIMIT_PER_SERIAL = 10  # open challenges per serial per lifetime: enough for retries, not a flood


@dataclass(frozen=True)
class Revocation:
    """What a revocation call changed: the certificates (CA label, serial), when, why, and the blocked key."""

    revoked: tuple[tuple[str, str], ...]
    revoked_at: datetime
    reason: str | None
    blocked_spki: str | None = None
    published: bool = True


@dataclass(frozen=True)
class CaRevocation:
    label: str
    revoked_at: datetime
    reason: str | None
    scheduled: bool


def parse_reason(value: str | None, *, for_ca: bool = False) -> x509.ReasonFlags | None:
    """Read a reason as people and the API spell it; None or "" means no reasonCode (BR 7.2.2).

    "unspecified" and "certificateHold" are refused by name: BR 7.2.2 forbids both on an entry.
    """
    if value is None or not value.strip():
        return None
    table = _CA_REASONS if for_ca else REASONS
    found = table.get(value.strip()) or {k.lower(): v for k, v in table.items()}.get(value.strip().lower())
    if found is None:
        raise PolicyViolation(
            f"revocation reason {value!r} is not allowed; use one of {', '.join(table)} or none",
            rule="BR 7.2.2",
            value=value,
        )
    check_reason(found, for_ca=for_ca)
    return found


def _find_certificate(session: Session, ca_label: str | None, serial_hex: str) -> tuple[Certificate, CA]:
    try:
        serial = repo.normalize_serial_hex(serial_hex)
    except ValueError as exc:
        raise NotFound(str(exc), value=serial_hex) from exc
    rows = status.certificates_with_serial(session, serial, ca_label)
    if not rows:
        raise NotFound(
            f"no certificate with serial {serial}" + (f" under {ca_label}" if ca_label else ""), value=serial
        )
    if len(rows) > 1:
        raise Conflict(f"serial {serial} exists under several CAs; name the CA", value=serial)
    cert, ca = rows[0]
    if cert.der is None or cert.status not in SIGNED_STATUSES:
        raise NotFound(f"certificate {serial} was never issued (status {cert.status})", value=serial)
    return cert, ca


def _mark_revoked(
    session: Session,
    cert: Certificate,
    ca: CA,
    reason: x509.ReasonFlags | None,
    at: datetime,
    now: datetime,
    actor: str,
    *,
    cause: str | None = None,
) -> bool:
    """Revoke one row (or upgrade its reason to keyCompromise); False if it was already revoked so."""
    reason_value = reason.value if reason is not None else None
    if cert.revoked_at is not None:
        upgrading = reason is x509.ReasonFlags.key_compromise and cert.revocation_reason != reason_value
        if not upgrading:
            if cause is not None:
                return False  # a sweep after key compromise passes over certificates already revoked
            raise Conflict(f"certificate {cert.serial_hex} is already revoked", value=cert.serial_hex)
        # BR 7.2.2: the reason may later become keyCompromise; the revocation date stays.
        previous = cert.revocation_reason
        status.upgrade_reason(session, cert, reason=x509.ReasonFlags.key_compromise.value, now=now)
        audit.append(
            session,
            actor=actor,
            event="cert.revocation_reason_changed",
            subject=cert.serial_hex,
            details={"ca": ca.label, "from": previous, "to": reason_value},
            now=now,
        )
        return True
    status.mark_revoked(session, cert, at=at, reason=reason_value, now=now)
    audit.append(
        session,
        actor=actor,
        event="cert.revoked",
        subject=cert.serial_hex,
        details={"ca": ca.label, "reason": reason_value, "revoked_at": at.isoformat(), "cause": cause},
        now=now,
    )
    return True


def _revoke_in(
    session: Session,
    cert: Certificate,
    ca: CA,
    reason: x509.ReasonFlags | None,
    at: datetime,
    now: datetime,
    actor: str,
) -> tuple[list[tuple[str, str]], str | None]:
    changed: list[tuple[str, str]] = []
    if _mark_revoked(session, cert, ca, reason, at, now, actor):
        changed.append((ca.label, cert.serial_hex))
    blocked: str | None = None
    if reason is x509.ReasonFlags.key_compromise:
        # BR 6.1.1.3: never certify a compromised key again; BR 4.9.1.1: revoke all that use it.
        blocked = cert.spki_sha256
        repo.add_blocked_key(
            session,
            spki_sha256=blocked,
            reason="keyCompromise",
            source=f"revocation of {ca.label}/{cert.serial_hex}",
            now=now,
        )
        audit.append(
            session,
            actor=actor,
            event="key.blocked",
            subject=blocked,
            details={"certificate": cert.serial_hex, "ca": ca.label},
            now=now,
        )
        for other, other_ca in status.live_sharing_key(session, blocked, except_id=cert.id, now=now):
            if _mark_revoked(session, other, other_ca, reason, at, now, actor, cause=f"key of {cert.serial_hex}"):
                changed.append((other_ca.label, other.serial_hex))
    return changed, blocked


def publish_status(ctx: Context, changed: list[tuple[str, str]]) -> bool:
    """Republish CRL and OCSP of each touched CA now; a failure is logged and left to the scheduler."""
    ok = True
    by_ca: dict[str, list[str]] = {}
    for label, serial in changed:
        by_ca.setdefault(label, []).append(serial)
    for label, serials in by_ca.items():
        try:
            publication.publish_crl(ctx, label)
            publication.refresh_ocsp(ctx, label, serials=serials)
        except Exception:  # noqa: BLE001 - the revocation stands; the next job pass publishes it
            _log.exception("publishing status for %s after a revocation failed", label)
            ok = False
    publication.invalidate_ocsp_cache(ctx)
    return ok


def _check_at(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if at.tzinfo is None:
        raise PolicyViolation("the revocation time must carry a time zone", value=at)
    if at > now:
        raise PolicyViolation("a certificate cannot be revoked in the future", rule="RFC 5280 5.1.2.6", value=at)
    return at


def revoke_certificate(
    ctx: Context, *, ca_label: str | None, serial_hex: str, reason: str | None, actor: str, at: datetime | None = None
) -> Revocation:
    """Revoke a subscriber certificate (operator or API); refreshes CRL and OCSP before returning.

    Already revoked → Conflict, unless the new reason is keyCompromise (the reason is upgraded).
    """
    flag = parse_reason(reason)
    now = ctx.clock()
    when = _check_at(at, now)
    with ctx.transaction() as session:
        cert, ca = _find_certificate(session, ca_label, serial_hex)
        changed, blocked = _revoke_in(session, cert, ca, flag, when, now, actor)
    published = publish_status(ctx, changed)
    return Revocation(tuple(changed), when, flag.value if flag else None, blocked, published)


def revoke_for_application(ctx: Context, app_id: int, reason: str | None, actor: str) -> Revocation:
    """The subscriber revokes the certificate of the application it is logged in to (seed D, BR 4.9.2)."""
    with ctx.read() as session:
        row = status.revocable_for_application(session, app_id)
    if row is None:
        raise NotFound("this application has no certificate that can be revoked")
    if row.status is CertStatus.ISSUED:
        # Not yet accepted (seed C.6): Reject is the way out, and it also revokes the certificate at once.
        raise Conflict(
            "this certificate is waiting for acceptance: reject it instead of revoking it", value=row.serial_hex
        )
    # The application stays open (a new CSR may follow), and so do its ACME accounts: a subscriber revoking a
    # compromised certificate needs them for the replacement. Closing the application stops them.
    done = revoke_certificate(ctx, ca_label=row.ca_label, serial_hex=row.serial_hex, reason=reason, actor=actor)
    return done


# --- proof of possession -------------------------------------------------------------------------


def revocation_challenge(ctx: Context, serial_hex: str) -> str:
    """A fresh nonce for ``serial_hex`` that the key holder signs in a CSR (BR 4.9.3 problem reports).

    Anyone may ask; the nonce alone grants nothing without the certificate's private key.
    """
    now = ctx.clock()
    with ctx.transaction() as session:
        cert, _ca = _find_certificate(session, None, serial_hex)
        if status.open_challenges(session, cert.serial_hex, now) >= CHALLENGE_LIMIT_PER_SERIAL:
            raise RateLimited(
                "too many open revocation challenges for this certificate; use one of them", value=cert.serial_hex
            )
        nonce = secrets.token_urlsafe(24)  # 32 characters: fits a CN (64) and a challengePassword
        status.add_challenge(
            session, nonce=nonce, serial_hex=cert.serial_hex, now=now, expires_at=now + CHALLENGE_LIFETIME
        )
        return nonce


def _load_csr(proof: bytes | str) -> x509.CertificateSigningRequest:
    data = proof.encode() if isinstance(proof, str) else proof
    try:
        return x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise BadCSR("the proof is not a PKCS#10 request (PEM or DER)", rule="RFC 2986") from exc


def _proof_strings(csr: x509.CertificateSigningRequest) -> set[str]:
    """Where a nonce may sit: the subject CN (``openssl req -subj /CN=nonce``) or a challengePassword."""
    found = {str(a.value).strip() for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
        found.add((value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip())
    except x509.AttributeNotFound:
        pass
    return found


def revoke_by_key_proof(ctx: Context, serial_hex: str, proof: bytes | str) -> Revocation:
    """Revoke ``serial_hex`` for keyCompromise on proof of possession of its private key.

    The proof is a CSR signed by that key carrying an open challenge nonce; its signature must verify
    and its public key must be the certificate's. Proving the key is out of its owner's sole control
    is what keyCompromise means (BR 4.9.1.1 item 3), so the key is blocked too.
    """
    csr = _load_csr(proof)
    if not csr.is_signature_valid:
        raise BadCSR("the proof's signature does not verify", rule="RFC 2986")
    now = ctx.clock()
    with ctx.transaction() as session:
        cert, ca = _find_certificate(session, None, serial_hex)
        if spki_sha256(csr.public_key()) != cert.spki_sha256:
            raise Forbidden("the proof is not signed by this certificate's key", value=cert.serial_hex)
        if not status.use_challenge(session, _proof_strings(csr), cert.serial_hex, now):
            raise Forbidden(
                "the proof does not carry an open challenge for this certificate; ask for a new one",
                value=cert.serial_hex,
            )
        changed, blocked = _revoke_in(session, cert, ca, x509.ReasonFlags.key_compromise, now, now, "key-holder")
    published = publish_status(ctx, changed)
    return Revocation(tuple(changed), now, x509.ReasonFlags.key_compromise.value, blocked, published)


# --- issuing CAs ---------------------------------------------------------------------------------


CA_REVOCATION_BACKDATE_TOLERANCE = timedelta(minutes=5)  # clock skew between the operator and the CA


def _revocable_ca(session: Session, label: str, flag: x509.ReasonFlags) -> CA:
    """The issuing CA ``label``, refused when it is not one, already revoked, or still active without cACompromise."""
    ca = cas.ca_by_label(session, label)
    if ca is None:
        raise NotFound(f"no CA labelled {label}", value=label)
    if ca.role not in publication.ISSUING_ROLES:
        raise PolicyViolation("only issuing CA certificates are revoked into the ARL", rule="BR 7.2.2", value=ca.role)
    if ca.status == CaStatus.REVOKED:
        raise Conflict(f"CA {label} is already revoked", value=label)
    if ca.status == CaStatus.ACTIVE and flag is not x509.ReasonFlags.ca_compromise:
        raise Conflict(f"CA {label} is still active: roll it over first (or revoke for cACompromise)", value=label)
    return ca


def _move_revoked_ca(
    session: Session, ca: CA, *, scheduled: bool, revoked_at: datetime, revocation_reason: str
) -> None:
    """Revoke now, or (scheduled) record the date and stop issuance: an active CA retires until it is due."""
    values = {"revoked_at": revoked_at, "revocation_reason": revocation_reason}
    if not scheduled:
        cas.move_ca(session, ca.id, CaAction.REVOKE, current=ca.status, **values)
    elif ca.status == CaStatus.ACTIVE:
        cas.move_ca(session, ca.id, CaAction.RETIRE, current=ca.status, **values)
    else:
        cas.set_ca_fields(session, ca.id, **values)


def revoke_ca(
    ctx: Context, label: str, reason: str | None, at: datetime | None = None, *, actor: str = "operator"
) -> CaRevocation:
    """Revoke an issuing CA certificate into the root's ARL, now or on the date the operator sets.

    The last step of a rollover (seed D). A future ``at`` is recorded and applied by the scheduler when
    due; until then the CA stays "retired" (no new issuance, its CRL and OCSP still published). An
    active CA may be revoked only for cACompromise: roll it over first.
    """
    flag = parse_reason(reason, for_ca=True)
    if flag is None:
        # BR 7.2.2: an ARL entry for a CA certificate carries a reasonCode; no "unspecified" for CAs.
        raise PolicyViolation(
            "a CA revocation needs a reason: superseded, cessationOfOperation, "
            "affiliationChanged, privilegeWithdrawn or cACompromise",
            rule="BR 7.2.2",
        )
    now = ctx.clock()
    when = at or now
    if when.tzinfo is None:
        raise PolicyViolation("the revocation date must carry a time zone", value=at)
    if when < now - CA_REVOCATION_BACKDATE_TOLERANCE:
        # The ARL records when the CA was revoked; a date in the past would rewrite history.
        raise PolicyViolation(
            "a CA revocation cannot be dated in the past; give a future date to schedule it",
            rule="RFC 5280 5.3.2",
            value=when.isoformat(),
        )
    with ctx.transaction() as session:
        ca = _revocable_ca(session, label, flag)
        scheduled = when > now
        _move_revoked_ca(session, ca, scheduled=scheduled, revoked_at=when, revocation_reason=flag.value)
        audit.append(
            session,
            actor=actor,
            event="ca.revocation_scheduled" if scheduled else "ca.revoked",
            subject=label,
            details={"reason": flag.value, "at": when.isoformat()},
            now=now,
        )
    if not scheduled:
        publication.publish_arl(ctx)
    return CaRevocation(label, when, flag.value, scheduled)


def apply_due_ca_revocations(ctx: Context) -> list[str]:
    """Turn scheduled CA revocations whose date has come into revocations; returns the CA labels."""
    now = ctx.clock()
    with ctx.transaction() as session:
        due = cas.due_revocations(session, now)
        for ca in due:
            cas.move_ca(session, ca.id, CaAction.REVOKE, current=ca.status)
            audit.append(
                session,
                actor="system",
                event="ca.revoked",
                subject=ca.label,
                details={
                    "reason": ca.revocation_reason,
                    "at": ca.revoked_at.isoformat(),  # type: ignore[union-attr]
                    "scheduled": True,
                },
                now=now,
            )
        labels = [ca.label for ca in due]
    if labels:
        publication.publish_arl(ctx)
    return labels
