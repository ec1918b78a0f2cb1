"""Account key rollover (RFC 8555 7.3.5): the account's key is replaced by one no other account holds.

web/acme/keychange.py checks both signatures and the inner JWS's fields (all JOSE stays in web/); this
module decides on the keys' thumbprints and writes the change with its audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.acme_rules import AcmeRefusal, ProblemType
from ..store import acme as store_acme
from ..store import acme_limits as store
from ..store import audit
from .context import Context
from .refusals import record_refusal

__all__ = ["KeyChange", "KeyInUse", "change_key"]


class KeyInUse(AcmeRefusal):
    """RFC 8555 7.3.5: the new key already belongs to an account; the answer is 409 with its Location."""

    def __init__(self, account_id: int) -> None:
        super().__init__(
            ProblemType.MALFORMED,
            "the new key is already the key of an account",
            status=409,
            rule="RFC 8555 7.3.5",
            value=account_id,
        )
        self.account_id = account_id
        self.headers: dict[str, str] = {}  # the route adds Location (it knows the URL)


@dataclass(frozen=True)
class KeyChange:
    account_id: int
    old_thumbprint: str  # of the key that signed the outer JWS (the account's key)
    claimed_old_thumbprint: str  # of the inner payload's oldKey
    new_thumbprint: str
    new_jwk: dict[str, Any]
    client: str


def _check(change: KeyChange) -> None:
    if change.claimed_old_thumbprint != change.old_thumbprint:
        raise AcmeRefusal(
            ProblemType.MALFORMED,
            "oldKey is not the account's current key",
            rule="RFC 8555 7.3.5",
            value=change.claimed_old_thumbprint,
        )


def _apply(ctx: Context, change: KeyChange) -> None:
    now = ctx.clock()
    with ctx.transaction() as session:
        holder = store_acme.account_by_thumbprint(session, change.new_thumbprint)
        if holder is not None:
            raise KeyInUse(holder.id)
        if not store.set_account_key(
            session,
            change.account_id,
            old_thumbprint=change.old_thumbprint,
            new_thumbprint=change.new_thumbprint,
            jwk=change.new_jwk,
            now=now,
        ):
            raise AcmeRefusal(
                ProblemType.MALFORMED,
                "the account key changed meanwhile, or the new key was just taken",
                status=409,
                rule="RFC 8555 7.3.5",
                value=change.account_id,
            )
        audit.append(
            session,
            actor=f"acme:account:{change.account_id}",
            event="acme.account.key_changed",
            subject=str(change.account_id),
            details={"from": change.old_thumbprint, "to": change.new_thumbprint, "client": change.client},
            now=now,
        )


def change_key(ctx: Context, change: KeyChange) -> None:
    """Roll the account over to the new key, or refuse (audited) with the RFC 8555 7.3.5 problem."""
    try:
        _check(change)
        _apply(ctx, change)
    except AcmeRefusal as refusal:
        record_refusal(
            ctx,
            event="acme.account.key_change_refused",
            actor=f"acme:account:{change.account_id}",
            subject=str(change.account_id),
            details={"problem": refusal.problem.value, "why": str(refusal)[:300], "new": change.new_thumbprint},
        )
        refusal.audited = True  # the edge does not log it again
        raise
