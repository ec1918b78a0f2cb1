"""Per-process facts the services keep between calls: each slot belongs to one context's memory.

The registration authority's CA-key set and the pipeline's active issuing CA change only at a ceremony
(init, rollover, a new OCSP responder), yet were read in full for every certificate. Each service keeps
such a fact here together with a cheap stamp it checks on every use, so a change made by any process is
seen at the next call. Slots are tied to the identity of ``ctx.memo`` (held, so that identity is never
reused) and only the newest few contexts are kept, so tests that build many contexts do not grow it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..store import audit, db
from .context import Context, ProcessMemo

__all__ = ["slot", "quick_read", "lone_write"]

_KEEP = 8
_slots: OrderedDict[int, tuple[ProcessMemo, dict[str, Any]]] = OrderedDict()
_lock = threading.Lock()


def slot(ctx: Context) -> dict[str, Any]:
    """The dict of per-process facts of ``ctx`` (created empty on first use)."""
    key = id(ctx.memo)
    with _lock:
        found = _slots.get(key)
        if found is None or found[0] is not ctx.memo:
            found = (ctx.memo, {})
            _slots[key] = found
            while len(_slots) > _KEEP:
                _slots.popitem(last=False)
        else:
            _slots.move_to_end(key)
        return found[1]


@contextmanager
def quick_read(ctx: Context) -> Iterator[Session]:
    """A read of a few statements on a hot path (a session's token, an application, a download, an ACME
    order or authorization, the registration authority's evidence).

    On PostgreSQL it runs in autocommit: no BEGIN and no ROLLBACK, two round trips fewer per read (and two
    fewer GIL hand-overs per request; an ACME order made 11 such reads, a third of its statements were
    BEGIN/COMMIT/ROLLBACK); under READ COMMITTED each statement takes its own snapshot anyway, so what it sees
    is unchanged. SQLite keeps ``ctx.read()`` (a DEFERRED transaction beside the writer). Not for streamed
    reads (``yield_per``): a server-side cursor needs a transaction.
    """
    if ctx.engine.dialect.name != "postgresql":
        with ctx.read() as session:
            yield session
        return
    with _autocommit_sessions(ctx)() as session:
        yield session


@contextmanager
def lone_write(ctx: Context) -> Iterator[Session]:
    """One write statement that needs no transaction around it, being atomic by itself (a used nonce's
    INSERT, on every ACME POST). On PostgreSQL it runs in autocommit, without the BEGIN and COMMIT round
    trips; SQLite takes ``ctx.transaction()``. An audit event needs a transaction (its rows are written at
    COMMIT): one appended here is refused, never silently dropped.
    """
    if ctx.engine.dialect.name != "postgresql":
        with ctx.transaction() as session:
            yield session
        return
    with _autocommit_sessions(ctx)() as session:
        yield session
        if audit.has_pending(session):
            raise RuntimeError("an audit event needs a transaction: use ctx.transaction(), not lone_write")


def _autocommit_sessions(ctx: Context) -> sessionmaker[Session]:
    memo = slot(ctx)
    found: sessionmaker[Session] | None = memo.get("autocommit_sessions")
    if found is None:
        found = memo["autocommit_sessions"] = db.autocommit_session_factory(ctx.engine)
    return found
