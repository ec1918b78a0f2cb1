"""One CT log over HTTP: add-chain and add-pre-chain (RFC 6962 4.1) with a timeout and bounded retries."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..core.ct import CtLog, SignedCertificateTimestamp
from ..core.errors import TransparencyFailed

__all__ = ["LogClient", "RetryPolicy", "new_http_client"]


@dataclass(frozen=True)
class RetryPolicy:
    """How long one log may take: each attempt gets ``timeout`` seconds; at most ``attempts`` attempts,
    waiting ``backoff`` * 2**n between them. Only failures a retry can cure are retried (network, 5xx, 429)."""

    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.25


def new_http_client(timeout: float) -> httpx.Client:
    """A client that follows no redirect and reads no proxy setting from the environment (stack.md)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )


class _Retryable(Exception):
    pass


class LogClient:
    """Submits chains to logs; one instance is shared by every thread (httpx clients are thread-safe)."""

    def __init__(
        self, http: httpx.Client, retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._http = http
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def add_pre_chain(self, log: CtLog, chain_der: Sequence[bytes]) -> SignedCertificateTimestamp:
        """Submit a precertificate and its issuer chain; the SCT is returned unverified (see submit.py)."""
        return SignedCertificateTimestamp.from_json(self._post(log, "ct/v1/add-pre-chain", chain_der))

    def add_chain(self, log: CtLog, chain_der: Sequence[bytes]) -> SignedCertificateTimestamp:
        return SignedCertificateTimestamp.from_json(self._post(log, "ct/v1/add-chain", chain_der))

    def _post(self, log: CtLog, path: str, chain_der: Sequence[bytes]) -> dict[str, Any]:
        body = {"chain": [base64.b64encode(d).decode() for d in chain_der]}
        last = "no attempt made"
        for attempt in range(self.retry.attempts):
            if attempt:
                self._sleep(self.retry.backoff * 2 ** (attempt - 1))
            try:
                return self._post_once(log.url + path, body)
            except _Retryable as exc:
                last = str(exc)
        raise TransparencyFailed(
            f"{log.description}: {last} after {self.retry.attempts} attempt(s)", rule="RFC 6962 4.1", value=log.url
        )

    def _post_once(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(url, json=body, timeout=self.retry.timeout)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self.retry.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise TransparencyFailed(
                f"the log refused the chain: HTTP {response.status_code} {response.text[:200]}",
                rule="RFC 6962 4.1",
                value=url,
            )
        try:
            doc = response.json()
        except ValueError:
            raise TransparencyFailed(
                "the log answered with something other than JSON", rule="RFC 6962 4.1", value=url
            ) from None
        if not isinstance(doc, dict):
            raise TransparencyFailed("the log's answer is not a JSON object", rule="RFC 6962 4.1", value=url)
        return doc
