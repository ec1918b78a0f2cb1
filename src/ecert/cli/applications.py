"""`ecert-ca application ...`: register an approved application and print its PIN envelope; show one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import output

__all__ = ["app"]

app = typer.Typer(help="Subscriber applications approved by the RA.", no_args_is_help=True)


def _write_private(path: Path, text: str, force: bool) -> None:
    """Write 0600 (the envelope holds the PIN); never overwrite without --force."""
    if path.exists() and not force:
        output.fail(f"{path} exists; not overwriting (use --force)")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _operator() -> str:
    return f"operator:{os.environ.get('USER', 'cli')}"


def _write_envelope(path: Path, reference: str, pin: str, server_name: str, org: str, *, reissued: bool) -> None:
    from ..services.pin_envelope import render_pin_envelope_html

    _write_private(path, render_pin_envelope_html(reference, pin, server_name, org, reissued=reissued), True)


@app.command("add")
def add(
    server_name: Annotated[str, typer.Option(help="The server name (Unicode or A-labels).")],
    org_en: Annotated[str, typer.Option("--org-en", help="Organisation name in English.")],
    reg_doc_number: Annotated[str, typer.Option(help="Registration document number.")],
    rep_email: Annotated[str, typer.Option(help="The Authorised Representative's e-mail.")],
    envelope: Annotated[Path, typer.Option(help="Where to write the printable PIN envelope (HTML, mode 0600).")],
    cert_type: Annotated[str, typer.Option(help="server, wildcard, multi, ev or ev_multi.")] = "server",
    additional: Annotated[list[str] | None, typer.Option("--additional", help="An additional name (repeat).")] = None,
    org_zh: Annotated[str | None, typer.Option("--org-zh", help="Organisation name in Chinese.")] = None,
    branch_en: Annotated[str | None, typer.Option("--branch-en")] = None,
    branch_zh: Annotated[str | None, typer.Option("--branch-zh")] = None,
    reg_doc_type: Annotated[str, typer.Option(help="br, ci or other.")] = "br",
    years: Annotated[int, typer.Option(help="Subscription period in years (1-3).")] = 1,
    government: Annotated[bool, typer.Option("--government", help="A government bureau or department.")] = False,
    high_risk_reviewed: Annotated[
        bool, typer.Option("--high-risk-reviewed", help="A person reviewed names flagged as high risk (BR 4.2.1).")
    ] = False,
    business_category: Annotated[str | None, typer.Option(help="EV: business category.")] = None,
    jurisdiction_country: Annotated[str | None, typer.Option(help="EV: jurisdiction country (ISO 3166).")] = None,
    registration_number: Annotated[str | None, typer.Option(help="EV: registration number.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the envelope file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (no PIN).")] = False,
) -> None:
    """Register an application; writes the PIN envelope and prints the reference number (never the PIN).

    A refused registration (bad name, missing EV field...) is audited as ``application.refused``.
    """
    from pydantic import ValidationError

    from ..services import applications as apps
    from .ca import _context

    if envelope.exists() and not force:
        output.fail(f"{envelope} exists; not overwriting (use --force)")
    raw = dict(
        server_name=server_name,
        additional_names=list(additional or []),
        cert_type=cert_type,
        org_name_en=org_en,
        org_name_zh=org_zh,
        branch_name_en=branch_en,
        branch_name_zh=branch_zh,
        reg_doc_type=reg_doc_type,
        reg_doc_number=reg_doc_number,
        subscription_years=years,
        rep_email=rep_email,
        is_government=government,
        high_risk_reviewed=high_risk_reviewed,
        business_category=business_category,
        jurisdiction_country=jurisdiction_country,
        registration_number=registration_number,
    )
    with _context() as ctx:
        try:
            reg = apps.submit_application(ctx, raw, actor=_operator())
        except ValidationError as exc:
            first = exc.errors()[0]
            output.fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}", code=2)
            return
    _write_envelope(envelope, reg.reference_number, reg.pin, reg.server_name, reg.org_name_en, reissued=False)
    if json_out:
        output.emit_json(
            "application",
            {
                "application_id": reg.application_id,
                "reference_number": reg.reference_number,
                "envelope": str(envelope),
                "mail_sent": reg.mail_sent,
                "mail_error": reg.mail_error,
            },
        )
        return
    output.console().print(
        f"Reference Number: {reg.reference_number}\nPIN envelope: {envelope} (print it, then "
        "delete the file)" + ("" if reg.mail_sent else f"\nThe invitation e-mail could not be sent: {reg.mail_error}")
    )


@app.command("show")
def show(
    reference: Annotated[str, typer.Argument(help="The 9-digit reference number.")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show an application and the step it is at."""
    from ..services import applications as apps
    from .ca import _context

    with _context() as ctx:
        view = apps.get_application_by_reference(ctx, reference)
    data = {
        "reference_number": view.reference_number,
        "server_name": view.server_name.unicode,
        "names": list(view.names),
        "type": view.cert_type_label,
        "organisation": view.org_name_en,
        "state": view.state,
        "next_step": view.next_step.value,
        "subscription_end": view.subscription_end.isoformat(),
    }
    output.emit_json("application", data) if json_out else output.fields(f"Application {reference}", data)


@app.command("list")
def list_(
    state: Annotated[
        str | None,
        typer.Option(help="Only this state (approved, confirmed, validated, issuing, issued, accepted, rejected)."),
    ] = None,
    locked: Annotated[bool, typer.Option("--locked", help="Only applications whose log-in is suspended.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List applications, newest first: state, and whether log-in is suspended (and until when)."""
    from ..services import applications as apps
    from .ca import _context

    with _context() as ctx:
        rows = apps.list_applications(ctx, state=state, locked=locked, limit=limit)
    if json_out:
        output.emit_json(
            "applications",
            [
                {
                    "reference_number": r.reference_number,
                    "server_name": r.server_name,
                    "organisation": r.org_name_en,
                    "state": r.state,
                    "locked_until": r.locked_until,
                    "failed_logins": r.failed_logins,
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )
        return
    output.table(
        "Applications",
        ("reference", "server name", "organisation", "state", "locked until"),
        [(r.reference_number, r.server_name, r.org_name_en, r.state, r.locked_until) for r in rows],
    )


@app.command("unlock")
def unlock(
    reference: Annotated[str, typer.Argument(help="The 9-digit reference number.")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lift a log-in suspension now (audited), e.g. after the holder called about their own mistyped PIN."""
    from ..services import applications as apps
    from .ca import _context

    with _context() as ctx:
        row = apps.unlock_application(ctx, reference, actor=_operator())
    if json_out:
        output.emit_json(
            "application",
            {"reference_number": row.reference_number, "state": row.state, "locked_until": row.locked_until},
        )
        return
    output.console().print(f"Log-in with {row.reference_number} is open again.")


@app.command("close")
def close(
    reference: Annotated[str, typer.Argument(help="The 9-digit reference number.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """End an application before its subscription end: no more certificates, its ACME accounts revoked (audited).

    Its certificates are not revoked by this: use `ecert-ca cert revoke SERIAL --reason ...` for that.
    """
    from ..services import applications as apps
    from .ca import _context

    with _context() as ctx:
        row = apps.close_application(ctx, reference, reason=reason, actor=_operator())
    if json_out:
        output.emit_json("application", {"reference_number": row.reference_number, "state": row.state})
        return
    output.console().print(f"Application {row.reference_number} is closed; its ACME accounts are revoked.")


@app.command("reissue-pin")
def reissue_pin(
    reference: Annotated[str, typer.Argument(help="The 9-digit reference number.")],
    envelope: Annotated[Path, typer.Option(help="Where to write the new PIN envelope (HTML, mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the envelope file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (no PIN).")] = False,
) -> None:
    """A new PIN in a new envelope: the old PIN stops working at once and open portal sessions end (audited)."""
    from ..services import applications as apps
    from .ca import _context

    if envelope.exists() and not force:
        output.fail(f"{envelope} exists; not overwriting (use --force)")
    with _context() as ctx:
        new = apps.reissue_pin(ctx, reference, actor=_operator())
    _write_envelope(envelope, new.reference_number, new.pin, new.server_name, new.org_name_en, reissued=True)
    if json_out:
        output.emit_json(
            "pin_reissued",
            {"reference_number": new.reference_number, "envelope": str(envelope), "sessions_ended": new.sessions_ended},
        )
        return
    output.console().print(
        f"New PIN envelope for {new.reference_number}: {envelope} (print it, then delete the "
        f"file). The old PIN no longer works; {new.sessions_ended} open session(s) ended."
    )
