"""When a subscriber may make ACME (EAB) credentials in the portal, and how a credential reads to them.

Pure: the service passes the application's state, the operator's setting and the clock's ``now``; these
functions decide. The portal and the operator API both show credentials through :func:`eab_shown`.
"""

from __future__ import annotations

import enum
from datetime import datetime

from .acme_rules import EabStatus
from .application import AppState
from .errors import Conflict, EcertError, Forbidden, RateLimited

__all__ = [
    "MAX_UNUSED_PORTAL_EAB",
    "PORTAL_EAB_STATES",
    "EabShown",
    "PortalEabBlock",
    "check_eab_configured",
    "check_portal_eab",
    "eab_shown",
    "portal_eab_block",
]

# Issue 13 point 2: the subscriber makes a credential once the first certificate was accepted (seed C.6).
# Accepting it is the subscriber's review of the certificate's contents (BR 9.6.3 item 3), and every ACME
# certificate repeats that subject (from the application, never from a CSR); before it, the portal's steps
# are the way to a certificate, so there is one first issuance, not two.
PORTAL_EAB_STATES = frozenset({AppState.ACCEPTED})
# Unused credentials a subscriber may hold at once: a reload or a double click makes no pile of live keys.
MAX_UNUSED_PORTAL_EAB = 3


class EabShown(enum.StrEnum):
    """A credential as the subscriber and the operator read it: ``expired`` is an unused one past its end."""

    UNUSED = "unused"
    BOUND = "bound"
    EXPIRED = "expired"


def eab_shown(status: str, expires_at: datetime, now: datetime) -> EabShown:
    """RFC 8555 7.3.4 (the CA's choice of lifetime): an unused credential past ``expires_at`` binds no more."""
    if EabStatus(status) is EabStatus.BOUND:
        return EabShown.BOUND
    return EabShown.EXPIRED if now >= expires_at else EabShown.UNUSED


class PortalEabBlock(enum.StrEnum):
    """Why the portal offers no "make a credential" button; the page words each one."""

    DISABLED = "disabled"  # the operator's setting (acme_portal_eab) is off
    NOT_CONFIGURED = "not_configured"  # no EAB wrapping secret: the CA could not keep the key
    NOT_ACCEPTED = "not_accepted"  # no certificate accepted yet
    ENDED = "ended"  # the subscription is over
    TOO_MANY = "too_many"  # MAX_UNUSED_PORTAL_EAB unused credentials exist


def portal_eab_block(
    *, allowed: bool, configured: bool, state: str, subscription_end: datetime, now: datetime, unused_live: int
) -> PortalEabBlock | None:
    """The first reason the subscriber may not make a credential now, or None when they may."""
    if not allowed:
        return PortalEabBlock.DISABLED
    if not configured:
        return PortalEabBlock.NOT_CONFIGURED
    if now >= subscription_end:
        return PortalEabBlock.ENDED
    if AppState(state) not in PORTAL_EAB_STATES:
        return PortalEabBlock.NOT_ACCEPTED
    if unused_live >= MAX_UNUSED_PORTAL_EAB:
        return PortalEabBlock.TOO_MANY
    return None


_RULE = "issue 13 point 2 (RFC 8555 7.3.4)"


def _unconfigured() -> Forbidden:
    return Forbidden(
        "ACME credentials are disabled: the EAB wrapping secret is not set", rule=_RULE, value="ECERT_ACME_EAB_SECRET"
    )


def check_eab_configured(configured: bool) -> None:
    """Without the wrapping secret no credential can be kept (its key is stored sealed under it): refuse first."""
    if not configured:
        raise _unconfigured()


def check_portal_eab(block: PortalEabBlock | None, *, state: str, unused_live: int) -> None:
    """Raise the refusal for ``block`` (nothing when None), naming the rule and the bad value."""
    if block is None:
        return
    refusals: dict[PortalEabBlock, EcertError] = {
        PortalEabBlock.DISABLED: Forbidden(
            "this CA makes ACME credentials only through its operator", rule=_RULE, value="acme_portal_eab=false"
        ),
        PortalEabBlock.NOT_CONFIGURED: _unconfigured(),
        PortalEabBlock.ENDED: Conflict("the subscription has ended", rule=_RULE, value=state),
        PortalEabBlock.NOT_ACCEPTED: Conflict(
            "ACME credentials are made once a certificate was accepted", rule=_RULE, value=state
        ),
        PortalEabBlock.TOO_MANY: RateLimited(
            f"at most {MAX_UNUSED_PORTAL_EAB} unused ACME credentials at a time", rule=_RULE, value=unused_live
        ),
    }
    raise refusals[block]
