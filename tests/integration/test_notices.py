"""Expiry notices as a subscriber receives them: 30, 14 and 3 days ahead, once each, in their language.

A real SMTP sink (aiosmtpd on 127.0.0.1) takes the mail; the CA's clock is frozen at named instants.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from ecert.services import jobs, notices
from ecert.services.context import Context
from ecert.store.models import AuditEvent

from .dcv_fixtures import SmtpSink
from .ops_fixtures import add_application, at, issue_for


def _mails(sink: SmtpSink) -> list[email.message.EmailMessage]:
    return [email.message_from_string(m["content"], policy=email.policy.default) for m in sink.messages]  # type: ignore[misc]


def _text(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_notices_at_30_14_and_3_days_once_each(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port)
    app_id = add_application(ctx, "A00000001")
    cert = issue_for(ctx, app_id)
    expiry = cert.not_after

    at(ctx, expiry - timedelta(days=31))
    assert notices.send_due_notices(ctx).sent == ()
    assert smtp_sink.messages == []

    for days in (30, 14, 3):
        at(ctx, expiry - timedelta(days=days))
        assert notices.send_due_notices(ctx).sent == (f"{cert.serial_hex}@{days}",)
        at(ctx, expiry - timedelta(days=days) + timedelta(hours=12))  # the next passes of the same day
        assert notices.send_due_notices(ctx).sent == ()
        assert jobs.run_once(ctx).ok

    at(ctx, expiry + timedelta(minutes=1))
    assert notices.send_due_notices(ctx).sent == ()
    mails = _mails(smtp_sink)
    assert len(mails) == 3
    assert all(m["To"] == "admin@example.com" for m in mails)
    assert "expires in" not in mails[0]["Subject"] and expiry.strftime("%d/%m/%Y") in mails[0]["Subject"]
    body = _text(mails[0])
    assert "in 30 days" in body and "尚餘 30 日" in body  # no language on file: English and Chinese in one mail
    assert "http://pki.ecert-demo.hk/portal/" in body and "A00000001" in body and cert.serial_hex in body
    assert "ACME" not in body
    assert "in 3 days" in _text(mails[2])
    with ctx.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "notice.expiry_sent")))
    assert [e.details["threshold_days"] for e in events] == [30, 14, 3]
    assert [(n.threshold_days, n.state) for n in notices.list_notices(ctx)] == [(3, "sent"), (14, "sent"), (30, "sent")]


def test_preferred_language_and_acme_line(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port, notice_acme_directory="https://pki.ecert-demo.hk/acme/directory")
    cert = issue_for(ctx, add_application(ctx, "A00000002"))
    notices.remember_language(ctx, "A00000002", "zh_HK", actor="operator:test")
    at(ctx, cert.not_after - timedelta(days=14))
    notices.send_due_notices(ctx)
    (mail,) = _mails(smtp_sink)
    body = _text(mail)
    assert "尚餘 14 日" in body and "e-Cert PIN" not in body and "Dear" not in body
    assert "https://pki.ecert-demo.hk/acme/directory" in body and "ACME" in body
    assert cert.not_after.strftime("%Y年").lstrip("0") in mail["Subject"]


def test_a_renewed_certificate_gets_no_notice(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port)
    app_id = add_application(ctx, "A00000003")
    old = issue_for(ctx, app_id, days=60)
    at(ctx, old.not_after - timedelta(days=20))
    issue_for(ctx, app_id, days=90)  # the subscriber renewed before the first notice
    assert notices.send_due_notices(ctx).sent == ()


def test_a_refused_mail_is_retried_later_and_audited(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port)
    cert = issue_for(ctx, add_application(ctx, "A00000004", contact="ceo@example.com"))  # the sink refuses ceo@
    at(ctx, cert.not_after - timedelta(days=30))
    report = notices.send_due_notices(ctx)
    assert report.failed == (f"{cert.serial_hex}@30",) and report.sent == ()
    assert notices.send_due_notices(ctx).failed == ()  # not retried at once: no flood against a broken relay
    with ctx.transaction() as s:
        from ecert.store.models import Application

        s.scalars(select(Application)).one().rep_email = "webmaster@example.com"
    at(ctx, cert.not_after - timedelta(days=30) + timedelta(minutes=20))
    assert notices.send_due_notices(ctx).sent == (f"{cert.serial_hex}@30",)
    with ctx.read() as s:
        kinds = list(s.scalars(select(AuditEvent.event).where(AuditEvent.event.like("notice.%"))))
    assert kinds == ["notice.expiry_failed", "notice.expiry_sent"]


def test_several_workers_on_postgresql_send_each_notice_once(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
    pg_url: str,
) -> None:
    first = make_demo_ctx(database_url=pg_url, smtp_port=smtp_sink.port)
    certs = [issue_for(first, add_application(first, f"A0000010{i}"), name=f"w{i}.example.com") for i in range(5)]
    workers = [first] + [make_demo_ctx(database_url=pg_url, smtp_port=smtp_sink.port) for _ in range(3)]
    instant = max(c.not_after for c in certs) - timedelta(days=14)
    for w in workers:
        at(w, instant)
    barrier = threading.Barrier(len(workers))
    reports: list[notices.NoticeReport] = []

    def run(ctx: Context) -> None:
        barrier.wait()
        reports.append(notices.send_due_notices(ctx))

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(s for r in reports for s in r.sent) == sorted(f"{c.serial_hex}@14" for c in certs)
    assert len(smtp_sink.messages) == 5
