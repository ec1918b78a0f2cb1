"""`ecert-ca incident`: open an incident over a set of certificates, follow it, close it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(
    help="Incidents: replace and revoke a set of certificates within BR 4.9.1.1's 5 days.", no_args_is_help=True
)

When = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d%z"],
        help="ISO 8601 with a zone, e.g. 2026-12-10T09:00+08:00.",
    ),
]


def _row(r: Any) -> dict[str, Any]:
    return {
        "serial": r.serial_hex,
        "ca": r.ca_label,
        "names": list(r.names),
        "reference": r.reference_number,
        "state": r.state,
        "replaced_by": r.replaced_by_id,
        "revoked_at": r.revoked_at,
        "mail": r.mail_state,
        "mail_to": r.mail_to,
        "error": r.error or r.mail_error,
    }


def _emit(view: Any, json_out: bool, *, kind: str) -> None:
    data = {
        "id": view.id,
        "reason": view.reason,
        "state": view.state,
        "aware_at": view.aware_at,
        "deadline": view.deadline,
        "revocation_reason": view.revocation_reason or "unspecified",
        "selection": view.selection,
        "progress": view.progress.__dict__,
        "certificates": [_row(r) for r in view.certificates],
        "unmatched_serials": list(view.unmatched_serials),
    }
    if json_out:
        output.emit_json(kind, data)
        return
    p = view.progress
    output.console().print(
        f"Incident {view.id} ({view.state}): {view.reason}\n"
        f"Revocation deadline {view.deadline:%d/%m/%Y %H:%M} UTC (BR 4.9.1.1), reason {data['revocation_reason']}\n"
        f"Progress: {p.replaced} replaced, {p.pending} pending, {p.revoked} revoked, {p.expired} expired; "
        f"subscribers mailed {p.mailed}, mail failed {p.mail_failed}, no contact on file {p.no_contact}"
    )
    output.table(
        "Affected certificates",
        ("serial", "CA", "names", "reference", "state", "mail", "error"),
        [
            (d["serial"], d["ca"], ", ".join(d["names"]), d["reference"], d["state"], d["mail"], d["error"])
            for d in data["certificates"]
        ],
    )
    if view.unmatched_serials:
        output.err_console().print("not in use (unknown, revoked or expired): " + ", ".join(view.unmatched_serials))
    if p.no_contact:
        output.err_console().print(f"{p.no_contact} certificate(s) have no contact on file: reach them yourself.")


@app.command("open")
def open_(
    reason: Annotated[str, typer.Option(help="What is wrong with these certificates (told to subscribers).")],
    ca: Annotated[list[str] | None, typer.Option(help="Issuing CA label (repeatable).")] = None,
    profile: Annotated[list[str] | None, typer.Option(help="Certificate profile, e.g. server (repeatable).")] = None,
    issued_from: When = None,
    issued_until: When = None,
    serials: Annotated[Path | None, typer.Option(help="File with one serial per line (# comments).")] = None,
    deadline: When = None,
    aware_at: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"],
            help="When the CA was made aware (BR 4.9.1.1 counts 5 days from it); default now.",
        ),
    ] = None,
    revocation_reason: Annotated[str, typer.Option(help="BR 7.2.2 reason at the deadline.")] = "superseded",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the matches; open nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Select certificates, e-mail their subscribers, mark them for replacement, schedule their revocation."""
    from ..services import incidents

    selection = incidents.Selection(
        ca_labels=tuple(ca or ()),
        profiles=tuple(profile or ()),
        issued_from=issued_from,
        issued_until=issued_until,
        serials=incidents.parse_serials(serials.read_text()) if serials else None,
    )
    with _context() as ctx:
        if dry_run:
            found = incidents.preview(ctx, selection)
            rows = [{"serial": c.serial_hex, "ca": c.ca_label, "contact": c.contact} for c in found]
            if json_out:
                output.emit_json("incident-preview", rows)
            else:
                output.table(
                    f"{len(rows)} certificate(s) would be affected",
                    ("serial", "CA", "contact"),
                    [(r["serial"], r["ca"], r["contact"]) for r in rows],
                )
            return
        view = incidents.open_incident(
            ctx,
            reason=reason,
            selection=selection,
            actor="operator",
            deadline=deadline,
            aware_at=aware_at,
            revocation_reason=revocation_reason or None,
        )
        _emit(view, json_out, kind="incident")


@app.command("show")
def show(incident_id: int, json_out: JsonOpt = False) -> None:
    """An incident's certificates and progress: replaced, pending, revoked."""
    from ..services import incidents

    with _context() as ctx:
        _emit(incidents.show_incident(ctx, incident_id), json_out, kind="incident")


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """Every incident, newest first."""
    from ..services import incidents

    with _context() as ctx:
        views = incidents.list_incidents(ctx)
    data = [
        {"id": v.id, "state": v.state, "reason": v.reason, "deadline": v.deadline, **v.progress.__dict__} for v in views
    ]
    if json_out:
        output.emit_json("incidents", data)
        return
    output.table(
        "Incidents",
        ("id", "state", "deadline", "pending", "replaced", "revoked", "reason"),
        [(d["id"], d["state"], d["deadline"], d["pending"], d["replaced"], d["revoked"], d["reason"]) for d in data],
    )


@app.command("close")
def close(incident_id: int, json_out: JsonOpt = False) -> None:
    """Close an incident once every certificate is revoked or expired."""
    from ..services import incidents

    with _context() as ctx:
        _emit(incidents.close_incident(ctx, incident_id, actor="operator"), json_out, kind="incident")
