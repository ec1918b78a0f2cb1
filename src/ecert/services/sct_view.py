"""A certificate's Signed Certificate Timestamps as people see them: which log, run by whom, and when.

The portal's certificate page shows them so a subscriber can see that the certificate was logged publicly
(RFC 6962 3.3: the SCTs embedded in it), and, when there are none, why: Certificate Transparency is off on
this CA, or was off when the certificate was issued. Read only, through ``store.ct``'s named functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..store import ct as ct_store
from .context import Context

__all__ = ["CertificateTransparency", "SctLine", "certificate_transparency"]


@dataclass(frozen=True)
class SctLine:
    """One embedded SCT: the log's name and operator as the log list named them, and the SCT's time (UTC)."""

    log_name: str
    operator: str
    time: datetime
    log_id: str


@dataclass(frozen=True)
class CertificateTransparency:
    """What the certificate page says about CT: the SCTs, and whether this CA submits to logs at all."""

    enabled: bool
    scts: tuple[SctLine, ...]


def _utc(when: datetime) -> datetime:
    """SQLite gives the stored time back without a zone; it was written in UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def certificate_transparency(ctx: Context, certificate_id: int) -> CertificateTransparency:
    """The SCTs embedded in the certificate ``certificate_id``, oldest first (none when issued with CT off)."""
    with ctx.read() as session:
        rows = ct_store.scts_for_certificate(session, certificate_id)
        scts = tuple(SctLine(r.log_name, r.operator, _utc(r.timestamp), r.log_id) for r in rows)
    return CertificateTransparency(enabled=ctx.ct is not None, scts=scts)
