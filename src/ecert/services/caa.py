"""CAA at issuance (BR 3.2.2.8, RFC 8659): checked for every name, recorded, audited, and it can only forbid.

Every issuance path calls :func:`check_caa_at_issuance` right before the pipeline signs, well inside the
BR's 8-hour window; a failed lookup forbids, exactly as a record naming another CA does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..core import dcv_rules
from ..core.errors import ValidationFailed
from ..store import audit
from ..store import registration as ra_store
from .context import Context

__all__ = ["check_caa_at_issuance", "jsonable"]


def jsonable(value: Any) -> Any:
    """Evidence as plain JSON for the audit chain: floats become text (the chain refuses floats)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def check_caa_at_issuance(
    ctx: Context,
    names: Sequence[str],
    *,
    actor: str,
    application_id: int | None = None,
    reference: str | None = None,
    methods: Mapping[str, str | None] | None = None,
    account_uri: str | None = None,
) -> None:
    """Look CAA up for ``names`` now; store and audit each decision; raise ValidationFailed if any forbids.

    ``methods`` maps a validated domain to the DCV method used, for RFC 8657's validationmethods;
    ``account_uri`` is the ACME account asking (RFC 8657 accounturi), None for every other front door.
    """
    from .enrolment import validator_for  # the one place the context's Validator is made

    now = ctx.clock()
    validator = validator_for(ctx)
    groups: dict[str | None, list[str]] = {}
    for name in names:
        groups.setdefault((methods or {}).get(dcv_rules.dns_name_for_validation(name)), []).append(name)
    decisions = []
    for method, group in groups.items():
        decisions += validator.check_caa(group, now=now, method=method, account_uri=account_uri)
    with ctx.transaction() as session:
        for d in decisions:
            ra_store.record_caa_check(
                session,
                application_id=application_id,
                domain=d.name,
                checked_at=now,
                permitted=d.permitted,
                records=[str(r) for r in d.records],
                reason=d.reason[:1000],
            )
            audit.append(
                session,
                actor=actor,
                event="caa.checked",
                subject=d.name,
                details=jsonable({"application": reference, **d.to_dict()}),
                now=now,
            )
    refused = [d for d in decisions if not d.permitted]
    if refused:
        first = refused[0]
        raise ValidationFailed(
            f"CAA for {first.name} does not permit this CA to issue: {first.reason}",
            rule="BR 3.2.2.8 / RFC 8659",
            value=first.name,
        )
