"""Read-only feeds for a standalone OCSP responder: the issuers it answers for and the stored responses.

The dedicated responder (``web/ocsp_server.py``) keeps every pre-signed response in memory and
reloads what changed as soon as it hears of it: on PostgreSQL every write of a response sends a NOTIFY
at commit (store/notify.py) and :func:`listen` wakes the responder; on SQLite :func:`change_marker` is
polled every second. A slower full poll stays as the backstop.

A row of ``ocsp_responses`` is rewritten in place (same id) when it is re-signed,
always with ``this_update`` set to the signing time, so "changed since T" is ``this_update > T``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from ..store import ocsp_feed as feed_store
from ..store.notify import OCSP_CHANNEL
from .context import Context
from .publication import ISSUING_ROLES

__all__ = [
    "Issuer",
    "StoredResponse",
    "change_marker",
    "issuers",
    "listen",
    "notifies",
    "stored_responses",
    "watch_changes",
]

_log = logging.getLogger("ecert.ocsp_feed")
LISTEN_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Issuer:
    """An issuing CA whose certificates' status is answered (active or retired)."""

    ca_id: int
    label: str
    cert: x509.Certificate


@dataclass(frozen=True)
class StoredResponse:
    """One pre-signed response as stored (its CertID uses SHA-1, RFC 5019 2.1.1)."""

    ca_id: int
    serial_hex: str
    der: bytes
    this_update: datetime
    next_update: datetime
    etag: str


def _read_only(ctx: Context):  # type: ignore[no-untyped-def]
    # SQLite: a deferred BEGIN, so a poll never takes the single write lock from the CA.
    return ctx.readers.begin()


def issuers(ctx: Context) -> list[Issuer]:
    """The issuing CAs answered for, the same set as :func:`publication.issuer_index`."""
    with _read_only(ctx) as session:
        rows = feed_store.answered_issuers(session, ISSUING_ROLES)
    return [Issuer(ca_id, label, x509.load_der_x509_certificate(der)) for ca_id, label, der in rows]


def stored_responses(
    ctx: Context, *, signed_after: datetime | None = None, valid_at: datetime | None = None
) -> Iterator[StoredResponse]:
    """Stored responses, streamed in batches; only those signed after ``signed_after`` when given.

    ``valid_at`` skips responses already expired at that instant (a full load needs none of them).
    """
    with _read_only(ctx) as session:
        for row in feed_store.stored_response_rows(session, signed_after=signed_after, valid_at=valid_at):
            yield StoredResponse(*row)


def change_marker(ctx: Context) -> Any:
    """The newest signing time of any stored response: it moves whenever a response is (re)written.

    One indexed MAX (``ocsp_responses.this_update``, migration 0004): cheap enough to ask every second.
    """
    with _read_only(ctx) as session:
        return feed_store.newest_signing_time(session)


def notifies(ctx: Context) -> bool:
    """Whether this database announces changes (PostgreSQL NOTIFY); otherwise poll :func:`change_marker`."""
    return ctx.engine.dialect.name == "postgresql"


def listen(ctx: Context, stop: threading.Event, on_change: Callable[[], None]) -> None:
    """Until ``stop`` is set, call ``on_change`` after every NOTIFY on the OCSP channel (PostgreSQL only).

    A lost connection is reopened after a second; ``on_change`` is called then too, as notices sent while
    nobody listened are lost.
    """
    while not stop.is_set():
        try:
            _listen_once(ctx, stop, on_change)
        except Exception:  # noqa: BLE001 - the database went away: retry; the poll backstop still runs
            _log.warning("OCSP change listener lost its connection; retrying", exc_info=True)
            stop.wait(LISTEN_RETRY_SECONDS)
            on_change()


def _listen_once(ctx: Context, stop: threading.Event, on_change: Callable[[], None]) -> None:
    raw = ctx.engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        conn.autocommit = True
        conn.execute(f"LISTEN {OCSP_CHANNEL}")
        while not stop.is_set():
            for _notice in conn.notifies(timeout=0.5, stop_after=1):
                on_change()
    finally:
        raw.invalidate()  # a LISTENing connection must not go back to the pool


def watch_changes(ctx: Context, stop: threading.Event, on_change: Callable[[], None], *, poll: float = 1.0) -> None:
    """Until ``stop``: call ``on_change`` when a stored response changes (NOTIFY, or the marker polled)."""
    if notifies(ctx):
        listen(ctx, stop, on_change)
        return
    last: Any = _marker_or(ctx, None)
    while not stop.wait(poll):
        marker = _marker_or(ctx, last)  # storage away: nothing can have changed; keep what is in memory
        if marker != last:
            on_change()
        last = marker


def _marker_or(ctx: Context, default: Any) -> Any:
    try:
        return change_marker(ctx)
    except Exception:  # noqa: BLE001 - see watch_changes
        return default
