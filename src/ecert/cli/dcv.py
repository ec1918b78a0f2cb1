"""`ecert-ca dcv`: the operator's own domain validations (start, check, list)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(
    help="Operator-held domain validations (DNS method) that cover subscribers' names.", no_args_is_help=True
)


@app.command("start")
def start(domain: str, json_out: JsonOpt = False) -> None:
    """Show the TXT record to publish for DOMAIN (a Validation Code valid for 30 days)."""
    from ..services.operator_dcv import start_operator_validation

    with _context() as ctx:
        ch = start_operator_validation(ctx, domain, actor="operator")
    data = {
        "domain": ch.domain,
        "txt_hosts": list(ch.txt_hosts),
        "txt_value": ch.txt_value,
        "expires_at": ch.expires_at,
    }
    if json_out:
        output.emit_json("dcv-start", data)
    else:
        output.console().print(
            f"Publish a TXT record at {' or '.join(ch.txt_hosts)} with the value\n  "
            f"{ch.txt_value}\nthen run `ecert-ca dcv check {ch.domain}` "
            f"(before {ch.expires_at:%d/%m/%Y})."
        )


@app.command("check")
def check(
    domain: str,
    for_application: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="The application (reference number) of the organisation this namespace belongs to: "
            "its ACME accounts and direct issuance may then take any name under DOMAIN.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Look the TXT record up now; on success every name under DOMAIN skips the subscriber's DCV step."""
    from ..services.operator_dcv import check_operator_validation

    with _context() as ctx:
        held = check_operator_validation(ctx, domain, actor="operator", for_application=for_application)
    data = {
        "domain": held.domain,
        "method": held.method,
        "validated_at": held.validated_at,
        "reusable_until": held.reusable_until,
    }
    output.emit_json("dcv-held", data) if json_out else output.fields("Operator-held validation", data)


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Operator-held validations still inside the BR 4.2.1 reuse period."""
    from ..services.operator_dcv import list_operator_validations

    with _context() as ctx:
        rows = list_operator_validations(ctx)
    data = [
        {"domain": r.domain, "method": r.method, "validated_at": r.validated_at, "reusable_until": r.reusable_until}
        for r in rows
    ]
    if json_out:
        output.emit_json("dcv-list", data)
    else:
        output.table(
            "Operator-held validations",
            ("domain", "method", "validated", "reusable until"),
            [(d["domain"], d["method"], d["validated_at"], d["reusable_until"]) for d in data],
        )
