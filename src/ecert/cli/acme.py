"""`ecert-ca acme`: the operator's side of the ACME front door (EAB credentials for approved applications)."""

from __future__ import annotations

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(help="ACME (RFC 8555): External Account Binding credentials for applications.", no_args_is_help=True)
eab_app = typer.Typer(help="External Account Binding credentials (RFC 8555 7.3.4).", no_args_is_help=True)
app.add_typer(eab_app, name="eab")


@eab_app.command("new")
def eab_new(
    reference: str = typer.Argument(..., help="The application's reference number."), json_out: JsonOpt = False
) -> None:
    """Make a credential the subscriber's ACME client binds once to its account key; the MAC key is shown once."""
    from ..services.acme_accounts import make_eab

    with _context(acme_secret=True) as ctx:
        made = make_eab(ctx, reference, wrap_secret=ctx.acme_secret, actor="operator:cli")
    if json_out:
        output.emit_json(
            "acme-eab",
            {
                "reference_number": made.reference_number,
                "kid": made.kid,
                "hmac_key": made.hmac_key,
                "expires_at": made.expires_at.isoformat(),
            },
        )
        return
    print(
        f"EAB credential for application {made.reference_number} (shown once; unused, it expires "
        f"{made.expires_at.isoformat()})"
    )
    print(f"  kid:      {made.kid}")
    print(f"  HMAC key: {made.hmac_key}")
    print(f"  certbot:  certbot register --eab-kid {made.kid} --eab-hmac-key {made.hmac_key} --server <directory URL>")
