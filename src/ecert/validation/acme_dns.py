"""ACME dns-01 (RFC 8555 8.4, BR 3.2.2.4.7): base64url(SHA-256(key authorization)) in TXT at _acme-challenge.

The lookup is the DNS Change method's (validation/dns.py): recursive resolvers only, CNAMEs chased with a
bound, DNSSEC required when configured; a failed lookup fails the challenge (problem type ``dns``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ecert.core.dcv_rules import DcvMethod, DomainResult, dns_name_for_validation
from ecert.validation.dns import DnsClient, _txt_strings

__all__ = ["ACME_CHALLENGE_LABEL", "check_dns01"]

ACME_CHALLENGE_LABEL = "_acme-challenge"


def check_dns01(
    client: DnsClient,
    domain: str,
    expected_txt: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainResult:
    """RFC 8555 8.4: one TXT record at ``_acme-challenge.<base domain>`` equals ``expected_txt``."""
    qname = f"{ACME_CHALLENGE_LABEL}.{dns_name_for_validation(domain)}"
    started = clock()
    answer = client.lookup(qname, "TXT")
    seen = [_txt_strings(r) for r in answer.records] if not answer.failed else []
    evidence: dict[str, Any] = {
        "resolvers": list(client.resolvers),
        "dnssec_required": client.dnssec_required,
        "queries": [answer.to_evidence()],
        "txt_seen": seen,
        "started_at": started.isoformat(),
        "finished_at": clock().isoformat(),
    }
    if answer.failed:
        evidence["problem"] = "dns"
        reason = f"DNS lookup failed: {answer.status.upper()} for TXT {qname}" + (
            f" ({answer.detail})" if answer.detail else ""
        )
        return DomainResult(domain, DcvMethod.ACME_DNS.value, False, reason, evidence)
    if any(text.strip() == expected_txt for text in seen):
        return DomainResult(
            domain, DcvMethod.ACME_DNS.value, True, f"key authorization digest found at {qname}", evidence
        )
    evidence["problem"] = "incorrectResponse"
    reason = f"no TXT record at {qname} holds the key authorization digest" + (f" (found {len(seen)})" if seen else "")
    return DomainResult(domain, DcvMethod.ACME_DNS.value, False, reason, evidence)
