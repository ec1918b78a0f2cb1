"""Signed checkpoints of the audit chain, kept outside the database in an append-only file.

The hash chain proves that no row inside it was changed, but a chain cut short (or emptied) is still a
valid chain. A checkpoint records how long the chain was and its newest hash at one moment; because it
lives in a file beside the CA keys and not in the database, whoever can rewrite the table cannot also
make the checkpoints disappear by the same means (BR 5.4.4: audit logs protected from deletion).

Files: ``<data_dir>/audit/checkpoints.jsonl`` (one JSON object a line, only ever appended, mode 0600, the
directory 0700) and the checkpoint key's public half ``checkpoint-key.pem`` with its ``checkpoint-key.ref``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .models import AuditEvent

__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoint",
    "ChainHead",
    "append_checkpoint",
    "chain_head",
    "checkpoint_dir",
    "latest_checkpoint",
    "read_text_0600",
    "write_text_0600",
]

CHECKPOINT_FILE = "checkpoints.jsonl"


@dataclass(frozen=True)
class ChainHead:
    """The audit chain as it stands: how many rows, the newest row's id and hash (None when empty)."""

    rows: int
    head_id: int | None
    head_hash: str | None


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement "at ``at`` the chain had ``rows`` rows ending in ``head_hash``"."""

    rows: int
    head_id: int | None
    head_hash: str | None
    at: str  # ISO 8601, UTC
    key_id: str  # SHA-256 of the signing key's SubjectPublicKeyInfo, hex
    signature: str  # base64 of the ECDSA signature over :meth:`payload`

    def payload(self) -> bytes:
        """The exact bytes signed: canonical JSON of everything but the signature."""
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def chain_head(session: Session) -> ChainHead:
    """Count the rows and read the newest one in one snapshot."""
    audit.flush_pending(session)
    rows = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    last = session.execute(select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).first()
    return ChainHead(int(rows), last.id if last else None, last.hash if last else None)


def checkpoint_dir(data_dir: Path) -> Path:
    """``<data_dir>/audit``, created 0700 (it sits beside ``keys/``, not inside the database)."""
    path = data_dir / "audit"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def append_checkpoint(directory: Path, checkpoint: Checkpoint) -> None:
    """Append one line and fsync it: the file is opened O_APPEND and never rewritten."""
    fd = os.open(directory / CHECKPOINT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, json.dumps(asdict(checkpoint), sort_keys=True).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The last complete line of the checkpoint file (a line torn by a crash is passed over), or None."""
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        return None
    for line in reversed(path.read_bytes().splitlines()):
        try:
            return Checkpoint(**json.loads(line))
        except (ValueError, TypeError):
            continue
    return None


def write_text_0600(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 and all of ``text`` at once, refusing to replace an existing file.

    Written to a private temporary name and linked into place, so a reader never sees it half written.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def read_text_0600(path: Path) -> str | None:
    """The text of ``path`` or None if it does not exist."""
    return path.read_text() if path.exists() else None
