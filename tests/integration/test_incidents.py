"""Incidents as the operator runs them: select, tell the subscribers, follow replacement, revoke at the deadline.

Real SMTP sink on 127.0.0.1, the demo CA on SQLite (and PostgreSQL for the deadline pass), clock frozen.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from ecert.core.errors import Conflict, NotFound, PolicyViolation
from ecert.services import incidents, jobs, publication
from ecert.services.context import Context
from ecert.store import ops
from ecert.store.models import AuditEvent, Certificate

from .ca_fixtures import DEMO_BASE_URL, DEMO_ENV, build_demo_ctx
from .dcv_fixtures import SmtpSink
from .ops_fixtures import add_application, at, issue_for

VENV_BIN = Path(sys.executable).parent  # where this interpreter's console scripts are installed
REASON = "the certificates carry a misspelled stateOrProvinceName"


def _three(ctx: Context) -> tuple[Certificate, Certificate, Certificate]:
    """Two subscribers with a contact and one certificate issued directly (no contact on file); clock frozen."""
    at(ctx, ctx.clock())
    a = issue_for(ctx, add_application(ctx, "A00000001", contact="admin@a.example.com"), "www.a.example.com")
    b = issue_for(ctx, add_application(ctx, "A00000002", contact="webmaster@b.example.com"), "www.b.example.com")
    c = issue_for(ctx, None, "www.c.example.com")
    return a, b, c


def _selection(ctx: Context, first: Certificate) -> incidents.Selection:
    label = _label(ctx, first)
    return incidents.Selection(ca_labels=(label,), issued_from=first.not_before - timedelta(minutes=1))


def _label(ctx: Context, cert: Certificate) -> str:
    with ctx.read() as s:
        from ecert.store.models import CA

        ca = s.get(CA, cert.ca_id)
        assert ca is not None
        return ca.label


def _crl_reason(ctx: Context, cert: Certificate) -> x509.ReasonFlags | None:
    crl = x509.load_der_x509_crl(publication.latest_crl(ctx, _label(ctx, cert)).der)
    entry = crl.get_revoked_certificate_by_serial_number(int(cert.serial_hex, 16))
    assert entry is not None, f"{cert.serial_hex} is not on the CRL"
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def test_open_lists_marks_and_mails_the_subscribers(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port)
    a, b, c = _three(ctx)
    view = incidents.open_incident(ctx, reason=REASON, selection=_selection(ctx, a), actor="operator:alice")

    assert {r.serial_hex for r in view.certificates} == {a.serial_hex, b.serial_hex, c.serial_hex}
    assert view.progress == incidents.Progress(pending=3, mailed=2, no_contact=1)
    assert view.deadline == ctx.clock() + timedelta(days=5) - timedelta(hours=1)
    assert sorted(m["to"][0] for m in smtp_sink.messages) == ["admin@a.example.com", "webmaster@b.example.com"]
    parsed = email.message_from_string(smtp_sink.messages[0]["content"], policy=email.policy.default)
    mail = str(parsed.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert REASON in mail and "4.9.1.1" in mail and "http://pki.ecert-demo.hk/portal/" in mail
    with ctx.read() as s:
        assert all(ops.is_marked_for_replacement(s, x.id) for x in (a, b, c))
        opened = s.query(AuditEvent).filter(AuditEvent.event == "incident.opened").one()
    assert opened.actor == "operator:alice" and opened.details["certificates"] == 3
    incidents.notify_subscribers(ctx)  # a second pass sends nothing again
    assert len(smtp_sink.messages) == 2


def test_progress_and_revocation_at_the_deadline(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
    pg_url: str,
) -> None:
    ctx = make_demo_ctx(database_url=pg_url, smtp_port=smtp_sink.port)
    a, b, c = _three(ctx)
    opened_at = ctx.clock()
    view = incidents.open_incident(ctx, reason=REASON, selection=_selection(ctx, a), actor="operator:alice")
    assert view.id is not None

    at(ctx, opened_at + timedelta(days=1))
    with ctx.read() as s:
        app_a = s.get(Certificate, a.id).application_id  # type: ignore[union-attr]
    new_a = issue_for(ctx, app_a, "www.a.example.com")  # subscriber A replaces on day 2
    progress = incidents.show_incident(ctx, view.id).progress
    assert (progress.pending, progress.replaced, progress.revoked) == (2, 1, 0)
    with pytest.raises(Conflict) as refused:
        incidents.close_incident(ctx, view.id, actor="operator:alice")
    assert "3 certificate(s) to revoke" in str(refused.value)
    assert jobs.run_once(ctx).incident_revocations == ()  # not before the deadline

    at(ctx, view.deadline)
    report = jobs.run_once(ctx)
    assert sorted(report.incident_revocations) == sorted(x.serial_hex for x in (a, b, c))
    assert all(_crl_reason(ctx, x) is x509.ReasonFlags.superseded for x in (a, b, c))
    shown = incidents.show_incident(ctx, view.id)
    assert (shown.progress.pending, shown.progress.replaced, shown.progress.revoked) == (0, 0, 3)
    with ctx.read() as s:
        assert not ops.is_marked_for_replacement(s, a.id)
        assert not ops.is_marked_for_replacement(s, new_a.id)
        assert s.get(Certificate, new_a.id).revoked_at is None  # type: ignore[union-attr]
    closed = incidents.close_incident(ctx, view.id, actor="operator:alice")
    assert closed.state == "closed"


def test_operator_chosen_reason_and_serials_file(
    make_demo_ctx: Callable[..., Context],
    smtp_sink: SmtpSink,
) -> None:
    ctx = make_demo_ctx(smtp_port=smtp_sink.port)
    a, b, _ = _three(ctx)
    text = (
        f"# from the CPS review\n{':'.join(a.serial_hex[i : i + 2] for i in range(0, len(a.serial_hex), 2))}\n"
        f"0x{b.serial_hex.upper()}\n00ff00ff\n"
    )
    view = incidents.open_incident(
        ctx,
        reason=REASON,
        actor="operator:alice",
        selection=incidents.Selection(serials=incidents.parse_serials(text)),
        revocation_reason="privilegeWithdrawn",
    )
    assert {r.serial_hex for r in view.certificates} == {a.serial_hex, b.serial_hex}
    assert view.unmatched_serials == ("ff00ff",)
    at(ctx, view.deadline + timedelta(seconds=1))
    incidents.revoke_due(ctx)
    assert _crl_reason(ctx, a) is x509.ReasonFlags.privilege_withdrawn


@pytest.mark.parametrize(
    ("kwargs", "error", "rule"),
    [
        ({"deadline_after": timedelta(days=5, minutes=1)}, PolicyViolation, "BR 4.9.1.1"),
        ({"deadline_after": timedelta(days=4, hours=23, minutes=1)}, PolicyViolation, "BR 4.9.1.1"),  # no margin left
        ({"deadline_after": timedelta(days=3), "aware_before": timedelta(days=3)}, PolicyViolation, "BR 4.9.1.1"),
        ({"deadline_after": -timedelta(minutes=1)}, PolicyViolation, "BR 4.9.1.1"),
        ({"revocation_reason": "certificateHold"}, PolicyViolation, "BR 7.2.2"),
        ({"revocation_reason": "cACompromise"}, PolicyViolation, "BR 7.2.2"),
    ],
)
def test_refusals(
    make_demo_ctx: Callable[..., Context],
    kwargs: dict[str, object],
    error: type[Exception],
    rule: str,
) -> None:
    ctx = make_demo_ctx()
    a, _, _ = _three(ctx)
    now = ctx.clock()
    extra: dict[str, object] = {}
    if "deadline_after" in kwargs:
        extra["deadline"] = now + kwargs["deadline_after"]  # type: ignore[operator]
    if "aware_before" in kwargs:
        extra["aware_at"] = now - kwargs["aware_before"]  # type: ignore[operator]
    if "revocation_reason" in kwargs:
        extra["revocation_reason"] = kwargs["revocation_reason"]
    with pytest.raises(error) as caught:
        incidents.open_incident(ctx, reason=REASON, selection=_selection(ctx, a), actor="t", notify=False, **extra)  # type: ignore[arg-type]
    assert caught.value.rule == rule  # type: ignore[attr-defined]
    assert incidents.list_incidents(ctx) == []


def test_empty_and_unmatched_selections_are_refused(make_demo_ctx: Callable[..., Context]) -> None:
    ctx = make_demo_ctx()
    with pytest.raises(PolicyViolation):
        incidents.Selection()
    with pytest.raises(NotFound):
        incidents.open_incident(ctx, reason=REASON, selection=incidents.Selection(profiles=("ev",)), actor="t")


def test_cli_open_show_close_and_notices_list(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    ctx = build_demo_ctx(tmp_path / "data", smtp_port=smtp_sink.port)
    try:
        a, b, _ = _three(ctx)
        label = _label(ctx, a)
    finally:
        ctx.close()
    serials = tmp_path / "serials.txt"
    serials.write_text(f"{a.serial_hex}\n{b.serial_hex}\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "ECERT_DATA_DIR": str(tmp_path / "data"),
        "NO_COLOR": "1",
        "ECERT_BASE_URL": DEMO_BASE_URL,
        "ECERT_SMTP_PORT": str(smtp_sink.port),
        **DEMO_ENV,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "ecert-ca"), *args], env=env, capture_output=True, text=True, timeout=120)

    preview = cli("incident", "open", "--reason", REASON, "--ca", label, "--dry-run", "--json")
    assert preview.returncode == 0, preview.stderr
    assert len(json.loads(preview.stdout)["data"]) == 3
    too_late = cli(
        "incident", "open", "--reason", REASON, "--serials", str(serials), "--deadline", "2099-01-01T00:00+00:00"
    )
    assert too_late.returncode == 1 and "BR 4.9.1.1" in too_late.stderr
    opened = cli("incident", "open", "--reason", REASON, "--serials", str(serials), "--json")
    assert opened.returncode == 0, opened.stderr
    data = json.loads(opened.stdout)["data"]
    assert data["progress"]["pending"] == 2 and data["progress"]["mailed"] == 2
    shown = cli("incident", "show", str(data["id"]))
    assert "0 replaced, 2 pending, 0 revoked" in shown.stdout
    refused = cli("incident", "close", str(data["id"]))
    assert refused.returncode == 1 and "2 certificate(s) to revoke" in refused.stderr
    assert cli("notices", "list", "--json").returncode == 0
    assert cli("notices", "language", "A00000001", "zh_HK").returncode == 0
