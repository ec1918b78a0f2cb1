"""Expiry notices: the jobs tell each application's contact, 30, 14 and 3 days ahead, that a certificate
expires and how to renew it; once per threshold, whichever worker gets there first.

A notice is claimed in the database (one row per certificate and threshold), sent over SMTP outside any
transaction, then recorded with its audit event. A worker that dies between claim and send leaves a claim
another worker takes again after ``core.notices.RECLAIM_AFTER``, so a crash can repeat a mail but a
healthy pool of workers never does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from babel.dates import format_date

from ..core.errors import EcertError, NotFound, PolicyViolation
from ..core.notices import EXPIRY_THRESHOLD_DAYS, MailState, due_threshold
from ..settings import Settings
from ..store import audit, ops
from ..store.ops import ExpiringCertificate, NoticeRow
from . import mailer
from .context import Context

__all__ = ["LANGUAGES", "DueNotice", "NoticeReport", "compose", "list_notices", "remember_language", "send_due_notices"]

_log = logging.getLogger("ecert.notices")

LANGUAGES = ("en", "zh_HK")
BOTH = "both"  # the contact's language is not known: one mail in English and Traditional Chinese


@dataclass(frozen=True)
class DueNotice:
    certificate: ExpiringCertificate
    threshold_days: int
    language: str  # en | zh_HK | both


@dataclass(frozen=True)
class NoticeReport:
    """What one pass did: ``sent`` and ``failed`` name ``serial@days``."""

    sent: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


# --- the mail --------------------------------------------------------------------------------------


def _days_left(not_after: datetime, now: datetime) -> int:
    return max(1, math.ceil((not_after - now) / timedelta(days=1)))


def _english(c: ExpiringCertificate, days: int, portal: str, acme: str | None) -> tuple[str, str]:
    date = c.not_after.strftime("%d/%m/%Y")
    subject = f"Your e-Cert (Server) for {c.names[0] if c.names else c.serial_hex} expires on {date}"
    acme_line = (
        f"Or renew it automatically with an ACME client (such as certbot) using the directory\n{acme}\n\n"
        if acme
        else ""
    )
    body = (
        f"Dear Authorised Representative of {c.org_name},\n\n"
        f"The e-Cert (Server) certificate for {', '.join(c.names)} expires on {date} at "
        f"{c.not_after:%H:%M} UTC, in {days} days.\n"
        f"Serial number: {c.serial_hex}\nReference Number: {c.reference_number}\n\n"
        f"To renew it, log in to the portal at\n{portal}\nwith the Server Name, the Reference Number above "
        "and your e-Cert PIN, and submit a new Certificate Signing Request (CSR).\n\n"
        f"{acme_line}"
        "If you have renewed already, install the new certificate and ignore this message.\n"
    )
    return subject, body


def _chinese(c: ExpiringCertificate, days: int, portal: str, acme: str | None) -> tuple[str, str]:
    date = format_date(c.not_after.date(), "long", locale="zh_Hant_HK")
    subject = f"閣下的電子證書(伺服器) {c.names[0] if c.names else c.serial_hex} 將於{date}到期"
    acme_line = f"閣下亦可使用 ACME 用戶端（例如 certbot）透過以下目錄自動續期：\n{acme}\n\n" if acme else ""
    body = (
        f"{c.org_name} 的獲授權代表：\n\n"
        f"{'、'.join(c.names)} 的電子證書(伺服器)將於{date} {c.not_after:%H:%M}（協調世界時）到期，"
        f"尚餘 {days} 日。\n"
        f"序號：{c.serial_hex}\n參考編號：{c.reference_number}\n\n"
        f"如需續期，請前往\n{portal}\n以伺服器名稱、上述參考編號及閣下的電子證書密碼登入，"
        "並遞交新的證書簽署要求 (CSR)。\n\n"
        f"{acme_line}"
        "如閣下已完成續期，請安裝新證書並略過本通知。\n"
    )
    return subject, body


_CLOSING = "This is an automated message; please do not reply.\n此乃自動發出的訊息，請勿回覆。\n"


def compose(settings: Settings, notice: DueNotice, now: datetime) -> tuple[str, str]:
    """Subject and body of one expiry notice, in the contact's language or in both."""
    portal = settings.base_url.rstrip("/") + "/portal/"
    days = _days_left(notice.certificate.not_after, now)
    args = (notice.certificate, days, portal, settings.notice_acme_directory)
    if notice.language == "en":
        subject, body = _english(*args)
        return subject, body + "\nThis is an automated message; please do not reply.\n"
    if notice.language == "zh_HK":
        subject, body = _chinese(*args)
        return subject, body + "\n此乃自動發出的訊息，請勿回覆。\n"
    en_subject, en_body = _english(*args)
    zh_subject, zh_body = _chinese(*args)
    return f"{en_subject} / {zh_subject}", f"{en_body}\n{'-' * 40}\n\n{zh_body}\n{_CLOSING}"


# --- one pass --------------------------------------------------------------------------------------


def due_notices(ctx: Context, now: datetime) -> list[DueNotice]:
    """The notices due now that have not gone out yet (one read transaction)."""
    horizon = timedelta(days=max(EXPIRY_THRESHOLD_DAYS))
    with ctx.read() as session:
        expiring = ops.expiring_certificates(session, now=now, horizon=horizon)
        stored = ops.notice_states(session, (c.certificate_id for c in expiring))
        found: list[DueNotice] = []
        for cert in expiring:
            days = due_threshold(cert.not_after, now)
            if days is None or stored.get((cert.certificate_id, days)) == MailState.SENT.value:
                continue
            language = ops.get_contact_language(session, cert.application_id) or BOTH
            found.append(DueNotice(cert, days, language))
    return found


def _claim(ctx: Context, notice: DueNotice, now: datetime) -> int | None:
    with ctx.transaction() as session:
        return ops.claim_expiry_notice(
            session,
            certificate_id=notice.certificate.certificate_id,
            threshold_days=notice.threshold_days,
            recipient=notice.certificate.contact,
            language=notice.language,
            now=now,
        )


def _deliver(ctx: Context, notice: DueNotice, now: datetime) -> mailer.SentMail | str:
    subject, body = compose(ctx.settings, notice, now)
    try:
        return mailer.send_mail(ctx.settings, to=notice.certificate.contact, subject=subject, body=body)
    except EcertError as exc:
        return exc.message


def _record(ctx: Context, notice_id: int, notice: DueNotice, outcome: mailer.SentMail | str) -> bool:
    now = ctx.clock()
    delivered = isinstance(outcome, mailer.SentMail)
    message_id = outcome.message_id if isinstance(outcome, mailer.SentMail) else None
    cert = notice.certificate
    with ctx.transaction() as session:
        ops.finish_expiry_notice(
            session,
            notice_id,
            delivered=delivered,
            now=now,
            message_id=message_id,
            error=None if delivered else str(outcome),
        )
        audit.append(
            session,
            actor="system",
            event="notice.expiry_sent" if delivered else "notice.expiry_failed",
            subject=cert.serial_hex,
            details={
                "ca": cert.ca_label,
                "threshold_days": notice.threshold_days,
                "to": cert.contact,
                "language": notice.language,
                "not_after": cert.not_after.isoformat(),
                **({} if delivered else {"error": str(outcome)[:300]}),
            },
            now=now,
        )
    return delivered


def send_due_notices(ctx: Context) -> NoticeReport:
    """Send every expiry notice that is due now; a refused mail is retried on a later pass."""
    now = ctx.clock()
    sent: list[str] = []
    failed: list[str] = []
    for notice in due_notices(ctx, now):
        notice_id = _claim(ctx, notice, now)
        if notice_id is None:
            continue  # sent already, or another worker holds it
        label = f"{notice.certificate.serial_hex}@{notice.threshold_days}"
        if _record(ctx, notice_id, notice, _deliver(ctx, notice, now)):
            sent.append(label)
        else:
            _log.warning("expiry notice %s to %s was not sent", label, notice.certificate.contact)
            failed.append(label)
    return NoticeReport(tuple(sent), tuple(failed))


# --- operator views --------------------------------------------------------------------------------


def list_notices(ctx: Context, *, limit: int = 500) -> list[NoticeRow]:
    with ctx.read() as session:
        return ops.list_expiry_notices(session, limit=limit)


def remember_language(ctx: Context, reference_number: str, language: str | None, *, actor: str) -> None:
    """Record the language an application's contact reads mail in (None: unknown, so mail in both).

    The portal may call this when a subscriber picks a language; the operator can set it from the CLI.
    """
    if language is not None and language not in LANGUAGES:
        raise PolicyViolation(f"unknown mail language {language!r}; use one of {', '.join(LANGUAGES)}", value=language)
    now = ctx.clock()
    with ctx.transaction() as session:
        app_id = ops.application_id_by_reference(session, reference_number)
        if app_id is None:
            raise NotFound(f"no application with Reference Number {reference_number}", value=reference_number)
        ops.set_contact_language(session, app_id, language, now)
        audit.append(
            session,
            actor=actor,
            event="notice.language_set",
            subject=reference_number,
            details={"language": language or BOTH},
            now=now,
        )
