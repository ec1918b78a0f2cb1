"""The append-only, hash-chained audit log: appending events and verifying the chain.

Each row's hash is SHA-256 over a canonical JSON encoding of (prev_hash, at, actor, event, subject,
details), and each row names the previous row's hash, so an edited, deleted or reordered row breaks the
chain (BR 5.4.1 lists what a CA must log; 5.4.4 asks that logs be protected from modification and
deletion). The database adds a second fence: triggers refuse UPDATE and DELETE (migration 0001), and
``UNIQUE(prev_hash)`` stops two writers from chaining onto the same row.

Who writes the chain: on SQLite, this module, at the end of the transaction (the one writer holds the
database anyway). On PostgreSQL the transaction's events go to ``audit_inbox`` and the database chains them
inside COMMIT, under the one lock of the chain (migration 0013): the lock is then held for no round trip at
all, where holding it across four, each waiting for the process's GIL under load, queued every audited
write of every process behind it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.orm import Session, SessionTransaction

from ecert.core.errors import StorageFailure
from ecert.store.models import AuditEvent, AuditInboxRow

_AUDIT_LOG = cast(Table, AuditEvent.__table__)
_AUDIT_INBOX = cast(Table, AuditInboxRow.__table__)
# Built once: every audited action runs them, and building them cost more than running them.
_HEAD = select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
_CHAIN_INBOX = text("SELECT audit_chain_inbox()")

__all__ = [
    "AUDIT_LOCK_KEY",
    "GENESIS_HASH",
    "AuditVerification",
    "Entry",
    "append",
    "append_many",
    "compute_hash",
    "flush_pending",
    "has_pending",
    "verify_chain",
]

GENESIS_HASH = "0" * 64

# The pg_advisory_xact_lock key that serializes appends on PostgreSQL (taken by the database's
# audit_chain_inbox(), migration 0013): ASCII "ecertaud" as a signed 64-bit int.
AUDIT_LOCK_KEY = int.from_bytes(b"ecertaud", "big", signed=True)

# Words that mark a value as a secret; matched against the words of each key, at any depth.
_SECRET_WORDS = frozenset({"pin", "password", "passwd", "pwd", "passphrase", "secret", "token"})
_SECRET_PHRASES = ("private_key", "privatekey")


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of :func:`verify_chain`; ``first_bad_id`` is the first row that does not verify."""

    ok: bool
    rows_checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    head_id: int | None = field(default=None, compare=False)  # where the walk ended: the newest row
    head_hash: str | None = field(default=None, compare=False)

    def check(self) -> None:
        """Raise if the chain is broken, for callers that must not go on (style habit 2)."""
        if not self.ok:
            raise StorageFailure(f"audit log chain broken: {self.reason}", rule="BR 5.4.4", value=self.first_bad_id)


def _key_words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=4096)
def _names_a_secret(key: str) -> bool:
    """Whether a details key looks like it holds a secret; kept per key, since the same few dozen keys come back
    on every audited write, and splitting each into words again was two thirds of preparing an event
    (py-spy over bench/acme.py)."""
    words = _key_words(key)
    joined = "_".join(words)
    return bool(_SECRET_WORDS.intersection(words)) or any(p in joined for p in _SECRET_PHRASES)


def _refuse_secret_keys(details: Any, path: str = "details") -> None:
    """Raise ValueError if any key at any depth looks like it holds a secret.

    PINs, passwords, passphrases, private keys and tokens must never reach the audit log, which is
    kept for years and read by auditors (BR 5.4.1 logs events, not credentials). The path for the message is
    built only on the way down into a nested value: most values are plain, and every audited write pays this.
    """
    if isinstance(details, Mapping):
        for key, value in details.items():
            if _names_a_secret(str(key)):
                raise ValueError(f"audit details must not hold secrets: key {path}.{key} refused")
            if isinstance(value, _NESTED):
                _refuse_secret_keys(value, f"{path}.{key}")
    elif isinstance(details, list | tuple):
        for index, item in enumerate(details):
            if isinstance(item, _NESTED):
                _refuse_secret_keys(item, f"{path}[{index}]")


_NESTED = (Mapping, list, tuple)


def _refuse_floats(value: Any, path: str = "details") -> None:
    """Floats may come back from PostgreSQL's JSONB spelled differently, which would break the hash."""
    if isinstance(value, float):
        raise ValueError(f"audit details must not hold floats (use str or int): {path}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, _FLOAT_OR_NESTED):
                _refuse_floats(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, _FLOAT_OR_NESTED):
                _refuse_floats(item, f"{path}[{index}]")


_FLOAT_OR_NESTED = (float, Mapping, list)


def _normalize_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return details as the database will give them back (tuples become lists, keys strings)."""
    if details is None:
        return {}
    try:
        normalized = json.loads(json.dumps(details, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit details must be plain JSON: {exc}") from exc
    _refuse_floats(normalized)
    return normalized  # type: ignore[no-any-return]


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"audit time must be timezone-aware: {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def compute_hash(
    prev_hash: str, at: datetime, actor: str, event: str, subject: str | None, details: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) over the canonical encoding: JSON, sorted keys, compact, UTF-8, ISO time."""
    head, tail = canonical_halves(at, actor, event, subject, details)
    return hashlib.sha256((head + prev_hash + tail).encode("utf-8")).hexdigest()


def canonical_halves(
    at: datetime, actor: str, event: str, subject: str | None, details: Mapping[str, Any]
) -> tuple[str, str]:
    """The canonical encoding of an event before and after its predecessor's hash: ``head + prev_hash + tail``
    is the JSON document {actor, at, details, event, prev_hash, subject} with sorted keys, compact. Kept in
    halves so that PostgreSQL can finish the hash inside COMMIT, where the predecessor is known."""
    before = json.dumps(
        {"actor": actor, "at": _iso(at), "details": details, "event": event},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    after = json.dumps(subject, ensure_ascii=False)
    return before[:-1] + ',"prev_hash":"', '","subject":' + after + "}"


@dataclass(frozen=True)
class Entry:
    """One event for :func:`append_many`: what :func:`append` takes, as a value."""

    actor: str
    event: str
    subject: str | None
    details: Mapping[str, Any] | None
    at: datetime


@dataclass(frozen=True)
class _Prepared:
    """An entry checked and normalized: what is hashed and stored, ready before any lock is taken."""

    entry: Entry
    details: dict[str, Any]
    at: datetime

    def columns(self) -> dict[str, Any]:
        """What a chain row and an inbox row both store of the event."""
        entry = self.entry
        return {
            "at": self.at,
            "actor": entry.actor,
            "event": entry.event,
            "subject": entry.subject,
            "details": self.details,
        }

    def hash_after(self, prev_hash: str) -> str:
        entry = self.entry
        return compute_hash(prev_hash, self.at, entry.actor, entry.event, entry.subject, self.details)

    def halves(self) -> tuple[str, str]:
        entry = self.entry
        return canonical_halves(self.at, entry.actor, entry.event, entry.subject, self.details)


def append(
    session: Session,
    *,
    actor: str,
    event: str,
    subject: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> None:
    """Add one event to the chain in the caller's transaction, so it commits with the change it records.

    A bad event (secrets, floats, a naive time) is refused here, at the call. The row itself is written just
    before the transaction commits, with every other event of the transaction: the chain's lock (one for the
    whole instance) is then held for one INSERT and the COMMIT, not from the first event to the end of the
    transaction, which is what serialized concurrent requests. A rollback drops the events with the change.
    """
    _queue(session, [Entry(actor, event, subject, details, now)])


def append_many(session: Session, entries: Sequence[Entry]) -> None:
    """Add ``entries`` to the chain in order, in the caller's transaction: the same rows, hashes and ids as
    calling :func:`append` for each (downloads' group commit)."""
    _queue(session, entries)


def has_pending(session: Session) -> bool:
    """Whether this session holds events not yet written (they would be written at its COMMIT)."""
    return bool(session.info.get(_PENDING))


def flush_pending(session: Session) -> None:
    """Put this transaction's events in the chain now: for a reader of the log inside the transaction that
    appended (on PostgreSQL this takes the chain's lock until the transaction ends, as any writer's would)."""
    _stage_pending(session)
    if session.info.pop(_STAGED, False):
        session.execute(_CHAIN_INBOX)


def _stage_pending(session: Session) -> None:
    pending: list[_Prepared] = session.info.pop(_PENDING, [])
    if pending:
        _write(session, pending)


def _in_database(session: Session) -> bool:
    """Whether the database chains the events itself (PostgreSQL, migration 0013)."""
    return session.get_bind().dialect.name == "postgresql"


def _queue(session: Session, entries: Sequence[Entry]) -> None:
    prepared = [_prepare(entry) for entry in entries]  # refuse a bad event at the call, not at commit
    if session.in_nested_transaction():
        # A savepoint can roll back without the transaction: write at once, so the rows go with it.
        _write(session, prepared)
        return
    session.info.setdefault(_PENDING, []).extend(prepared)


def _prepare(entry: Entry) -> _Prepared:
    _refuse_secret_keys(entry.details)
    clean = _normalize_details(entry.details)
    if entry.at.tzinfo is None or entry.at.utcoffset() is None:
        raise ValueError(f"audit time must be timezone-aware: {entry.at!r}")
    return _Prepared(entry, clean, entry.at.astimezone(UTC))


_PENDING = "ecert.audit.pending"
_STAGED = "ecert.audit.staged"  # this transaction put events in the inbox (PostgreSQL) not yet chained


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """The transaction's events, as the last statements before COMMIT: chained here under the lock (SQLite),
    or handed to the inbox that COMMIT itself chains (PostgreSQL)."""
    _stage_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    """Events never outlive their transaction: a rollback (or a close without commit) drops them."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_STAGED, None)


def _write(session: Session, prepared: Sequence[_Prepared]) -> None:
    if not prepared:
        return
    if _in_database(session):
        _to_inbox(session, prepared)
        return
    # SQLite: the engine from ecert.store.db begins every transaction with BEGIN IMMEDIATE, so this transaction
    # already holds the database's one write lock, and no other can append between the head read and the INSERT.
    session.flush()
    last = session.execute(_HEAD).first()
    # Ids are numbered here, under the chain lock, not by a sequence: a rolled-back append then leaves no
    # gap, so a gap always means a removed row (a PostgreSQL sequence skips the values of rollbacks).
    prev_hash, next_id = (last.hash, last.id + 1) if last is not None else (GENESIS_HASH, 1)
    rows = []
    for item in prepared:
        digest = item.hash_after(prev_hash)
        rows.append({**item.columns(), "id": next_id, "prev_hash": prev_hash, "hash": digest})
        prev_hash, next_id = digest, next_id + 1
    session.execute(insert(_AUDIT_LOG), rows)


def _to_inbox(session: Session, prepared: Sequence[_Prepared]) -> None:
    """The events, in order, for PostgreSQL to chain at COMMIT (no lock taken here: see the module's text)."""
    rows = []
    for item in prepared:
        head, tail = item.halves()
        rows.append({**item.columns(), "head": head, "tail": tail})
    session.execute(insert(_AUDIT_INBOX), rows)
    session.info[_STAGED] = True


def verify_chain(
    session: Session, *, known_head: str | None = None, known_rows: int | None = None, batch_size: int = 1000
) -> AuditVerification:
    """Walk the log in id order and check every link, every hash and that ids run 1, 2, 3... without a gap.

    An edited row fails its own hash; a deleted, inserted or moved row breaks the prev_hash link of the row
    after it; a chain rebuilt over a removed row still shows the gap in the ids. Removing rows from the end
    leaves a valid shorter chain: pass ``known_head`` (a hash seen earlier: a signed checkpoint, a backup)
    and, when known, ``known_rows`` (how many rows the chain had up to it) to detect that too.
    """
    columns = (
        AuditEvent.id,
        AuditEvent.at,
        AuditEvent.actor,
        AuditEvent.event,
        AuditEvent.subject,
        AuditEvent.details,
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )
    flush_pending(session)
    expected_prev = GENESIS_HASH
    checked = 0
    head_id: int | None = None
    seen_head = known_head is None
    result = session.execute(select(*columns).order_by(AuditEvent.id).execution_options(yield_per=batch_size))
    for row in result:
        checked += 1
        broken = _broken_row(row, expected_prev, checked)
        if broken is not None:
            return AuditVerification(False, checked, row.id, broken)
        if row.hash == known_head:
            if known_rows is not None and checked != known_rows:
                return AuditVerification(
                    False, checked, row.id, f"the known head is row {checked} of the chain, not row {known_rows}"
                )
            seen_head = True
        expected_prev, head_id = row.hash, row.id
    head_hash = expected_prev if checked else None
    if not seen_head:
        return AuditVerification(
            False, checked, None, "known head not found (rows removed from the end)", head_id, head_hash
        )
    return AuditVerification(True, checked, None, None, head_id, head_hash)


def _broken_row(row: Any, expected_prev: str, position: int) -> str | None:
    """Why ``row`` (the ``position``-th of the walk) does not belong to the chain, or None if it does."""
    if row.prev_hash != expected_prev:
        return "prev_hash does not link to the previous row (deleted or reordered row)"
    if compute_hash(row.prev_hash, row.at, row.actor, row.event, row.subject, row.details) != row.hash:
        return "hash does not match the row's content (edited row)"
    if row.id != position:
        return f"row ids jump to {row.id} where {position} was due (rows removed and the chain rebuilt)"
    return None
