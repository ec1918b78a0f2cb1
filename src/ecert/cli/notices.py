"""`ecert-ca notices`: the expiry notices the jobs sent (or could not send), and a contact's mail language."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(help="Expiry notices: sent 30, 14 and 3 days before a certificate expires.", no_args_is_help=True)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100, json_out: JsonOpt = False
) -> None:
    """Every expiry notice: certificate, threshold, recipient, language, whether the relay took it."""
    from ..services.notices import list_notices

    with _context() as ctx:
        rows = list_notices(ctx, limit=limit)
    data = [
        {
            "serial": r.serial_hex,
            "ca": r.ca_label,
            "days": r.threshold_days,
            "state": r.state,
            "to": r.recipient,
            "language": r.language,
            "attempts": r.attempts,
            "claimed_at": r.claimed_at,
            "sent_at": r.sent_at,
            "error": r.error,
        }
        for r in rows
    ]
    if json_out:
        output.emit_json("notices", data)
        return
    output.table(
        "Expiry notices",
        ("serial", "CA", "days", "state", "to", "language", "sent", "error"),
        [(d["serial"], d["ca"], d["days"], d["state"], d["to"], d["language"], d["sent_at"], d["error"]) for d in data],
    )


@app.command("language")
def language(
    reference: Annotated[str, typer.Argument(help="The application's Reference Number.")],
    lang: Annotated[str, typer.Argument(help="en, zh_HK, or both (the contact's language is unknown).")],
) -> None:
    """Set the language an application's contact reads notices in; 'both' sends English and Chinese."""
    from ..services.notices import remember_language

    with _context() as ctx:
        remember_language(ctx, reference, None if lang == "both" else lang, actor="operator")
    output.console().print(f"Notices for {reference} go out in {'English and Chinese' if lang == 'both' else lang}.")
