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
    high_risk_reviewed: Annotated[bool, typer.Option(
        "--high-risk-reviewed", help="A person reviewed names flagged as high risk (BR 4.2.1).")] = False,
    business_category: Annotated[str | None, typer.Option(help="EV: business category.")] = None,
    jurisdiction_country: Annotated[str | None, typer.Option(help="EV: jurisdiction country (ISO 3166).")] = None,
    registration_number: Annotated[str | None, typer.Option(help="EV: registration number.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the envelope file.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (no PIN).")] = False,
) -> None:
    """Register an application; writes the PIN envelope and prints the reference number (never the PIN)."""
    from pydantic import ValidationError

    from ..services import applications as apps
    from ..services.pin_envelope import render_pin_envelope_html
    from .ca import _context

    if envelope.exists() and not force:
        output.fail(f"{envelope} exists; not overwriting (use --force)")
    try:
        data = apps.ApplicationInput(
            server_name=server_name, additional_names=list(additional or []), cert_type=cert_type,
            org_name_en=org_en, org_name_zh=org_zh, branch_name_en=branch_en, branch_name_zh=branch_zh,
            reg_doc_type=reg_doc_type, reg_doc_number=reg_doc_number, subscription_years=years,
            rep_email=rep_email, is_government=government, high_risk_reviewed=high_risk_reviewed,
            business_category=business_category,
            jurisdiction_country=jurisdiction_country, registration_number=registration_number)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        output.fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}", code=2)
        return
    with _context() as ctx:
        reg = apps.register_application(ctx, data, actor=f"operator:{os.environ.get('USER', 'cli')}")
    _write_private(envelope, render_pin_envelope_html(reg.reference_number, reg.pin, data.server_name, org_en), True)
    if json_out:
        output.emit_json("application", {"application_id": reg.application_id,
                                         "reference_number": reg.reference_number,
                                         "envelope": str(envelope), "mail_sent": reg.mail_sent,
                                         "mail_error": reg.mail_error})
        return
    output.console().print(f"Reference Number: {reg.reference_number}\nPIN envelope: {envelope} (print it, then "
                           "delete the file)"
                           + ("" if reg.mail_sent else f"\nThe invitation e-mail could not be sent: {reg.mail_error}"))


@app.command("show")
def show(reference: Annotated[str, typer.Argument(help="The 9-digit reference number.")],
         json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an application and the step it is at."""
    from ..services import applications as apps
    from .ca import _context

    with _context() as ctx:
        view = apps.get_application_by_reference(ctx, reference)
    data = {"reference_number": view.reference_number, "server_name": view.server_name.unicode,
            "names": list(view.names), "type": view.cert_type_label, "organisation": view.org_name_en,
            "state": view.state, "next_step": view.next_step.value,
            "subscription_end": view.subscription_end.isoformat()}
    output.emit_json("application", data) if json_out else output.fields(f"Application {reference}", data)
