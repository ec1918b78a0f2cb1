"""ACME http-01 (RFC 8555 8.3, BR 3.2.2.4.19): the key authorization at /.well-known/acme-challenge/TOKEN.

The fetch is the website method's (validation/http_file.py): our own resolution through the configured
resolver, the netguard on every address, redirects walked by the BR rules on the Authorized Ports, time and
size bounded. Only the start URL and the comparison differ: the body, whitespace trimmed, must equal the key
authorization exactly (RFC 8555 8.3), not merely contain it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ecert.core.dcv_rules import DcvMethod, DomainResult
from ecert.validation.dns import DnsClient
from ecert.validation.http_file import DEFAULT_LIMITS, HttpLimits, _Fetcher, _Refused

__all__ = ["CHALLENGE_PATH", "check_http01"]

CHALLENGE_PATH = "/.well-known/acme-challenge/"


def _start_url(domain: str, token: str, port: int) -> str:
    netloc = domain if port == 80 else f"{domain}:{port}"
    return f"http://{netloc}{CHALLENGE_PATH}{token}"


_EXCERPT = 200  # the fetcher keeps the first 200 bytes of a body in its log


def _exact(log: list[dict[str, Any]], key_authz: str) -> bool:
    """RFC 8555 8.3: the whole body, whitespace trimmed, is the key authorization (so it fits the excerpt)."""
    if not log or int(log[-1].get("bytes", _EXCERPT + 1)) > _EXCERPT:
        return False
    return str(log[-1].get("body_excerpt", "")).strip() == key_authz


def check_http01(
    dns_client: DnsClient,
    domain: str,
    token: str,
    key_authz: str,
    *,
    http_port: int = 80,
    https_port: int = 443,
    allow_private: bool = False,
    limits: HttpLimits = DEFAULT_LIMITS,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainResult:
    """Fetch the challenge URL over http on the Authorized Port and compare the body with ``key_authz``."""
    started = clock()
    fetcher = _Fetcher(
        dns_client,
        http_port=http_port,
        https_port=https_port,
        allow_private=allow_private,
        limits=limits,
        transport=transport,
    )
    log: list[dict[str, Any]] = []
    url = _start_url(domain, token, http_port)
    problem = None
    try:
        reason = fetcher.fetch(url, key_authz, time.monotonic() + limits.total_time, log)
        passed = _exact(log, key_authz)
        if not passed:
            reason, problem = (
                f"the body at {log[-1].get('url')} is not exactly the key authorization",
                "incorrectResponse",
            )
    except _Refused as exc:
        passed, reason = False, str(exc)
        problem = "incorrectResponse" if "does not hold" in reason or "HTTP " in reason else "connection"
    finally:
        fetcher.close()
    evidence: dict[str, Any] = {
        "url": url,
        "requests": log,
        "resolvers": list(dns_client.resolvers),
        "started_at": started.isoformat(),
        "finished_at": clock().isoformat(),
    }
    if problem:
        evidence["problem"] = problem
    return DomainResult(domain, DcvMethod.ACME_HTTP.value, passed, reason, evidence)
