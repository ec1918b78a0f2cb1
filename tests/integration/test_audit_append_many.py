"""audit.append_many (the downloads' group commit) writes exactly the chain audit.append would, in one INSERT."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ecert.store import audit
from ecert.store.models import AuditEvent


def _entries(now: datetime) -> list[audit.Entry]:
    return [
        audit.Entry(
            f"subscriber:A0000000{i}",
            "cert.downloaded",
            f"{i:x}",
            {"format": "pem", "channel": "api"},
            now + timedelta(seconds=i),
        )
        for i in range(5)
    ]


def _rows(session_factory: Any) -> list[tuple[Any, ...]]:
    with session_factory() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(
                    AuditEvent.id, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.actor, AuditEvent.details
                ).order_by(AuditEvent.id)
            )
        ]


def test_a_batch_chains_like_single_appends_and_verifies(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="first", now=now - timedelta(seconds=1))
        audit.append_many(session, _entries(now))
    with session_factory() as session, session.begin():
        audit.append(session, actor="system", event="after", now=now + timedelta(seconds=9))
    rows = _rows(session_factory)
    assert [r[0] for r in rows] == list(range(1, 8))
    for before, row in zip(rows, rows[1:], strict=False):
        assert row[1] == before[2]  # each row names the previous row's hash
    for entry, row in zip(_entries(now), rows[1:6], strict=True):
        expected = audit.compute_hash(
            row[1], entry.at, entry.actor, entry.event, entry.subject, dict(entry.details or {})
        )
        assert row[2] == expected and row[3] == entry.actor and row[4] == entry.details
    with session_factory() as session:
        verified = audit.verify_chain(session)
    assert verified.ok and verified.rows_checked == 7


def test_a_batch_with_a_secret_is_refused_whole(session_factory, now) -> None:  # type: ignore[no-untyped-def]
    bad = [*_entries(now), audit.Entry("x", "cert.downloaded", "1", {"pin": "1234"}, now)]
    with pytest.raises(ValueError, match="secrets"), session_factory() as session, session.begin():
        audit.append_many(session, bad)
    assert _rows(session_factory) == []
