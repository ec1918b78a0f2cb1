"""Storage functions for the standalone OCSP responder's feeds: issuers answered for and stored responses."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from ..core.ca_lifecycle import CaStatus
from .models import CA, OcspResponse

__all__ = ["answered_issuers", "stored_response_rows", "newest_signing_time"]

_BATCH = 10_000


def answered_issuers(session: Session, roles: Collection[str]) -> list[Row[int, str, bytes]]:
    """Issuing CAs (active or retired) whose certificates' status is answered, oldest first."""
    return list(
        session.execute(
            select(CA.id, CA.label, CA.cert_der)
            .where(CA.role.in_(tuple(roles)), CA.status.in_((CaStatus.ACTIVE.value, CaStatus.RETIRED.value)))
            .order_by(CA.id)
        )
    )


def stored_response_rows(
    session: Session, *, signed_after: datetime | None, valid_at: datetime | None
) -> Iterator[Row[int, str, bytes, datetime, datetime, str]]:
    """Stored responses (ca_id, serial, DER, thisUpdate, nextUpdate, etag), streamed in batches."""
    query = select(
        OcspResponse.ca_id,
        OcspResponse.serial_hex,
        OcspResponse.der,
        OcspResponse.this_update,
        OcspResponse.next_update,
        OcspResponse.etag,
    )
    if signed_after is not None:
        query = query.where(OcspResponse.this_update > signed_after)
    if valid_at is not None:
        query = query.where(OcspResponse.next_update > valid_at)
    yield from session.execute(query.execution_options(yield_per=_BATCH))


def newest_signing_time(session: Session) -> datetime | None:
    """One indexed MAX (``ocsp_responses.this_update``, migration 0004): cheap enough to ask every second."""
    return session.scalar(select(func.max(OcspResponse.this_update)))
