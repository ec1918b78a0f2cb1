"""DNS lookups for DCV and CAA through the configured resolvers, and the DNS Change method (BR 3.2.2.4.7).

Every answer is reduced to a :class:`DnsAnswer` whose ``status`` says whether it may be relied on:
SERVFAIL, timeouts and (when DNSSEC is required) unauthenticated answers are failures, never
permission (BR 3.2.2.8.1). An answer from a server that is not a recursive resolver (no RA flag), or a
referral, is a failure too: an authoritative server configured as the resolver cannot see a dead delegation
or a stale zone, and its silence would read as "no records" (BR 3.2.2.8, RFC 8659 §3: fail closed).
CNAMEs are chased with a bounded depth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from ecert.core.dcv_rules import PKI_VALIDATION_LABEL, DcvMethod, DomainResult, dns_name_for_validation

__all__ = ["DnsAnswer", "DnsClient", "parse_resolver", "check_dns_txt", "MAX_CNAME_DEPTH"]

MAX_CNAME_DEPTH = 8  # RFC 8659 §3 leaves the bound to the CA; 8 is ample for CDN chains
OK, NXDOMAIN, NODATA = "ok", "nxdomain", "nodata"
NOT_RECURSIVE, REFERRAL = "not-recursive", "referral"
FAILED_STATUSES = frozenset({"servfail", "timeout", "unauthenticated", "cname-loop", "error", NOT_RECURSIVE, REFERRAL})


def parse_resolver(spec: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``, or a bare host meaning port 53)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, 53


@dataclass(frozen=True)
class DnsAnswer:
    """One lookup's outcome, in a shape fit for the evidence record."""

    qname: str
    rdtype: str
    status: str
    records: tuple[Any, ...] = ()
    chain: tuple[str, ...] = ()
    authenticated: bool = False
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    def to_evidence(self) -> dict[str, Any]:
        return {
            "qname": self.qname,
            "rdtype": self.rdtype,
            "status": self.status,
            "records": [r.to_text() for r in self.records],
            "cname_chain": list(self.chain),
            "ad": self.authenticated,
            **({"detail": self.detail} if self.detail else {}),
        }


class DnsClient:
    """A non-caching stub resolver over the configured recursive resolvers.

    With ``dnssec_required`` the DO bit is set and only answers carrying the AD bit from the
    validating resolver count. Note this also refuses unsigned zones; leave it off to accept them,
    and rely on the validating resolver answering SERVFAIL for bogus data (BR 3.2.2.8.1).
    """

    def __init__(
        self,
        resolvers: Sequence[str],
        *,
        dnssec_required: bool = False,
        timeout: float = 2.0,
        lifetime: float = 4.0,
    ) -> None:
        self.resolvers = tuple(resolvers)
        self.dnssec_required = dnssec_required
        self._timeout = timeout
        self._lifetime = lifetime

    def _resolver(self) -> dns.resolver.Resolver:
        # A fresh resolver per lookup: dnspython resolvers are not meant to be shared across threads.
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in map(parse_resolver, self.resolvers)]
        r.timeout = self._timeout
        r.lifetime = self._lifetime
        r.cache = None
        if self.dnssec_required:
            r.use_edns(0, dns.flags.DO, 1232)
            r.flags = dns.flags.RD | dns.flags.AD
        return r

    def lookup(self, qname: str, rdtype: str) -> DnsAnswer:
        """Look up ``rdtype`` at ``qname``, chasing CNAMEs up to MAX_CNAME_DEPTH hops."""
        chain: list[str] = []
        seen = {qname.rstrip(".").lower()}
        current = qname
        authenticated = True
        for _ in range(MAX_CNAME_DEPTH + 1):
            one = self._lookup_once(current, rdtype)
            if isinstance(one, DnsAnswer):
                return DnsAnswer(qname, rdtype, one.status, chain=tuple(chain), detail=one.detail)
            answer = one
            authenticated = authenticated and bool(answer.response.flags & dns.flags.AD)
            for cname_rrset in answer.chaining_result.cnames:
                for rd in cname_rrset:
                    chain.append(rd.target.to_text(omit_final_dot=True))
            if self.dnssec_required and not authenticated:
                return DnsAnswer(
                    qname,
                    rdtype,
                    "unauthenticated",
                    chain=tuple(chain),
                    detail="the resolver did not set the AD bit (BR 3.2.2.8.1)",
                )
            if answer.rrset is not None:
                return DnsAnswer(qname, rdtype, OK, tuple(answer.rrset), tuple(chain), authenticated)
            target = answer.canonical_name.to_text(omit_final_dot=True).lower()
            if target == current.rstrip(".").lower():
                return DnsAnswer(qname, rdtype, NODATA, chain=tuple(chain), authenticated=authenticated)
            if target in seen:
                return DnsAnswer(qname, rdtype, "cname-loop", chain=tuple(chain), detail=f"CNAME loop at {target}")
            seen.add(target)
            current = target  # the resolver gave us only the CNAME: ask for its target ourselves
        return DnsAnswer(
            qname, rdtype, "cname-loop", chain=tuple(chain), detail=f"more than {MAX_CNAME_DEPTH} CNAME hops"
        )

    def _lookup_once(self, qname: str, rdtype: str) -> dns.resolver.Answer | DnsAnswer:
        try:
            answer = self._resolver().resolve(dns.name.from_text(qname), rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.responses().values())  # type: ignore[no-untyped-call]
            untrusted = _untrusted(qname, rdtype, responses[-1]) if responses else None
            return untrusted or DnsAnswer(qname, rdtype, NXDOMAIN)
        except dns.resolver.NoNameservers as exc:
            return DnsAnswer(qname, rdtype, "servfail", detail=str(exc)[:300])
        except dns.exception.Timeout:
            return DnsAnswer(qname, rdtype, "timeout", detail=f"no answer within {self._lifetime} s")
        except dns.exception.DNSException as exc:
            return DnsAnswer(qname, rdtype, "error", detail=f"{type(exc).__name__}: {exc}"[:300])
        return _untrusted(qname, rdtype, answer.response) or answer

    def addresses(self, host: str) -> tuple[list[str], list[DnsAnswer]]:
        """The A and AAAA addresses of ``host`` (IPv4 first) and the answers they came from."""
        answers = [self.lookup(host, "A"), self.lookup(host, "AAAA")]
        addrs = [r.address for a in answers if a.status == OK for r in a.records if hasattr(r, "address")]
        return addrs, answers


def _untrusted(qname: str, rdtype: str, response: dns.message.Message) -> DnsAnswer | None:
    """A failed answer if ``response`` did not come from a recursive resolver, else None.

    BR 3.2.2.8 and RFC 8659 §3 let only a lookup that succeeded count as "no CAA records"; an authoritative
    server (no RA flag) or a referral (no answer, NS records in the authority section) did not look the name up.
    """
    if not response.flags & dns.flags.RA:
        return DnsAnswer(
            qname,
            rdtype,
            NOT_RECURSIVE,
            detail="the configured resolver is not recursive (no RA flag in its answer); "
            "ECERT_DNS_RESOLVERS must name recursive resolvers",
        )
    if response.rcode() == dns.rcode.NOERROR and not response.answer and _is_referral(response):
        return DnsAnswer(qname, rdtype, REFERRAL, detail="the resolver answered with a referral, not an answer")
    return None


def _is_referral(response: dns.message.Message) -> bool:
    types = {rrset.rdtype for rrset in response.authority}
    return dns.rdatatype.NS in types and dns.rdatatype.SOA not in types


def _txt_strings(record: Any) -> str:
    # BR 3.2.2.4.7 + RFC 7208 habit: the character-strings of one TXT record form one value.
    return b"".join(record.strings).decode("utf-8", errors="replace")


def check_dns_txt(
    client: DnsClient, domain: str, code: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> DomainResult:
    """BR 3.2.2.4.7: a TXT record holding the code at the name or at ``_pki-validation.<name>``."""
    base = dns_name_for_validation(domain)
    started = clock()
    queries: list[dict[str, Any]] = []
    seen: list[str] = []
    failures: list[str] = []
    matched_at: str | None = None
    for qname in (base, f"{PKI_VALIDATION_LABEL}.{base}"):
        ans = client.lookup(qname, "TXT")
        queries.append(ans.to_evidence())
        if ans.failed:
            failures.append(f"{ans.status.upper()} for TXT {qname}" + (f" ({ans.detail})" if ans.detail else ""))
            continue
        for rec in ans.records:
            text = _txt_strings(rec)
            seen.append(text)
            if text.strip() == code:
                matched_at = matched_at or qname
    evidence = {
        "resolvers": list(client.resolvers),
        "dnssec_required": client.dnssec_required,
        "queries": queries,
        "txt_seen": seen,
        "started_at": started.isoformat(),
        "finished_at": clock().isoformat(),
    }
    if matched_at:
        evidence["matched_at"] = matched_at
        return DomainResult(
            domain, DcvMethod.DNS.value, True, f"Validation Code found in TXT at {matched_at}", evidence
        )
    if failures:
        reason = "DNS lookup failed: " + "; ".join(failures)
    elif seen:
        reason = f"TXT records at {base} and {PKI_VALIDATION_LABEL}.{base} do not hold the Validation Code"
    else:
        reason = f"no TXT record at {base} or {PKI_VALIDATION_LABEL}.{base}"
    return DomainResult(domain, DcvMethod.DNS.value, False, reason, evidence)
