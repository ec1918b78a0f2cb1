"""Probes of the CA's own network dependencies, for `ecert-ca doctor`: is a resolver recursive and validating,
does a remote perspective answer. Nothing here decides; the doctor service judges the answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import httpx

from .dns import parse_resolver

__all__ = ["ResolverProbe", "probe_resolver", "probe_health"]


@dataclass(frozen=True)
class ResolverProbe:
    """What one resolver said to a DNSSEC-signed name: RA (recursion available) and AD (authenticated data)."""

    resolver: str
    recursive: bool
    validating: bool
    rcode: str | None
    error: str | None = None


def probe_resolver(spec: str, qname: str, *, timeout: float = 3.0) -> ResolverProbe:
    """Ask ``spec`` (host:port) for the SOA of ``qname`` with RD, DO and AD set, over UDP then TCP if truncated."""
    host, port = parse_resolver(spec)
    query = dns.message.make_query(qname, "SOA", want_dnssec=True)
    query.flags |= dns.flags.RD | dns.flags.AD
    try:
        response, _ = dns.query.udp_with_fallback(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        return ResolverProbe(spec, False, False, None, f"{type(exc).__name__}: {exc}"[:200] or "no answer")
    return ResolverProbe(
        spec,
        bool(response.flags & dns.flags.RA),
        bool(response.flags & dns.flags.AD),
        dns.rcode.to_text(response.rcode()),
    )


def probe_health(url: str, *, timeout: float = 5.0) -> str | None:
    """GET ``url``/health of a remote perspective; None when it answers 200, else why not."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
            response = client.get(url.rstrip("/") + "/health")
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    return None if response.status_code == 200 else f"HTTP {response.status_code}"
