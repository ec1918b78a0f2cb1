"""CAA lookup by tree climbing (RFC 8659 §3); the decision itself is core.dcv_rules.caa_permits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

from ecert.core.dcv_rules import CaaDecision, CaaRecord, DcvMethod, caa_permits, dns_name_for_validation
from ecert.validation.dns import NODATA, NXDOMAIN, OK, DnsClient

__all__ = ["climb_names", "check_caa"]


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def climb_names(name: str) -> list[str]:
    """The name and its parents, stopping before the public suffix (RFC 8659 §3, bounded by the PSL).

    A CA's CAA check never needs a TLD's record set, and asking a registry suffix adds only failures.
    """
    base = dns_name_for_validation(name)
    suffix = _psl().publicsuffix(base) or base.rsplit(".", 1)[-1]
    labels = base.split(".")
    names = []
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate == suffix:
            break
        names.append(candidate)
    return names or [base]


def check_caa(
    client: DnsClient,
    name: str,
    *,
    is_wildcard: bool,
    issuer_domains: Sequence[str],
    account_uri: str | None = None,
    method: DcvMethod | str | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CaaDecision:
    """Climb from the name towards its public suffix and decide on the first non-empty CAA RRset.

    NXDOMAIN and empty answers climb; any lookup failure forbids issuance (RFC 8659 §3, BR 3.2.2.8).
    """
    started = clock()
    found: dict[str, tuple[CaaRecord, ...]] = {}
    queries: list[dict[str, Any]] = []

    def evidence() -> dict[str, Any]:
        return {
            "resolvers": list(client.resolvers),
            "queries": queries,
            "issuer_domains": list(issuer_domains),
            "checked_at": started.isoformat(),
        }

    for candidate in climb_names(name):
        ans = client.lookup(candidate, "CAA")
        queries.append(ans.to_evidence())
        if ans.failed:
            why = f"CAA lookup for {candidate} failed: {ans.status.upper()}" + (
                f" ({ans.detail})" if ans.detail else ""
            )
            return CaaDecision(name, False, why + " (RFC 8659 §3, BR 3.2.2.8)", (), candidate, evidence())
        if ans.status == OK:
            records = tuple(
                CaaRecord(int(r.flags), r.tag.decode("ascii", "replace"), r.value.decode("utf-8", "replace"))
                for r in ans.records
            )
            found[candidate] = records
            if records:
                break
        elif ans.status in (NXDOMAIN, NODATA):
            found[candidate] = ()
    decision = caa_permits(found, name, is_wildcard, issuer_domains, account_uri, method)
    return CaaDecision(
        decision.name,
        decision.permitted,
        decision.reason,
        decision.records,
        decision.relevant_name,
        evidence(),
    )
