"""Tables of ACME rate limits and renewal (issue 13 points 6 and 8): limit counters and ARI replacements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

__all__ = ["AcmeLimitCount", "AcmeReplacement"]


class AcmeLimitCount(Base):
    """How many events one key spent in one fixed window of one limit (core.acme_limits).

    One row per (limit, key, window); spending is one compare-and-set ``UPDATE ... WHERE count < limit``,
    so processes sharing the database never let more through than the limit allows.
    """

    __tablename__ = "acme_limit_counts"

    limit_name: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AcmeReplacement(Base):
    """A certificate named by newOrder's ``replaces`` (RFC 9773 5): once, by one order (alreadyReplaced)."""

    __tablename__ = "acme_replacements"

    certificate_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("certificates.id"), primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("acme_accounts.id"), index=True)
    order_ref: Mapped[str | None]  # the order that claimed it, once the orders feature names one
    claimed_at: Mapped[datetime]
