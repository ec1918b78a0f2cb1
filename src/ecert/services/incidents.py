"""Incidents and mass replacement: the day a set of certificates must be replaced and revoked in bulk.

Opening an incident selects the certificates (issuing CA, profile, issued between, a serials file), marks
them for replacement (ACME's renewalInfo reads ``store.ops.is_marked_for_replacement``), e-mails their
subscribers, and schedules their revocation at a deadline inside BR 4.9.1.1's 5 days. The jobs follow
progress (replaced, pending, revoked) and, at the deadline, revoke whatever is still unrevoked through
the revocation service, with reason superseded or the one the operator chose (BR 7.2.2).

Context: Hongkong Post had to replace 1,176 certificates (Mozilla bug 1886665) and could not revoke them
within 5 days because their subscribers could not replace them in time; telling every subscriber on the
first day, and counting who has replaced, is what this module is for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from babel.dates import format_date
from sqlalchemy.orm import Session

from ..core.errors import Conflict, EcertError, NotFound, PolicyViolation
from ..core.incidents import (
    OPEN_AFFECTED_STATES,
    AffectedAction,
    AffectedState,
    IncidentState,
    check_revocation_deadline,
    default_deadline,
)
from ..store import audit, ops, repo
from ..store.ops import AffectedRow
from . import mailer, revocation
from .context import Context

__all__ = [
    "DEFAULT_REVOCATION_REASON",
    "IncidentView",
    "Progress",
    "Selection",
    "close_incident",
    "notify_subscribers",
    "open_incident",
    "parse_serials",
    "preview",
    "refresh_progress",
    "list_incidents",
    "revoke_due",
    "show_incident",
]

_log = logging.getLogger("ecert.incidents")

DEFAULT_REVOCATION_REASON = "superseded"


@dataclass(frozen=True)
class Selection:
    """Which certificates an incident covers; every criterion given must match (issued = notBefore)."""

    ca_labels: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    issued_from: datetime | None = None
    issued_until: datetime | None = None
    serials: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not (self.ca_labels or self.profiles or self.issued_from or self.issued_until or self.serials is not None):
            raise PolicyViolation(
                "an incident needs a selection: an issuing CA, a profile, an issuance "
                "period or a serials file (refusing to select every certificate)"
            )

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("issued_from", "issued_until"):
            data[key] = data[key].isoformat() if data[key] else None
        if self.serials is not None:
            data["serials"] = len(self.serials)
        return data


@dataclass(frozen=True)
class Progress:
    pending: int = 0
    replaced: int = 0
    revoked: int = 0
    expired: int = 0
    mailed: int = 0
    mail_failed: int = 0
    no_contact: int = 0


@dataclass(frozen=True)
class IncidentView:
    id: int | None
    reason: str
    state: str
    aware_at: datetime
    deadline: datetime
    revocation_reason: str | None
    selection: dict[str, object]
    progress: Progress
    certificates: tuple[AffectedRow, ...] = ()
    unmatched_serials: tuple[str, ...] = field(default_factory=tuple)


def parse_serials(text: str) -> tuple[str, ...]:
    """Serials as an operator pastes them, one per line (``01:AB:cd``, ``0x01ab``); ``#`` starts a comment."""
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        try:
            found.append(repo.normalize_serial_hex(value))
        except ValueError as exc:
            raise PolicyViolation(
                f"line {number} of the serials file is not a serial number: {exc}", value=value
            ) from exc
    return tuple(dict.fromkeys(found))


def _progress(rows: list[AffectedRow]) -> Progress:
    def count(predicate: Callable[[AffectedRow], bool]) -> int:
        return sum(1 for r in rows if predicate(r))

    return Progress(
        pending=count(lambda r: r.state == AffectedState.PENDING),
        replaced=count(lambda r: r.state == "replaced"),
        revoked=count(lambda r: r.state == AffectedState.REVOKED),
        expired=count(lambda r: r.state == "expired"),
        mailed=count(lambda r: r.mailed_at is not None),
        mail_failed=count(lambda r: r.mail_state == "failed"),
        no_contact=count(lambda r: r.mail_to is None),
    )


# --- opening ---------------------------------------------------------------------------------------


def _checked_terms(
    ctx: Context, deadline: datetime | None, aware_at: datetime | None, revocation_reason: str | None
) -> tuple[datetime, datetime, str | None]:
    now = ctx.clock()
    aware = aware_at or now
    when = deadline or default_deadline(aware)
    check_revocation_deadline(when, aware_at=aware, now=now)
    flag = revocation.parse_reason(revocation_reason)  # BR 7.2.2: the subscriber reasons only
    return aware, when, flag.value if flag is not None else None


def preview(ctx: Context, selection: Selection) -> list[ops.Candidate]:
    """The certificates ``selection`` matches now, without opening anything (``--dry-run``)."""
    with ctx.read() as session:
        return _select(session, selection, ctx.clock())


def _select(session: Session, selection: Selection, now: datetime) -> list[ops.Candidate]:
    return ops.select_certificates(
        session,
        now=now,
        ca_labels=selection.ca_labels,
        profiles=selection.profiles,
        issued_from=selection.issued_from,
        issued_until=selection.issued_until,
        serials=selection.serials,
    )


def open_incident(
    ctx: Context,
    *,
    reason: str,
    selection: Selection,
    actor: str,
    deadline: datetime | None = None,
    aware_at: datetime | None = None,
    revocation_reason: str | None = DEFAULT_REVOCATION_REASON,
    notify: bool = True,
) -> IncidentView:
    """Open an incident over the selected certificates, then e-mail their subscribers.

    Refuses an empty reason, a selection that matches nothing, a deadline beyond BR 4.9.1.1 and a reason
    outside BR 7.2.2. Serials in the file that match no certificate in use are reported, not refused.
    """
    if not reason.strip():
        raise PolicyViolation("an incident needs a reason: what is wrong with these certificates")
    aware, when, reason_code = _checked_terms(ctx, deadline, aware_at, revocation_reason)
    now = ctx.clock()
    with ctx.transaction() as session:
        candidates = _select(session, selection, now)
        if not candidates:
            raise NotFound("the selection matches no unexpired, unrevoked certificate", value=selection.to_json())
        incident = ops.add_incident(
            session,
            reason=reason.strip(),
            selection=selection.to_json(),
            revocation_reason=reason_code,
            aware_at=aware,
            deadline=when,
            actor=actor,
            now=now,
        )
        ops.add_incident_certificates(session, incident.id, candidates, now)
        audit.append(
            session,
            actor=actor,
            event="incident.opened",
            subject=f"incident:{incident.id}",
            details={
                "reason": reason.strip(),
                "certificates": len(candidates),
                "deadline": when.isoformat(),
                "aware_at": aware.isoformat(),
                "revocation_reason": reason_code,
                "selection": selection.to_json(),
            },
            now=now,
        )
        incident_id = incident.id
    if notify:
        notify_subscribers(ctx, incident_id)
    matched = {c.serial_hex for c in candidates}
    unmatched = tuple(s for s in (selection.serials or ()) if s not in matched)
    view = show_incident(ctx, incident_id)
    return IncidentView(**{**view.__dict__, "unmatched_serials": unmatched})


# --- mail to subscribers ---------------------------------------------------------------------------


def _compose(ctx: Context, row: AffectedRow, reason: str, deadline: datetime, language: str | None) -> tuple[str, str]:
    portal = ctx.settings.base_url.rstrip("/") + "/portal/"
    name = row.names[0] if row.names else row.serial_hex
    when_en = f"{deadline:%d/%m/%Y %H:%M} UTC"
    when_zh = f"{format_date(deadline.date(), 'long', locale='zh_Hant_HK')} {deadline:%H:%M}（協調世界時）"
    acme = ctx.settings.notice_acme_directory
    en = (
        f"Action needed: replace your e-Cert (Server) for {name} before {when_en}",
        f"Dear Authorised Representative of {row.org_name or 'the subscriber'},\n\n"
        f"We found a problem with the e-Cert (Server) certificate for {', '.join(row.names)} "
        f"(serial number {row.serial_hex}): {reason}\n\n"
        f"The Baseline Requirements for publicly-trusted certificates (section 4.9.1.1) oblige us to revoke "
        f"it by {when_en}. After that, browsers will refuse it. Please replace it before then: log in to the "
        f"portal at\n{portal}\nwith the Server Name, Reference Number {row.reference_number} and your e-Cert "
        "PIN, submit a new Certificate Signing Request (CSR), and install the new certificate.\n"
        + (f"If your server renews through ACME ({acme}), it will be told to renew now.\n" if acme else ""),
    )
    zh = (
        f"請於{when_zh}前更換閣下的電子證書(伺服器) {name}",
        f"{row.org_name or '登記人'} 的獲授權代表：\n\n"
        f"我們發現 {'、'.join(row.names)} 的電子證書(伺服器)（序號 {row.serial_hex}）有以下問題：{reason}\n\n"
        f"根據公開信任證書的基線要求（第 4.9.1.1 節），我們必須於{when_zh}前撤銷此證書，其後瀏覽器將拒絕接受。"
        f"請於該時間前更換：前往\n{portal}\n以伺服器名稱、參考編號 {row.reference_number} 及閣下的電子證書密碼登入，"
        "遞交新的證書簽署要求 (CSR)，並安裝新證書。\n"
        + (f"如閣下的伺服器經 ACME（{acme}）續期，系統會通知其立即續期。\n" if acme else ""),
    )
    if language == "en":
        return en[0], en[1] + "\nThis is an automated message; please do not reply.\n"
    if language == "zh_HK":
        return zh[0], zh[1] + "\n此乃自動發出的訊息，請勿回覆。\n"
    return (
        f"{en[0]} / {zh[0]}",
        f"{en[1]}\n{'-' * 40}\n\n{zh[1]}\n"
        "This is an automated message; please do not reply.\n此乃自動發出的訊息，請勿回覆。\n",
    )


def _mail_one(ctx: Context, row_id: int) -> bool | None:
    """Claim, send and record one subscriber's incident mail; None if another worker has it."""
    now = ctx.clock()
    with ctx.transaction() as session:
        if not ops.claim_incident_mail(session, row_id, now):
            return None
        row = ops.affected_by_id(session, row_id)
        assert row is not None and row.mail_to is not None
        incident = ops.get_incident(session, _incident_of(session, row_id))
        assert incident is not None
        language = ops.get_contact_language(session, row.application_id) if row.application_id else None
        subject, body = _compose(ctx, row, incident.reason, incident.deadline, language)
        incident_id = incident.id
    try:
        mailer.send_mail(ctx.settings, to=row.mail_to, subject=subject, body=body)
        error = None
    except EcertError as exc:
        error = exc.message
    with ctx.transaction() as session:
        ops.finish_incident_mail(session, row_id, delivered=error is None, now=ctx.clock(), error=error)
        audit.append(
            session,
            actor="system",
            event="incident.subscriber_notified" if error is None else "incident.notice_failed",
            subject=row.serial_hex,
            details={
                "incident": incident_id,
                "ca": row.ca_label,
                "to": row.mail_to,
                **({"error": error[:300]} if error else {}),
            },
            now=ctx.clock(),
        )
    return error is None


def _incident_of(session: Session, row_id: int) -> int:
    found = ops.incident_of(session, row_id)
    assert found is not None
    return found


def notify_subscribers(ctx: Context, incident_id: int | None = None) -> tuple[int, int]:
    """Send the incident mail still due (first attempts, and failed ones after a pause); (sent, failed)."""
    with ctx.read() as session:
        due = ops.mail_due_rows(session, ctx.clock())
        if incident_id is not None:
            wanted = {r.id for r in ops.affected_rows(session, incident_id)}
            due = [r for r in due if r in wanted]
    sent = failed = 0
    for row_id in due:
        outcome = _mail_one(ctx, row_id)
        sent += outcome is True
        failed += outcome is False
    return sent, failed


# --- progress and the deadline ---------------------------------------------------------------------


def _track_one(s: Session, row: AffectedRow, since: datetime, exclude: set[int], now: datetime) -> None:
    if row.cert_revoked_at is not None:
        ops.move_affected(s, row.id, row.state, AffectedAction.REVOKED, now=now, revoked_at=row.cert_revoked_at)
    elif row.not_after <= now:
        ops.move_affected(s, row.id, row.state, AffectedAction.EXPIRED, now=now)
    elif row.state == AffectedState.PENDING:
        new_id = ops.replacement_for(s, row.certificate_id, since=since, exclude=exclude)
        if new_id is not None:
            ops.move_affected(s, row.id, row.state, AffectedAction.REPLACED, now=now, replaced_by_id=new_id)


def refresh_progress(ctx: Context, incident_id: int) -> None:
    """Bring an open incident's certificates up to date: replaced by the subscriber, revoked, or expired."""
    now = ctx.clock()
    with ctx.transaction() as session:
        incident = ops.get_incident(session, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}", value=incident_id)
        if incident.state != IncidentState.OPEN:
            return
        exclude = ops.incident_certificate_ids(session, incident_id)
        for row in ops.affected_rows(session, incident_id, states=[s.value for s in OPEN_AFFECTED_STATES]):
            _track_one(session, row, incident.opened_at, exclude, now)


def _revoke_one(ctx: Context, row: AffectedRow, incident_id: int, reason: str | None) -> bool:
    try:
        revocation.revoke_certificate(
            ctx, ca_label=row.ca_label, serial_hex=row.serial_hex, reason=reason, actor=f"incident:{incident_id}"
        )
    except Conflict:
        pass  # revoked meanwhile (by the subscriber, or by another worker): the certificate is revoked all the same
    except EcertError as exc:
        with ctx.transaction() as session:
            ops.record_affected_error(session, row.id, exc.message, ctx.clock())
        _log.warning("incident %s: revoking %s failed: %s", incident_id, row.serial_hex, exc.message)
        return False
    now = ctx.clock()
    with ctx.transaction() as session:
        ops.move_affected(session, row.id, row.state, AffectedAction.REVOKED, now=now, revoked_at=now, error=None)
    return True


def revoke_due(ctx: Context) -> list[str]:
    """At each open incident's deadline, revoke every certificate still unrevoked; returns their serials."""
    with ctx.read() as session:
        due = ops.due_incidents(session, ctx.clock())
    revoked: list[str] = []
    for incident_id in due:
        refresh_progress(ctx, incident_id)
        with ctx.read() as session:
            incident = ops.get_incident(session, incident_id)
            assert incident is not None
            rows = ops.affected_rows(session, incident_id, states=[s.value for s in OPEN_AFFECTED_STATES])
        done = [row.serial_hex for row in rows if _revoke_one(ctx, row, incident_id, incident.revocation_reason)]
        if done:
            with ctx.transaction() as session:
                audit.append(
                    session,
                    actor="system",
                    event="incident.deadline_revocations",
                    subject=f"incident:{incident_id}",
                    details={"revoked": len(done), "left": len(rows) - len(done), "reason": incident.revocation_reason},
                    now=ctx.clock(),
                )
        revoked += done
    return revoked


def track_open(ctx: Context) -> None:
    """The jobs' pass over open incidents: progress first, then the mail still due."""
    with ctx.read() as session:
        open_ids = ops.open_incident_ids(session)
    for incident_id in open_ids:
        refresh_progress(ctx, incident_id)
    if open_ids:
        notify_subscribers(ctx)


# --- operator views --------------------------------------------------------------------------------


def show_incident(ctx: Context, incident_id: int) -> IncidentView:
    """An incident with its certificates and progress (brought up to date first)."""
    refresh_progress(ctx, incident_id)
    with ctx.read() as session:
        incident = ops.get_incident(session, incident_id)
        assert incident is not None
        rows = ops.affected_rows(session, incident_id)
    return IncidentView(
        incident.id,
        incident.reason,
        incident.state,
        incident.aware_at,
        incident.deadline,
        incident.revocation_reason,
        dict(incident.selection),
        _progress(rows),
        tuple(rows),
    )


def list_incidents(ctx: Context) -> list[IncidentView]:
    with ctx.read() as session:
        found = ops.list_incidents(session)
    return [
        IncidentView(
            i.id,
            i.reason,
            i.state,
            i.aware_at,
            i.deadline,
            i.revocation_reason,
            dict(i.selection),
            Progress(**{k: v for k, v in counts.items() if k in Progress.__dataclass_fields__}),
        )
        for i, counts in found
    ]


def close_incident(ctx: Context, incident_id: int, *, actor: str) -> IncidentView:
    """Close an incident once nothing is left to revoke; refuses while certificates are still unrevoked."""
    view = show_incident(ctx, incident_id)
    if view.state != IncidentState.OPEN:
        raise Conflict(f"incident {incident_id} is already {view.state}", value=incident_id)
    left = view.progress.pending + view.progress.replaced
    if left:
        raise Conflict(
            f"incident {incident_id} still has {left} certificate(s) to revoke (deadline "
            f"{view.deadline:%d/%m/%Y %H:%M} UTC); they are revoked at the deadline",
            rule="BR 4.9.1.1",
            value=left,
        )
    now = ctx.clock()
    with ctx.transaction() as session:
        if not ops.close_incident(session, incident_id, actor=actor, now=now):
            raise Conflict(f"incident {incident_id} was closed meanwhile", value=incident_id)
        audit.append(
            session,
            actor=actor,
            event="incident.closed",
            subject=f"incident:{incident_id}",
            details=asdict(view.progress),
            now=now,
        )
    return show_incident(ctx, incident_id)
