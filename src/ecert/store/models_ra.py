"""Tables of the registration authority: operator-recorded organisation vettings.

The evidence an issuance relied on is kept on its issuance record (``IssuanceRecord.evidence``); a
vetting recorded here is what an operator's direct issuance names as its organisation (BR 3.2.2.1).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base

__all__ = ["OrganisationVetting"]


class OrganisationVetting(Base):
    """An organisation's identity as the operator verified it outside an application (BR 3.2.2.1, 3.2.2.2)."""

    __tablename__ = "organisation_vettings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization: Mapped[str]
    country: Mapped[str]
    state: Mapped[str | None]
    locality: Mapped[str | None]
    business_category: Mapped[str | None]
    jurisdiction_country: Mapped[str | None]
    registration_number: Mapped[str | None]
    source: Mapped[str]  # what was checked: the registry extract, document number, reviewer's note
    vetted_by: Mapped[str]
    vetted_at: Mapped[datetime]
    created_at: Mapped[datetime]
