"""Publication of certificate status: CRLs per issuing CA, the root's ARL, responder certificates, OCSP responses.

Each publisher takes one per-issuer lock (a PostgreSQL advisory lock, or SQLite's single writer), so
several workers may run the same job against one database: one signs, the others see a fresh result
and skip. The signer builds and signs; this module streams rows in and stores what comes out.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.orm import Session

from ..core.ct import PrecertStatus
from ..core.errors import NotFound, RateLimited
from ..core.lifecycle import SIGNED_STATUSES
from ..signer.keystore import KeySpec
from ..signer.status import (
    CertStatus,
    RevokedEntry,
    build_crl,
    build_ocsp_response,
    build_responder_certificate,
    issuer_hashes,
)
from ..store import audit, cas, repo, status
from ..store import ct as ct_store
from ..store.models import CA, Crl, ResponderCert
from .ceremony import load_private_key
from .context import Context

__all__ = [
    "ARL_REFRESH_AFTER",
    "ARL_VALIDITY",
    "CRL_REFRESH_AFTER",
    "CRL_VALIDITY",
    "ISSUING_ROLES",
    "OCSP_REFRESH_MARGIN",
    "OCSP_VALIDITY",
    "RESPONDER_DAYS",
    "RESPONDER_RENEW_MARGIN",
    "SignedOcsp",
    "crl_due",
    "arl_due",
    "current_crl",
    "issuing_cas",
    "latest_crl",
    "publish_arl",
    "publish_crl",
    "refresh_ocsp",
    "ensure_responder",
    "ensure_responders",
    "sign_ocsp_now",
    "invalidate_ocsp_cache",
    "issuer_index",
]

_log = logging.getLogger("ecert.publication")

# BR 4.9.7: a subscriber CRL is valid for at most 10 days and regenerated at least every 7 days.
# We sign for 7 days and regenerate after 3.5, so a relying party's copy is never older than that.
CRL_VALIDITY = timedelta(days=7)
CRL_REFRESH_AFTER = timedelta(days=3, hours=12)
# BR 4.9.7: the CRL of CA certificates at most 12 months; we sign for 30 days and renew after 15.
ARL_VALIDITY = timedelta(days=30)
ARL_REFRESH_AFTER = timedelta(days=15)
# BR 4.9.10: an OCSP response is valid for 8 hours to 10 days; we sign for 3.5 days and refresh when
# less than half (plus an hour, so the 60-second scheduler is always early) is left.
OCSP_VALIDITY = timedelta(days=3, hours=12)
OCSP_REFRESH_MARGIN = OCSP_VALIDITY / 2 + timedelta(hours=1)
# RFC 6960 4.2.2.2.1: a responder with id-pkix-ocsp-nocheck is short-lived; renewed at half its life.
RESPONDER_DAYS = 4
RESPONDER_RENEW_MARGIN = timedelta(days=RESPONDER_DAYS) / 2
RESPONDER_KEY = KeySpec("EC", curve="P-256")

ISSUING_ROLES = ("ov", "ev")


# --- lookups -------------------------------------------------------------------------------------


def _ca_by_label(session: Session, label: str) -> CA:
    row = cas.ca_by_label(session, label)
    if row is None:
        raise NotFound(f"no CA labelled {label}", value=label)
    return row


def _cert_of(row: CA) -> x509.Certificate:
    return x509.load_der_x509_certificate(row.cert_der)


def issuing_cas(ctx: Context, *, now: datetime | None = None) -> list[str]:
    """Labels of the issuing CAs that still publish status: not expired, key here.

    A revoked issuing CA keeps publishing too: its leaves' CRLDP still names its CRL, and a relying party
    that does not check the ARL must still find them revoked (RFC 5280 5: CRLs until the certificates expire).
    """
    now = now or ctx.clock()
    with ctx.read() as session:
        return cas.publishing_labels(session, ISSUING_ROLES, now)


def _root(session: Session) -> CA:
    root = cas.active_root(session)
    if root is None:
        raise NotFound("no root CA: run `ecert-ca init` first")
    return root


def latest_crl(ctx: Context, label: str, *, arl: bool = False) -> Crl:
    """The newest stored CRL (or, with ``arl``, ARL) of the CA ``label``; NotFound if none was published."""
    with ctx.transaction() as session:
        ca = _ca_by_label(session, label)
        row = status.latest_crl(session, ca.id, arl=arl)
        if row is None:
            raise NotFound(f"no {'ARL' if arl else 'CRL'} published yet for {label}", value=label)
        return row


def crl_due(ctx: Context, label: str, *, now: datetime | None = None) -> bool:
    """True when ``label`` has no CRL, one older than CRL_REFRESH_AFTER, or a revocation it misses."""
    now = now or ctx.clock()
    with ctx.transaction() as session:
        ca = _ca_by_label(session, label)
        return _crl_due(session, ca, now)


def _crl_due(session: Session, ca: CA, now: datetime) -> bool:
    crl = status.latest_crl(session, ca.id, arl=False)
    if crl is None or now - crl.this_update >= CRL_REFRESH_AFTER or crl.next_update <= now:
        return True
    return status.revocations_since(session, ca.id, crl.created_at, now) > 0


def arl_due(ctx: Context, *, now: datetime | None = None) -> bool:
    now = now or ctx.clock()
    with ctx.transaction() as session:
        return _arl_due(session, _root(session), now)


def _arl_due(session: Session, root: CA, now: datetime) -> bool:
    arl = status.latest_crl(session, root.id, arl=True)
    if arl is None or now - arl.this_update >= ARL_REFRESH_AFTER or arl.next_update <= now:
        return True
    return cas.children_revoked_since(session, root.id, arl.this_update, now) > 0


# --- CRLs ----------------------------------------------------------------------------------------


def _reason(value: str | None) -> x509.ReasonFlags | None:
    return x509.ReasonFlags(value) if value else None


def _revoked_entries(session: Session, ca_id: int, this_update: datetime) -> Iterator[RevokedEntry]:
    """Stream the revoked rows of one CA as entries, a batch at a time (server-side cursor on PostgreSQL)."""
    for serial_hex, revoked_at, reason in status.revoked_serials(session, ca_id, this_update):
        yield RevokedEntry(int(serial_hex, 16), revoked_at, _reason(reason))


def _store_crl(
    session: Session, ca: CA, der: bytes, number: int, this_update: datetime, next_update: datetime, *, arl: bool
) -> Crl:
    return status.add_crl(
        session, ca_id=ca.id, der=der, number=number, this_update=this_update, next_update=next_update, arl=arl
    )


def publish_crl(ctx: Context, ca_label: str, *, only_if_due: bool = False, wait: bool = True) -> Crl | None:
    """Sign and store a full CRL for the issuing CA ``ca_label`` (BR 4.9.7, RFC 5280 5).

    The CRL number comes from the issuer's counter in the same transaction (RFC 5280 5.2.3: strictly
    increasing); thisUpdate is now, nextUpdate seven days on. With ``only_if_due`` (the scheduler) a
    busy issuer is skipped and a fresh CRL is left alone; returns None then.
    """
    now = ctx.clock()
    with ctx.transaction() as session:
        ca = _ca_by_label(session, ca_label)
        if not status.lock_issuer(session, "crl", ca.id, wait=wait):
            return None
        if only_if_due and not _crl_due(session, ca, now):
            return None
        number = repo.next_crl_number(session, ca.id)
        der = build_crl(
            issuer_cert=_cert_of(ca),
            issuer_key=load_private_key(ctx, ca),
            entries=_revoked_entries(session, ca.id, now),
            number=number,
            this_update=now,
            next_update=now + CRL_VALIDITY,
            now=now,
        )
        return _store_crl(session, ca, der, number, now, now + CRL_VALIDITY, arl=False)


def _arl_entries(session: Session, root: CA, this_update: datetime) -> list[RevokedEntry]:
    rows = cas.revoked_children(session, root.id, this_update)
    return [
        RevokedEntry(_cert_of(r).serial_number, r.revoked_at, _reason(r.revocation_reason))  # type: ignore[arg-type]
        for r in rows
    ]


def publish_arl(ctx: Context, *, only_if_due: bool = False, wait: bool = True) -> Crl | None:
    """Sign and store the root's ARL: the revoked issuing CA certificates (BR 7.2.2, the guide's RootCA3ARL)."""
    now = ctx.clock()
    with ctx.transaction() as session:
        root = _root(session)
        if not status.lock_issuer(session, "crl", root.id, wait=wait):
            return None
        if only_if_due and not _arl_due(session, root, now):
            return None
        number = repo.next_crl_number(session, root.id)
        der = build_crl(
            issuer_cert=_cert_of(root),
            issuer_key=load_private_key(ctx, root),
            entries=_arl_entries(session, root, now),
            number=number,
            this_update=now,
            next_update=now + ARL_VALIDITY,
            is_arl=True,
            now=now,
        )
        return _store_crl(session, root, der, number, now, now + ARL_VALIDITY, arl=True)


def current_crl(ctx: Context, label: str, *, arl: bool = False) -> Crl:
    """What the web serves: the newest stored CRL/ARL, publishing one first if there is none or it expired."""
    now = ctx.clock()
    try:
        row = latest_crl(ctx, label, arl=arl)
        if row.next_update > now:
            return row
    except NotFound:
        pass
    with ctx.transaction() as session:
        ca = _ca_by_label(session, label)
        if arl and ca.role != "root":
            raise NotFound(f"{label} is not a root and has no ARL", value=label)
        if not arl and ca.role not in ISSUING_ROLES:
            raise NotFound(f"{label} is not an issuing CA", value=label)
    published = publish_arl(ctx) if arl else publish_crl(ctx, label)
    assert published is not None
    return published


# --- OCSP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedOcsp:
    """One signed response as the web layer serves it."""

    der: bytes
    status: CertStatus
    this_update: datetime
    next_update: datetime
    etag: str


def _etag(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:32]


def invalidate_ocsp_cache(ctx: Context) -> None:
    """Drop the web layer's in-memory answers in this process, after a status change."""
    ctx.memo.ocsp_answers.clear()


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else "CA"


def _new_responder(ctx: Context, session: Session, ca: CA, now: datetime) -> ResponderCert:
    """Issue a delegated responder certificate (BR 7.1.2.8) with a fresh key in the key backend."""
    label = f"{ca.label}-ocsp-{now:%Y%m%d%H%M}-{secrets.token_hex(3)}"
    key_ref = ctx.keys.create_key(label, RESPONDER_KEY)
    issuer = _cert_of(ca)
    cert = build_responder_certificate(
        issuer_cert=issuer,
        issuer_key=load_private_key(ctx, ca),
        responder_public_key=ctx.keys.public_key(key_ref),
        subject_cn=f"{_common_name(issuer)} OCSP Responder"[:64],
        not_before=now - timedelta(minutes=5),
        validity_days=RESPONDER_DAYS,
    )
    row = status.add_responder(
        session,
        ca_id=ca.id,
        cert_der=cert.public_bytes(Encoding.DER),
        key_ref=key_ref,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
    audit.append(
        session,
        actor="system",
        event="ocsp.responder_issued",
        subject=ca.label,
        details={"serial": format(cert.serial_number, "x"), "not_after": row.not_after.isoformat(), "key_ref": key_ref},
        now=now,
    )
    return row


def _responder_due(row: ResponderCert | None, now: datetime) -> bool:
    return row is None or row.not_after - now <= RESPONDER_RENEW_MARGIN or row.not_before > now


def _loaded_responder(ctx: Context, row: ResponderCert) -> tuple[x509.Certificate, object]:
    loaded = ctx.memo.ocsp_responders.get(row.id)
    if loaded is None:
        loaded = (x509.load_der_x509_certificate(row.cert_der), ctx.keys.load_key(row.key_ref))
        ctx.memo.ocsp_responders[row.id] = loaded
    return loaded


def _responder(ctx: Context, session: Session, ca: CA, now: datetime) -> tuple[x509.Certificate, object, bool]:
    """The responder certificate and key to sign with, renewed when less than half its life is left."""
    row = status.latest_responder(session, ca.id)
    renewed = False
    if _responder_due(row, now):
        row = _new_responder(ctx, session, ca, now)
        renewed = True
    assert row is not None
    loaded = ctx.memo.ocsp_responders.get(row.id)
    if loaded is None:
        loaded = (x509.load_der_x509_certificate(row.cert_der), ctx.keys.load_key(row.key_ref))
        ctx.memo.ocsp_responders[row.id] = loaded
    return loaded[0], loaded[1], renewed


def ensure_responders(ctx: Context, labels: Iterable[str]) -> None:
    """Make each CA's responder certificate now (at ``init``, at rollover), so that no OCSP request ever has to
    write one: the GET path only reads (the jobs renew them when due, in ``refresh_ocsp``)."""
    for label in labels:
        ensure_responder(ctx, label)


def ensure_responder(ctx: Context, ca_label: str) -> x509.Certificate:
    """The current responder certificate of ``ca_label``, issuing a new one when due."""
    now = ctx.clock()
    with ctx.transaction() as session:
        ca = _ca_by_label(session, ca_label)
        status.lock_issuer(session, "ocsp", ca.id, wait=True)
        cert, _key, _renewed = _responder(ctx, session, ca, now)
        return cert


def _sign(
    ctx: Context,
    session: Session,
    ca: CA,
    serial: int,
    answer: CertStatus,
    revoked_at: datetime | None,
    reason: str | None,
    now: datetime,
    request_hash: hashes.HashAlgorithm | None = None,
) -> SignedOcsp:
    responder_cert, responder_key, _ = _responder(ctx, session, ca, now)
    return _sign_with(ctx, ca, (responder_cert, responder_key), serial, answer, revoked_at, reason, now, request_hash)


def _sign_with(
    ctx: Context,
    ca: CA,
    responder: tuple[x509.Certificate, object],
    serial: int,
    answer: CertStatus,
    revoked_at: datetime | None,
    reason: str | None,
    now: datetime,
    request_hash: hashes.HashAlgorithm | None = None,
) -> SignedOcsp:
    responder_cert, responder_key = responder
    # Never outlive the responder certificate: a response is verified against it (RFC 6960 4.2.2.2).
    next_update = min(now + OCSP_VALIDITY, responder_cert.not_valid_after_utc)
    der = build_ocsp_response(
        issuer_cert=_cert_of(ca),
        responder_cert=responder_cert,
        responder_key=responder_key,
        cert_serial=serial,
        status=answer,
        revoked_at=revoked_at if answer == "revoked" else None,
        reason=_reason(reason) if answer == "revoked" else None,
        this_update=now,
        next_update=next_update,
        request_hash=request_hash,
        now=now,
    )
    return SignedOcsp(der=der, status=answer, this_update=now, next_update=next_update, etag=_etag(der))


def _expected_status(revoked_at: datetime | None) -> CertStatus:
    return "revoked" if revoked_at is not None else "good"


def _upsert(session: Session, ca_id: int, serial_hex: str, signed: SignedOcsp, existing_id: int | None) -> None:
    status.save_ocsp(
        session,
        ca_id=ca_id,
        serial_hex=serial_hex,
        der=signed.der,
        status=signed.status,
        etag=signed.etag,
        this_update=signed.this_update,
        next_update=signed.next_update,
        existing_id=existing_id,
    )


def refresh_ocsp(
    ctx: Context, ca_label: str, *, force: bool = False, serials: Iterable[str] | None = None, wait: bool = True
) -> int:
    """Pre-sign OCSP responses for the certificates of ``ca_label`` that need one; returns how many.

    Due: no stored response, a stored status that no longer matches (revoked since), less than
    OCSP_REFRESH_MARGIN left, a new responder certificate, or ``force``. ``serials`` narrows the
    pass to those certificates (a revocation refreshes just what it changed). Returns -1 if
    another worker holds the issuer's lock and ``wait`` is False.
    """
    now = ctx.clock()
    with ctx.transaction() as session:
        ca = _ca_by_label(session, ca_label)
        if not status.lock_issuer(session, "ocsp", ca.id, wait=wait):
            return -1
        _cert, _key, renewed = _responder(ctx, session, ca, now)
        wanted = [repo.normalize_serial_hex(s) for s in serials] if serials is not None else None
        due = status.ocsp_due(
            session, ca.id, now=now, refresh_before=now + OCSP_REFRESH_MARGIN, every=force or renewed, serials=wanted
        )
        for item in due:
            answer = _expected_status(item.revoked_at)
            signed = _sign(ctx, session, ca, int(item.serial_hex, 16), answer, item.revoked_at, item.reason, now)
            _upsert(session, ca.id, item.serial_hex, signed, item.existing_id)
        session.flush()
    if due:
        invalidate_ocsp_cache(ctx)
    return len(due)


def sign_ocsp_now(
    ctx: Context,
    ca_label: str,
    serial: int,
    *,
    request_hash: hashes.HashAlgorithm | None = None,
    limiter: Callable[[], bool] | None = None,
) -> SignedOcsp:
    """The response for one serial, from storage when fresh, otherwise signed now (never stored: a request
    only reads; the web layer keeps the answer in memory and the jobs pre-sign and store responses).

    A serial this CA never issued (or only reserved and never signed) gets "unknown", never "good"
    (BR 4.9.10). ``limiter`` is asked before any signature and a False answer raises RateLimited. The
    responder certificate exists from ``init`` and rollover on and the jobs renew it; only if it is missing
    or due (jobs stopped) is it made here, the one write left on this path.
    """
    now = ctx.clock()
    serial_hex = repo.serial_to_hex(serial)
    sha1 = request_hash is None or isinstance(request_hash, hashes.SHA1)
    with ctx.read() as session:
        ca = _ca_by_label(session, ca_label)
        stored = status.stored_ocsp(session, ca.id, serial_hex)
        if sha1 and stored is not None and stored.next_update > now and stored.this_update <= now:
            return SignedOcsp(
                stored.der, cast(CertStatus, stored.status), stored.this_update, stored.next_update, stored.etag
            )
        cert = status.certificate_by_serial(session, ca.id, serial_hex)
        if limiter is not None and not limiter():
            raise RateLimited("too many OCSP responses signed on demand; try later", rule="RFC 6960 2.3")
        responder = status.latest_responder(session, ca.id)
        if _responder_due(responder, now):
            responder = None
        answer: CertStatus = "unknown"
        if cert is not None and cert.der is not None and cert.status in SIGNED_STATUSES:
            answer = _expected_status(cert.revoked_at)
        elif cert is not None and _precertificate_pending(session, ca.id, serial_hex):
            # RFC 6962 3 / issue 12: a signed precertificate is a promise to issue; its serial is answered as
            # a certificate's from the moment it exists, before the final certificate is stored.
            answer = "good"
        revoked_at, reason = (cert.revoked_at, cert.revocation_reason) if answer != "unknown" and cert else (None, None)
        if responder is not None:
            return _sign_with(
                ctx, ca, _loaded_responder(ctx, responder), serial, answer, revoked_at, reason, now, request_hash
            )
    with ctx.transaction() as session:  # no usable responder yet: make it (the jobs' job, done late)
        ca = _ca_by_label(session, ca_label)
        status.lock_issuer(session, "ocsp", ca.id, wait=True)  # a responder renewal must not happen twice
        return _sign(ctx, session, ca, serial, answer, revoked_at, reason, now, request_hash)


def _precertificate_pending(session: Session, ca_id: int, serial_hex: str) -> bool:
    precert = ct_store.precertificate_for(session, ca_id, serial_hex)
    return precert is not None and precert.status == PrecertStatus.SIGNED


def issuer_index(ctx: Context) -> dict[tuple[str, bytes, bytes], str]:
    """(hash name, issuerNameHash, issuerKeyHash) → CA label, for every CA whose status we answer for."""
    out: dict[tuple[str, bytes, bytes], str] = {}
    with ctx.transaction() as session:
        rows = cas.answering_cas(session, ISSUING_ROLES)
    for row in rows:
        cert = _cert_of(row)
        for algorithm in (hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
            name_hash, key_hash = issuer_hashes(cert, algorithm)
            out[(algorithm.name, name_hash, key_hash)] = row.label
    return out
