"""`ecert-ca audit`: read the hash-chained audit log, verify it against its signed checkpoints, or sign one now."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import output
from .ca import JsonOpt, _context

if TYPE_CHECKING:
    from ..services.audit_log import AuditLine

__all__ = ["app"]

app = typer.Typer(help="The hash-chained audit log: read it, verify it, sign its head.", no_args_is_help=True)


def _checkpoint_json(cp: Any) -> dict[str, Any] | None:
    if cp is None:
        return None
    return {"at": cp.at, "rows": cp.rows, "head_id": cp.head_id, "head": cp.head_hash, "key_id": cp.key_id}


@app.command("verify")
def verify(
    known_head: Annotated[
        str | None, typer.Option(help="A head hash noted earlier: also required to be in the chain.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Walk the hash chain and compare it with the latest signed checkpoint; exit 4 if anything is wrong.

    An edited, deleted or reordered row, a gap in the row numbers, or a chain shorter than the latest
    checkpoint (rows cut from the end, an emptied table) all fail. Checkpoints are written by the jobs,
    at shutdown of `ecert-ca serve` and by `ecert-ca audit checkpoint`; no passphrase is needed here.
    """
    from ..services.audit_checkpoints import verify_log

    with _context() as ctx:
        report = verify_log(ctx, known_head=known_head)
    data = {
        "ok": report.ok,
        "rows_checked": report.rows_checked,
        "first_bad_id": report.first_bad_id,
        "reason": report.reason,
        "head": report.head_hash,
        "checkpoint": _checkpoint_json(report.checkpoint),
    }
    if json_out:
        output.emit_json("audit-verify", data)
    elif report.ok:
        cp = report.checkpoint
        against = (
            f"; matches the checkpoint signed at {cp.at} ({cp.rows} rows)"
            if cp is not None
            else "; no signed checkpoint yet, so rows cut from the end cannot be seen (run `ecert-ca audit checkpoint`)"
        )
        output.console().print(
            f"audit chain intact: {report.rows_checked} rows; head {report.head_hash}{against}", markup=False
        )
    else:
        where = f" at row {report.first_bad_id}" if report.first_bad_id is not None else ""
        output.console().print(f"audit chain BROKEN{where}: {report.reason}", markup=False)
    if not report.ok:
        raise SystemExit(4)


@app.command("checkpoint")
def checkpoint(json_out: JsonOpt = False) -> None:
    """Sign the chain's head now and append it to data/audit/checkpoints.jsonl (needs the key passphrase)."""
    from ..services.audit_checkpoints import write_checkpoint

    with _context() as ctx:
        cp = write_checkpoint(ctx, only_if_changed=False)
    assert cp is not None
    if json_out:
        output.emit_json("audit-checkpoint", _checkpoint_json(cp))
    else:
        output.console().print(
            f"checkpoint signed at {cp.at}: {cp.rows} rows, head {cp.head_hash}, key {cp.key_id[:16]}...", markup=False
        )


@app.command("show")
def show(
    event: Annotated[
        str | None, typer.Option(help="An event name (cert.issued), or a prefix ending in a dot (acme.).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="What the event is about: a reference number, a serial, a name.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who acted, as recorded (operator:cli, system, ...).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only events at or after this time (UTC).")] = None,
    before: Annotated[
        int | None, typer.Option(help="Only events older than this row id: the next page back.", min=1)
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.", min=1, max=1000)] = 50,
    json_out: JsonOpt = False,
) -> None:
    """The audit log's newest events first, narrowed by the options given (all must match)."""
    from ..services.audit_log import EventQuery, read_events

    since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since
    query = EventQuery(limit, event=event, subject=subject, actor=actor, since=since_utc, before_id=before)
    with _context() as ctx:
        lines = read_events(ctx, query)
    if json_out:
        output.emit_json("audit-events", [asdict(line) for line in lines])
        return
    for line in lines:  # a log reads as lines, one event each, as `git log --oneline` does
        print(_one_line(line))
    if len(lines) == limit:
        print(f"(more may be older: add --before {lines[-1].id})")


def _one_line(line: AuditLine) -> str:
    at = line.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    details = json.dumps(line.details, ensure_ascii=False, sort_keys=True)
    from ..core.text import printable

    return printable(f"{line.id:>7}  {at}  {line.actor}  {line.event}  {line.subject or '-'}  {details}")
