"""Refusals at the edge that BR 5.4.1 asks a CA to log: forged forms, oversized bodies and the like.

The web layer never opens a transaction; it hands the refusal here. Details name what was refused and
where from, never what was sent (a token, a body): the audit log must not become a store of secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..store import audit
from .context import Context

__all__ = ["LEFT_OUT_EVENT", "REFUSALS_PER_WINDOW", "REFUSAL_WINDOW", "record_refusal", "write_left_out"]

_log = logging.getLogger("ecert.audit")

# A flood of refusals from one source (anyone can send malformed requests) must not flood the chain, whose
# one writer every audited request of the instance waits for: past this many of one event from one actor in
# a window, refusals are counted, and the next one written says how many were left out. Per process.
REFUSALS_PER_WINDOW = 10
REFUSAL_WINDOW = timedelta(minutes=1)
_KEYS_KEPT = 10_000
LEFT_OUT_EVENT = "audit.refusals_left_out"
# Where the counts go when more sources than _KEYS_KEPT flood at once: folded into one, never dropped.
_FOLDED = ("refusals", "many sources")


def _admit(ctx: Context, event: str, actor: str, now: datetime) -> int | None:
    """None: leave this refusal out (counted). Else how many were left out before it, to write with it.

    Kept per process in ``ctx.memo``, by (event, actor): the window's start, rows written, rows left out.
    """
    seen = ctx.memo.refusal_counts
    key = (event, actor)
    with ctx.memo.refusal_lock:
        start, written, skipped = seen.get(key, (now, 0, 0))
        if now - start >= REFUSAL_WINDOW:
            start, written = now, 0
        if written >= REFUSALS_PER_WINDOW:
            seen[key] = (start, written, skipped + 1)
            return None
        if len(seen) >= _KEYS_KEPT and key not in seen:
            _fold(seen, now)  # bounded memory; at worst a few more rows after a very wide flood
        seen[key] = (start, written + 1, 0)
        return skipped


def _fold(seen: dict[tuple[str, str], tuple[datetime, int, int]], now: datetime) -> None:
    """Forget every source but keep the sum of what was left out, under one key (written by write_left_out)."""
    left_out = sum(skipped for _, _, skipped in seen.values())
    seen.clear()
    if left_out:
        seen[_FOLDED] = (now, REFUSALS_PER_WINDOW, left_out)


def write_left_out(ctx: Context, *, every_window: bool = False) -> int:
    """One row per ended window that left refusals out, saying how many: a flood that stops has no "next
    row" to carry its count, so the periodic jobs call this (and, with ``every_window``, the shutdown hook).

    Returns how many refusals the rows account for. If the database cannot take them they are logged and
    counted again, to be written at the next call.
    """
    now = ctx.clock()
    seen = ctx.memo.refusal_counts
    with ctx.memo.refusal_lock:
        due = {
            key: (start, skipped)
            for key, (start, _written, skipped) in seen.items()
            if skipped and (every_window or now - start >= REFUSAL_WINDOW)
        }
        for key in due:
            del seen[key]
    if not due:
        return 0
    entries = [
        audit.Entry(actor, LEFT_OUT_EVENT, event, {"left_out": skipped, "window_start": start.isoformat()}, now)
        for (event, actor), (start, skipped) in due.items()
    ]
    try:
        with ctx.transaction() as session:
            audit.append_many(session, entries)
    except Exception:  # noqa: BLE001 - counted again below, written at the next call
        _log.exception("could not audit %d counts of refusals left out", len(entries))
        with ctx.memo.refusal_lock:
            for key, (start, skipped) in due.items():
                old_start, written, more = seen.get(key, (start, REFUSALS_PER_WINDOW, 0))
                seen[key] = (min(old_start, start), written, more + skipped)
        return 0
    return sum(skipped for _, skipped in due.values())


def record_refusal(ctx: Context, *, event: str, actor: str, subject: str | None, details: Mapping[str, Any]) -> None:
    """Append one refusal to the audit chain; a database that cannot take it is logged, not raised.

    The caller is already answering 4xx; failing that answer because the log is unavailable would turn a
    refusal into an error page, and the event still reaches the process log below. A flood from one actor
    is thinned (see REFUSALS_PER_WINDOW): the rows say how many were left out, so the count is never lost.
    """
    now = ctx.clock()
    skipped = _admit(ctx, event, actor, now)
    if skipped is None:
        return
    row = dict(details) | ({"refusals_left_out_before": skipped} if skipped else {})
    try:
        with ctx.transaction() as session:
            audit.append(session, actor=actor, event=event, subject=subject, details=row, now=now)
    except Exception:  # noqa: BLE001 - see the docstring
        _log.exception("could not audit %s from %s: %s", event, actor, dict(details))
