"""Signed checkpoints of the audit chain: written on a schedule and at shutdown, checked by `audit verify`.

A checkpoint says "at T the chain had N rows ending in hash H", signed with the instance's checkpoint key
and appended to a file outside the database (store/checkpoints.py). `audit verify` then refuses a chain
that no longer reaches H at row N: an emptied table or rows cut from the end no longer pass (BR 5.4.4).
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from ..core.errors import KeyBackendError
from ..signer import checkpoint as signer_checkpoint
from ..store import audit
from ..store.checkpoints import (
    Checkpoint,
    append_checkpoint,
    chain_head,
    checkpoint_dir,
    latest_checkpoint,
    read_text_0600,
    write_text_0600,
)
from .context import Context

__all__ = ["AuditReport", "verify_log", "write_checkpoint", "write_checkpoint_quietly"]

_log = logging.getLogger("ecert.audit")
_REF_FILE = "checkpoint-key.ref"
_PEM_FILE = "checkpoint-key.pem"
KEY_WAIT_SECONDS = 10.0  # how long a worker waits for another worker's new key to be written out


@dataclass(frozen=True)
class AuditReport:
    """What `audit verify` found; ``reason`` is a sentence for the operator when ``ok`` is False."""

    ok: bool
    rows_checked: int
    head_id: int | None
    head_hash: str | None
    first_bad_id: int | None = None
    reason: str | None = None
    checkpoint: Checkpoint | None = None


def _known_key(directory: Path) -> tuple[str, bytes] | None:
    ref = read_text_0600(directory / _REF_FILE)
    pem = read_text_0600(directory / _PEM_FILE)
    return (ref.strip(), pem.encode()) if ref is not None and pem is not None else None


def _checkpoint_key(ctx: Context, directory: Path) -> tuple[str, bytes]:
    """The checkpoint key's reference and public PEM, creating the key (audited) on first use."""
    known = _known_key(directory)
    if known is not None:
        return known
    try:
        key_ref = ctx.keys.create_key(signer_checkpoint.CHECKPOINT_KEY_LABEL, signer_checkpoint.CHECKPOINT_KEY_SPEC)
    except KeyBackendError:
        return _wait_for_other_creator(directory)
    public = signer_checkpoint.public_pem(ctx.keys, key_ref)
    write_text_0600(directory / _PEM_FILE, public.decode())
    write_text_0600(directory / _REF_FILE, key_ref + "\n")
    with ctx.transaction() as session:
        audit.append(
            session,
            actor="system",
            event="audit.checkpoint_key.created",
            subject=key_ref,
            details={"key_id": signer_checkpoint.key_id(public)},
            now=ctx.clock(),
        )
    return key_ref, public


def _wait_for_other_creator(directory: Path) -> tuple[str, bytes]:
    """Another worker made the key a moment ago (the backend refused a second one): read what it wrote."""
    deadline = time.monotonic() + KEY_WAIT_SECONDS
    while (known := _known_key(directory)) is None:
        if time.monotonic() > deadline:
            raise KeyBackendError(
                "the audit checkpoint key exists but its public half was never written",
                value=str(directory / _PEM_FILE),
            )
        time.sleep(0.05)
    return known


def write_checkpoint(ctx: Context, *, only_if_changed: bool = True) -> Checkpoint | None:
    """Sign the chain's head now and append it to the checkpoint file; None if nothing changed since the last."""
    directory = checkpoint_dir(ctx.settings.data_dir)
    key_ref, public = _checkpoint_key(ctx, directory)  # first: creating the key adds a row
    with ctx.read() as session:
        head = chain_head(session)
    latest = latest_checkpoint(directory)
    if only_if_changed and latest is not None and (latest.rows, latest.head_hash) == (head.rows, head.head_hash):
        return None
    unsigned = Checkpoint(
        head.rows, head.head_id, head.head_hash, ctx.clock().isoformat(), signer_checkpoint.key_id(public), ""
    )
    signature = signer_checkpoint.sign(ctx.keys, key_ref, unsigned.payload())
    signed = replace(unsigned, signature=base64.b64encode(signature).decode())
    append_checkpoint(directory, signed)
    return signed


def write_checkpoint_quietly(ctx: Context) -> None:
    """For shutdown hooks: write a checkpoint if the chain moved; log (never raise) if that is impossible."""
    try:
        write_checkpoint(ctx)
    except Exception:  # noqa: BLE001 - a process going down must still go down
        _log.exception("could not write the audit checkpoint at shutdown")


def _signature_problem(directory: Path, checkpoint: Checkpoint) -> str | None:
    """Why the checkpoint cannot be trusted, or None if its signature verifies with the kept public key."""
    pem = read_text_0600(directory / _PEM_FILE)
    if pem is None:
        return f"the checkpoint key's public half ({directory / _PEM_FILE}) is missing"
    if signer_checkpoint.key_id(pem.encode()) != checkpoint.key_id:
        return "the latest checkpoint was signed by another key than the one kept beside it"
    try:
        signer_checkpoint.verify(pem.encode(), checkpoint.payload(), base64.b64decode(checkpoint.signature))
    except (InvalidSignature, ValueError):
        return "the latest checkpoint's signature does not verify: the checkpoint file was altered"
    return None


def _cut_sentence(result: audit.AuditVerification, cp: Checkpoint) -> str:
    return (
        f"the audit log has {result.rows_checked} rows, but the checkpoint signed at {cp.at} counted {cp.rows} "
        f"rows ending in row {cp.head_id} (hash {str(cp.head_hash)[:16]}...): rows were removed from the log"
    )


def _against_checkpoint(ctx: Context, cp: Checkpoint) -> AuditReport:
    with ctx.read() as session:
        result = audit.verify_chain(
            session, known_head=cp.head_hash if cp.rows else None, known_rows=cp.rows if cp.rows else None
        )
    reason = result.reason
    if not result.ok and result.first_bad_id is None:
        reason = _cut_sentence(result, cp)
    elif not result.ok and reason and reason.startswith("the known head is row"):
        reason = f"{reason}: the chain before the checkpoint signed at {cp.at} was rebuilt"
    return AuditReport(
        result.ok, result.rows_checked, result.head_id, result.head_hash, result.first_bad_id, reason, cp
    )


def verify_log(ctx: Context, *, known_head: str | None = None) -> AuditReport:
    """Walk the chain, against the latest signed checkpoint if there is one and ``known_head`` if given."""
    directory = checkpoint_dir(ctx.settings.data_dir)
    cp = latest_checkpoint(directory)
    if cp is not None:
        problem = _signature_problem(directory, cp)
        if problem is not None:
            return AuditReport(False, 0, None, None, None, problem, cp)
        report = _against_checkpoint(ctx, cp)
        if not report.ok or known_head is None:
            return report
    with ctx.read() as session:
        result = audit.verify_chain(session, known_head=known_head)
    return AuditReport(
        result.ok, result.rows_checked, result.head_id, result.head_hash, result.first_bad_id, result.reason, cp
    )
