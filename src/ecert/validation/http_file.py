"""The website-change method (BR 3.2.2.4.18): fetch fileauth.txt, walking redirects by the BR's rules.

We resolve each host through the configured resolver ourselves and connect to that address, sending
the Host header (and SNI for https) of the name, so the fetch sees exactly what DNS said and never an
address the configuration forbids. Only the fixed well-known URL on the domain is ever requested; a
redirect is followed only to http/https on the Authorized Ports, with hops, time and size bounded.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from ecert.core.dcv_rules import VALIDATION_FILE_PATH, DcvMethod, DomainResult, dns_name_for_validation
from ecert.validation.dns import DnsClient
from ecert.validation.netguard import is_forbidden_address

__all__ = ["DEFAULT_LIMITS", "HttpLimits", "check_http_file", "REDIRECT_STATUSES"]

REDIRECT_STATUSES = frozenset({301, 302, 307, 308})  # BR 3.2.2.4.18: no other redirect counts


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on one domain's fetch: per-request timeout, total time, redirect hops, body bytes."""

    request_timeout: float = 5.0
    total_time: float = 15.0
    max_hops: int = 5
    max_body: int = 64 * 1024


DEFAULT_LIMITS = HttpLimits()


class _Refused(Exception):
    """A fetch that must stop here, with the human reason."""


@lru_cache(maxsize=1)
def _insecure_context() -> ssl.SSLContext:
    # BR 3.2.2.4.18 proves control by the file's content, not by the server certificate (as ACME
    # http-01 over a redirect to https): certificate errors must not block a validation. No CA
    # store is loaded, which also keeps a 50-name check from re-reading it 50 times.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _url_for(scheme: str, host: str, port: int) -> str:
    default = 80 if scheme == "http" else 443
    netloc = host if port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}{VALIDATION_FILE_PATH}"


class _Fetcher:
    def __init__(
        self,
        dns_client: DnsClient,
        *,
        http_port: int,
        https_port: int,
        allow_private: bool,
        limits: HttpLimits,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.dns = dns_client
        self.ports = {"http": http_port, "https": https_port}
        self.allow_private = allow_private
        self.limits = limits
        self.client = httpx.Client(
            follow_redirects=False,
            trust_env=False,
            verify=_insecure_context(),
            timeout=httpx.Timeout(limits.request_timeout),
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str, code: str, deadline: float, log: list[dict[str, Any]]) -> str:
        """Walk from ``url``; return the success reason or raise _Refused with the failure reason."""
        for hop in range(self.limits.max_hops + 1):
            entry: dict[str, Any] = {"url": url, "hop": hop}
            log.append(entry)
            parts = urlsplit(url)
            scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
            port = parts.port or (80 if scheme == "http" else 443)
            if scheme not in self.ports:
                raise _Refused(f"redirect to a non-http(s) URL {url}")
            if port != self.ports[scheme]:
                raise _Refused(f"redirect to {url}: port {port} is not an Authorized Port for {scheme}")
            if not host:
                raise _Refused(f"no host in {url}")
            address = self._address(host, entry)
            status, location, body = self._get(url, scheme, host, port, address, deadline, entry)
            if status in REDIRECT_STATUSES:
                if not location:
                    raise _Refused(f"HTTP {status} without Location at {url}")
                url = urljoin(url, location)
                continue
            if 300 <= status < 400:
                raise _Refused(f"HTTP {status} redirect at {url} is not one of 301, 302, 307, 308")
            if not 200 <= status < 300:
                raise _Refused(f"HTTP {status} at {url}")
            if code in body.strip():
                return f"Validation Code found at {url}"
            raise _Refused(f"the file at {url} does not hold the Validation Code")
        raise _Refused(f"more than {self.limits.max_hops} redirects starting at the validation URL")

    def _address(self, host: str, entry: dict[str, Any]) -> str:
        try:
            ip = ipaddress.ip_address(host)
            addresses = [str(ip)]
        except ValueError:
            addresses, answers = self.dns.addresses(host)
            entry["dns"] = [a.to_evidence() for a in answers]
            if not addresses:
                failed = [a for a in answers if a.failed]
                if failed:
                    raise _Refused(f"DNS lookup of {host} failed: {failed[0].status.upper()}") from None
                raise _Refused(f"{host} has no A or AAAA record") from None
        allowed = [a for a in addresses if self.allow_private or not is_forbidden_address(a)]
        if not allowed:
            raise _Refused(f"{host} resolves to non-public address {addresses[0]}; refusing to connect")
        entry["address"] = allowed[0]
        return allowed[0]

    def _get(
        self,
        url: str,
        scheme: str,
        host: str,
        port: int,
        address: str,
        deadline: float,
        entry: dict[str, Any],
    ) -> tuple[int, str | None, str]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Refused(f"time limit of {self.limits.total_time:g} s reached before fetching {url}")
        timeout = min(self.limits.request_timeout, remaining)
        ip_host = f"[{address}]" if ":" in address else address
        parts = urlsplit(url)
        target = f"{scheme}://{ip_host}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        host_header = host if port == (80 if scheme == "http" else 443) else f"{host}:{port}"
        headers = {"Host": host_header, "User-Agent": "ecert-dcv/1 (BR 3.2.2.4.18)", "Accept": "*/*"}
        extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
        if scheme == "https":
            extensions["sni_hostname"] = host
        request = self.client.build_request("GET", target, headers=headers, extensions=extensions)
        try:
            response = self.client.send(request, stream=True)
        except httpx.TimeoutException:
            entry["error"] = "timeout"
            raise _Refused(f"no answer from {url} within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
            raise _Refused(f"could not fetch {url}: {type(exc).__name__}") from None
        try:
            entry["status"] = response.status_code
            location = response.headers.get("location")
            if location:
                entry["location"] = location
            body = b""
            if 200 <= response.status_code < 300:
                body = self._read_capped(response, url, deadline, entry)
            return response.status_code, location, body.decode("utf-8", errors="replace")
        finally:
            response.close()

    def _read_capped(self, response: httpx.Response, url: str, deadline: float, entry: dict[str, Any]) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > self.limits.max_body:
                    entry["bytes"] = size
                    raise _Refused(f"the file at {url} is larger than {self.limits.max_body} bytes")
                if time.monotonic() > deadline:
                    raise _Refused(f"time limit of {self.limits.total_time:g} s reached reading {url}")
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise _Refused(f"reading {url} timed out") from None
        except httpx.HTTPError as exc:
            raise _Refused(f"could not read {url}: {type(exc).__name__}") from None
        entry["bytes"] = size
        body = b"".join(chunks)
        entry["body_excerpt"] = body[:200].decode("utf-8", errors="replace")
        return body


def check_http_file(
    dns_client: DnsClient,
    domain: str,
    code: str,
    *,
    http_port: int = 80,
    https_port: int = 443,
    allow_private: bool = False,
    limits: HttpLimits = DEFAULT_LIMITS,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainResult:
    """BR 3.2.2.4.18: the code must be in fileauth.txt over http, or else over https, with a 2xx answer."""
    base = dns_name_for_validation(domain)
    if base != domain.strip().rstrip(".").lower():
        return DomainResult(
            domain,
            DcvMethod.HTTP_FILE.value,
            False,
            "the website method cannot validate a wildcard name (BR 3.2.2.4.18)",
            {},
        )
    started = clock()
    deadline = time.monotonic() + limits.total_time
    fetcher = _Fetcher(
        dns_client,
        http_port=http_port,
        https_port=https_port,
        allow_private=allow_private,
        limits=limits,
        transport=transport,
    )
    attempts: list[dict[str, Any]] = []
    reasons: list[str] = []
    passed_reason: str | None = None
    try:
        for scheme, port in (("http", http_port), ("https", https_port)):
            log: list[dict[str, Any]] = []
            attempts.append({"start": _url_for(scheme, base, port), "requests": log})
            try:
                passed_reason = fetcher.fetch(_url_for(scheme, base, port), code, deadline, log)
                break
            except _Refused as exc:
                reasons.append(str(exc))
    finally:
        fetcher.close()
    evidence = {
        "attempts": attempts,
        "resolvers": list(dns_client.resolvers),
        "limits": {"hops": limits.max_hops, "bytes": limits.max_body, "seconds": limits.total_time},
        "started_at": started.isoformat(),
        "finished_at": clock().isoformat(),
    }
    if passed_reason:
        return DomainResult(domain, DcvMethod.HTTP_FILE.value, True, passed_reason, evidence)
    return DomainResult(domain, DcvMethod.HTTP_FILE.value, False, "; ".join(reasons), evidence)
