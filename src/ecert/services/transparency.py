"""The Certificate Transparency steps of the issuance pipeline (services/issuance.py calls them in order).

a. the signed precertificate is stored durably before any log sees it (RFC 6962 3.1; Boulder ISSUANCE-CYCLE);
b. SCTs are collected outside any transaction, each log's answer recorded, and the policy checked;
c. the final certificate's SCTs are stored in the same transaction as the certificate;
d. when the promise cannot be kept (too few SCTs, a failure after the precertificate, a crash), the serial is
   revoked: the precertificate was (or may have been) logged, and the BR (7.1.2.9) treats it as a certificate.

Revoking rather than keeping the precertificate for a retry is deliberate: a retry would embed SCTs minutes or
hours later under the same promise, needs the lost in-memory TBS rebuilt from the DER, and gains nothing the
subscriber cannot get by asking again (a new serial, a new precertificate). The revocation carries no reason
code (unspecified, BR 7.2.2) and is published at once, so CRL and OCSP answer "revoked" for the serial.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy.orm import Session

from ..core.ct import CtLog, LogList, PrecertAction, SctFromLog, check_sct_policy
from ..core.errors import TransparencyFailed
from ..core.lifecycle import CertAction, CertStatus, RecordAction, RecordState
from ..signer.issuer import IssuedCertificate, Issuer, PreparedCertificate
from ..store import audit
from ..store import certificates as cert_store
from ..store import ct as ct_store
from ..store.models import Certificate
from ..store.models_ct import CtLogResult
from ..transparency import CtSubmitter, Submission
from ..transparency.submit import load_log_list
from .context import Context

__all__ = [
    "store_precertificate",
    "collect_scts",
    "record_scts",
    "revoke_unkept",
    "revoke_unkept_in_session",
    "certificate_scts",
    "log_overview",
    "SctView",
    "LogView",
    "CtOverview",
    "Finished",
    "finish_with_scts",
    "Shortfall",
]

_log = logging.getLogger(__name__)


def store_precertificate(
    ctx: Context, *, ca_id: int, serial_hex: str, issued: IssuedCertificate, tbs_sha256: str, actor: str
) -> int:
    """Step a: the precertificate row and its audit event, committed before any submission."""
    now = ctx.clock()
    with ctx.transaction() as session:
        precert_id = ct_store.add_precertificate(
            session, ca_id=ca_id, serial_hex=serial_hex, der=issued.der, tbs_sha256=tbs_sha256, now=now
        )
        audit.append(
            session,
            actor=actor,
            event="cert.precertificate_signed",
            subject=serial_hex,
            details={"precertificate": precert_id},
            now=now,
        )
    return precert_id


def _outcomes(submission: Submission) -> list[ct_store.LogOutcome]:
    return [
        ct_store.LogOutcome(
            log_id=r.log.log_id_b64,
            log_name=r.log.description,
            operator=r.log.operator,
            url=r.log.url,
            ok=r.ok,
            error=r.error,
            ms=round(r.seconds * 1000),
        )
        for r in submission.results
    ]


def _failures(submission: Submission) -> str:
    if not submission.candidates:
        return "no usable log in the log list covers the certificate's notAfter"
    failed = [f"{r.log.description} ({r.error})" for r in submission.results if not r.ok]
    return "failed: " + "; ".join(failed) if failed else "too few usable logs or operators configured"


class Shortfall(TransparencyFailed):
    """Too few verified SCTs; carries each log's answer so the refusal's transaction can record them."""

    def __init__(self, message: str, *, rule: str | None, submission: Submission) -> None:
        super().__init__(message, rule=rule, value=[r.log.description for r in submission.results if not r.ok])
        self.submission = submission


def collect_scts(
    submitter: CtSubmitter, precertificate: x509.Certificate, chain: Sequence[x509.Certificate]
) -> Submission:
    """Step b: ask the logs (no transaction is open) and hold the policy.

    Raises :class:`Shortfall` naming the shortfall and the failing logs when the policy is not met. Each
    log's answer is recorded by the transaction that follows (the final certificate's, or the refusal's),
    so CT adds one durable commit to issuance, the precertificate's, and no more.
    """
    not_before, not_after = precertificate.not_valid_before_utc, precertificate.not_valid_after_utc
    submission = submitter.submit_precertificate(precertificate, chain, not_before, not_after)
    try:
        check_sct_policy(submission.scts, not_before, not_after)
    except TransparencyFailed as exc:
        raise Shortfall(f"{exc.message}: {_failures(submission)}", rule=exc.rule, submission=submission) from None
    return submission


def record_scts(
    session: Session, *, precert_id: int, certificate_id: int, scts: Sequence[SctFromLog], now: datetime
) -> None:
    """Step c, inside the transaction that stores the final certificate: the SCTs and the kept promise."""
    ct_store.add_scts(session, precert_id=precert_id, certificate_id=certificate_id, scts=scts, now=now)
    ct_store.move_precertificate(session, precert_id, PrecertAction.FINISH, now=now, certificate_id=certificate_id)


def revoke_unkept_in_session(session: Session, *, ca_id: int, serial_hex: str, error: str, now: datetime) -> bool:
    """Step d's writes: the precertificate and the reserved row revoked, the record failed; False if there is
    no unfinished precertificate for the serial (nothing was promised)."""
    precert = ct_store.precertificate_for(session, ca_id, serial_hex)
    if precert is None or precert.status != "signed":
        return False
    ct_store.move_precertificate(session, precert.id, PrecertAction.REVOKE, now=now, error=error)
    cert_store.move_certificate(
        session,
        ca_id=ca_id,
        serial_hex=serial_hex,
        action=CertAction.REVOKE,
        current=CertStatus.SIGNING,
        now=now,
        der=precert.der,
        revoked_at=now,
        revocation_reason=None,
    )
    record = cert_store.record_for(session, ca_id, serial_hex)
    if record is not None:
        cert_store.move_record(
            session, record.id, RecordAction.FAIL, current=RecordState.LINTED, now=now, error=error[:2000]
        )
    audit.append(
        session,
        actor="system",
        event="cert.precertificate_revoked",
        subject=serial_hex,
        details={"precertificate": precert.id, "error": error[:500]},
        now=now,
    )
    return True


def revoke_unkept(
    ctx: Context, *, ca_id: int, ca_label: str, serial_hex: str, error: str, submission: Submission | None = None
) -> None:
    """Step d: revoke the serial of a precertificate no final certificate will follow, and publish at once."""
    from .revocation import publish_status

    with ctx.transaction() as session:
        if submission is not None:
            ct_store.record_log_outcomes(session, _outcomes(submission), ctx.clock())
        revoked = revoke_unkept_in_session(session, ca_id=ca_id, serial_hex=serial_hex, error=error, now=ctx.clock())
    if revoked and not publish_status(ctx, [(ca_label, serial_hex)]):
        _log.warning("precertificate %s revoked; its CRL/OCSP will be published by the next job pass", serial_hex)


@dataclass(frozen=True)
class SctView:
    """One embedded SCT as people see it: which log, whose, when."""

    log_name: str
    operator: str
    time: datetime
    log_id: str


@dataclass(frozen=True)
class LogView:
    """A configured log and its last result (``ecert-ca ct logs``)."""

    name: str
    operator: str
    url: str
    state: str
    interval: str
    log_id: str
    last_at: datetime | None
    last_ok: bool | None
    last_error: str | None
    last_ms: int | None
    submissions: int
    failures: int


@dataclass(frozen=True)
class CtOverview:
    enabled: bool
    log_list: str | None
    logs: tuple[LogView, ...]


def certificate_scts(ctx: Context, serial_hex: str) -> list[SctView]:
    """The SCTs embedded in a certificate (none when it was issued with CT off)."""
    wanted = serial_hex.replace(" ", "").replace(":", "").lower().lstrip("0")
    with ctx.read() as session:
        return [
            SctView(log_name=r.log_name, operator=r.operator, time=r.timestamp, log_id=r.log_id)
            for r in ct_store.scts_for_serial(session, wanted)
        ]


def _interval(log: CtLog) -> str:
    start = log.start_inclusive.date().isoformat() if log.start_inclusive else "…"
    end = log.end_exclusive.date().isoformat() if log.end_exclusive else "…"
    return f"{start} to {end}"


def _view(log: CtLog, last: CtLogResult | None) -> LogView:
    return LogView(
        name=log.description,
        operator=log.operator,
        url=log.url,
        state=log.state,
        interval=_interval(log),
        log_id=log.log_id_b64,
        last_at=last.last_at if last else None,
        last_ok=last.last_ok if last else None,
        last_error=last.last_error if last else None,
        last_ms=last.last_ms if last else None,
        submissions=last.submissions if last else 0,
        failures=last.failures if last else 0,
    )


def log_overview(ctx: Context) -> CtOverview:
    """The configured log list (even with CT off, so an operator can check it first) and each log's last result."""
    path = ctx.settings.ct_log_list
    if ctx.ct is not None:
        log_list: LogList | None = ctx.ct.log_list
    else:
        log_list = load_log_list(path) if path is not None else None
    with ctx.read() as session:
        results = ct_store.log_results(session)
    logs = tuple(_view(log, results.get(log.log_id_b64)) for log in (log_list.logs if log_list else ()))
    return CtOverview(enabled=ctx.ct is not None, log_list=str(path) if path else None, logs=logs)


@dataclass(frozen=True)
class Finished:
    """The final certificate and what the storing transaction must record with it."""

    issued: IssuedCertificate
    precert_id: int
    submission: Submission

    def record(self, ctx: Context) -> Callable[[Session, Certificate], None]:
        """A hook for the storing transaction: the SCTs, the kept promise and each log's answer commit with
        the certificate."""

        def _record(session: Session, row: Certificate) -> None:
            now = ctx.clock()
            record_scts(session, precert_id=self.precert_id, certificate_id=row.id, scts=self.submission.scts, now=now)
            ct_store.record_log_outcomes(session, _outcomes(self.submission), now)

        return _record


def finish_with_scts(
    ctx: Context,
    submitter: CtSubmitter,
    issuer: Issuer,
    *,
    ca_id: int,
    ca_label: str,
    serial_hex: str,
    prepared: PreparedCertificate,
    precertificate: IssuedCertificate,
    actor: str,
) -> Finished:
    """Steps a, b and the final signature: from a signed precertificate to a signed final certificate.

    The precertificate is committed first (a failure there leaves nothing promised: the caller fails the
    reservation as for any signature that was not stored). From then on any failure revokes the serial.
    """
    precert_id = store_precertificate(
        ctx, ca_id=ca_id, serial_hex=serial_hex, issued=precertificate, tbs_sha256=prepared.tbs_sha256, actor=actor
    )
    submission: Submission | None = None
    try:
        submission = collect_scts(submitter, precertificate.certificate, [issuer.certificate])
        final = issuer.prepare_final(prepared, precertificate.certificate, [f.sct for f in submission.scts])
        return Finished(issued=issuer.sign(final), precert_id=precert_id, submission=submission)
    except Exception as exc:
        if isinstance(exc, Shortfall):
            submission = exc.submission
        error = f"no final certificate: {type(exc).__name__}: {exc}"
        revoke_unkept(ctx, ca_id=ca_id, ca_label=ca_label, serial_hex=serial_hex, error=error, submission=submission)
        raise
