"""core/acme_portal: when the portal lets a subscriber make an EAB credential, and how credentials read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.core.acme_portal import (
    MAX_UNUSED_PORTAL_EAB,
    EabShown,
    PortalEabBlock,
    check_eab_configured,
    check_portal_eab,
    eab_shown,
    portal_eab_block,
)
from ecert.core.errors import Conflict, Forbidden, RateLimited

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
END = NOW + timedelta(days=300)


@pytest.mark.parametrize(
    ("status", "expires_at", "shown"),
    [
        ("unused", NOW + timedelta(seconds=1), EabShown.UNUSED),
        ("unused", NOW, EabShown.EXPIRED),
        ("bound", NOW - timedelta(days=30), EabShown.BOUND),  # a bound credential never reads as expired
    ],
)
def test_how_a_credential_reads(status: str, expires_at: datetime, shown: EabShown) -> None:
    assert eab_shown(status, expires_at, NOW) is shown


BASE = {"allowed": True, "configured": True, "state": "accepted", "subscription_end": END, "unused_live": 0}


@pytest.mark.parametrize(
    ("change", "block", "error"),
    [
        ({}, None, None),
        ({"allowed": False}, PortalEabBlock.DISABLED, Forbidden),
        ({"configured": False}, PortalEabBlock.NOT_CONFIGURED, Forbidden),
        ({"subscription_end": NOW}, PortalEabBlock.ENDED, Conflict),
        ({"state": "validated"}, PortalEabBlock.NOT_ACCEPTED, Conflict),
        ({"state": "approved"}, PortalEabBlock.NOT_ACCEPTED, Conflict),
        ({"state": "rejected"}, PortalEabBlock.NOT_ACCEPTED, Conflict),
        ({"unused_live": MAX_UNUSED_PORTAL_EAB - 1}, None, None),
        ({"unused_live": MAX_UNUSED_PORTAL_EAB}, PortalEabBlock.TOO_MANY, RateLimited),
    ],
)
def test_when_the_portal_makes_a_credential(
    change: dict[str, object], block: PortalEabBlock | None, error: type[Exception] | None
) -> None:
    values = {**BASE, **change}
    found = portal_eab_block(now=NOW, **values)  # type: ignore[arg-type]
    assert found is block
    if error is None:
        check_portal_eab(found, state=str(values["state"]), unused_live=0)
        return
    with pytest.raises(error) as refused:
        check_portal_eab(found, state=str(values["state"]), unused_live=int(values["unused_live"]))  # type: ignore[call-overload]
    assert refused.value.rule and "issue 13" in refused.value.rule  # type: ignore[attr-defined]


def test_no_wrapping_secret_is_refused_by_name() -> None:
    check_eab_configured(True)
    with pytest.raises(Forbidden) as refused:
        check_eab_configured(False)
    assert refused.value.value == "ECERT_ACME_EAB_SECRET"
