"""`ecert-ca audit`: verify the hash-chained audit log against its signed checkpoints, or write one now."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from . import output
from .ca import JsonOpt, _context

__all__ = ["app"]

app = typer.Typer(help="The hash-chained audit log and its signed checkpoints.", no_args_is_help=True)


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
