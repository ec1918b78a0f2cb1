"""`ecert-ca ct`: the Certificate Transparency logs this CA submits to, and how each last answered."""

from __future__ import annotations

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(help="Certificate Transparency: the configured logs and their last results.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Certificate Transparency (RFC 6962)."""


@app.command("logs")
def ct_logs(json_out: JsonOpt = False) -> None:
    """The logs of the configured log list (state, temporal interval) and the last result of each."""
    from ..services.transparency import log_overview

    with _context() as ctx:
        found = log_overview(ctx)
    if json_out:
        output.emit_json(
            "ct-logs",
            {"enabled": found.enabled, "log_list": found.log_list, "logs": [log.__dict__ for log in found.logs]},
        )
        return
    state = "on" if found.enabled else "off (ECERT_CT_ENABLED=false): certificates carry no SCTs"
    output.console().print(f"Certificate Transparency is {state}; log list: {found.log_list or 'none configured'}")
    rows = [
        (
            log.name,
            log.operator,
            log.state,
            log.interval,
            log.url,
            _last(log.last_ok, log.last_error),
            log.last_at,
            "" if log.last_ms is None else f"{log.last_ms} ms",
            f"{log.failures}/{log.submissions}",
        )
        for log in found.logs
    ]
    output.table(
        "CT logs",
        ("log", "operator", "state", "notAfter from/to", "url", "last result", "at", "took", "failed/sent"),
        rows,
    )


def _last(ok: bool | None, error: str | None) -> str:
    if ok is None:
        return "never used"
    return "ok" if ok else f"failed: {error or 'unknown'}"
