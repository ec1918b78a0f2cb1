"""The Validator: one entry point for DCV, CAA and validation e-mail, with BR 3.2.2.9 corroboration.

Services call this and record what it returns; it never touches the database and never sees a key.
The network (resolver, HTTP transport, perspective transport) and the clock are injected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from ecert.core import rule_dates
from ecert.core.dcv_rules import (
    CaaDecision,
    DcvMethod,
    DomainResult,
    QuorumDecision,
    quorum_decision,
)
from ecert.core.errors import ConfigError
from ecert.settings import Settings
from ecert.validation.caa import check_caa
from ecert.validation.dns import DnsClient, check_dns_txt
from ecert.validation.email import check_email_code, send_code
from ecert.validation.http_file import DEFAULT_LIMITS, HttpLimits, check_http_file
from ecert.validation.perspectives import PerspectiveAnswer, ask_perspectives, perspective_client

__all__ = ["Validator"]

# BR 3.2.2.9: corroboration covers the network methods and CAA; e-mail is checked by the code typed back.
_CORROBORATED = frozenset({DcvMethod.DNS, DcvMethod.HTTP_FILE})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Validator:
    """Runs DCV and CAA checks from the primary perspective and, if configured, corroborates them remotely."""

    def __init__(
        self,
        settings: Settings,
        *,
        dns_client: DnsClient | None = None,
        http_transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _utcnow,
        perspective_secret: bytes | str | None = None,
        perspective_transport: httpx.BaseTransport | None = None,
        perspective_timeout: float = 10.0,
        http_limits: HttpLimits = DEFAULT_LIMITS,
        corroborate: bool = True,
        max_workers: int = 16,
    ) -> None:
        self.settings = settings
        self.dns = dns_client or DnsClient(settings.dns_resolvers, dnssec_required=settings.dnssec_required)
        self.http_transport = http_transport
        self.clock = clock
        self.http_limits = http_limits
        self.perspective_urls = tuple(settings.perspective_urls) if corroborate else ()
        if isinstance(perspective_secret, str):
            perspective_secret = perspective_secret.encode()
        if self.perspective_urls and not perspective_secret:
            raise ConfigError("remote perspectives are configured without a shared secret", rule="BR 3.2.2.9")
        self.perspective_secret = perspective_secret or b""
        self.perspective_timeout = perspective_timeout
        self._perspective_http = (
            perspective_client(perspective_timeout, perspective_transport) if self.perspective_urls else None
        )
        self.max_workers = max_workers

    # --- DCV ----------------------------------------------------------------------------------

    def check(
        self,
        method: DcvMethod | str,
        domain: str,
        code: str,
        *,
        email_address: str | None = None,
        entered_code: str | None = None,
    ) -> DomainResult:
        """Check one domain by one method; the result's evidence is what the audit log should keep.

        For e-mail, ``code`` is the code that was sent and ``entered_code`` the one typed back.
        """
        m = DcvMethod(method)
        primary = self._check_local(m, domain, code, email_address, entered_code)
        if m not in _CORROBORATED or not self.perspective_urls or not primary.passed:
            return primary
        payload = {"kind": "dcv", "method": m.value, "domain": domain, "code": code}
        answers = self._ask(payload)
        quorum = quorum_decision(
            primary.passed,
            [bool(a.answer.get("passed")) if a.answer is not None else None for a in answers],
            rule_dates.remote_perspectives_required(self.clock()),
        )
        evidence = dict(primary.evidence)
        evidence["mpic"] = self._mpic_evidence(answers, quorum)
        reason = primary.reason if quorum.corroborated else f"{primary.reason}, but {quorum.reason}"
        return DomainResult(domain, m.value, quorum.corroborated, reason, evidence, primary.br_version)

    def check_many(self, method: DcvMethod | str, items: Sequence[tuple[str, str]]) -> list[DomainResult]:
        """Check (domain, code) pairs concurrently; results in the order given."""
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(items)))) as pool:
            return list(pool.map(lambda item: self.check(method, item[0], item[1]), items))

    def _check_local(
        self, m: DcvMethod, domain: str, code: str, email_address: str | None, entered_code: str | None
    ) -> DomainResult:
        if m is DcvMethod.DNS:
            return check_dns_txt(self.dns, domain, code, self.clock)
        if m is DcvMethod.HTTP_FILE:
            return check_http_file(
                self.dns,
                domain,
                code,
                http_port=self.settings.http_port,
                https_port=self.settings.https_port,
                allow_private=self.settings.allow_private_addresses,
                limits=self.http_limits,
                transport=self.http_transport,
                clock=self.clock,
            )
        return check_email_code(domain, code, entered_code, email_address, self.clock)

    # --- CAA ----------------------------------------------------------------------------------

    def check_caa(
        self,
        names: Sequence[str],
        *,
        is_wildcard_by_name: Mapping[str, bool] | None = None,
        now: datetime | None = None,
        method: DcvMethod | str | None = None,
        account_uri: str | None = None,
    ) -> list[CaaDecision]:
        """RFC 8659 CAA decision for every name, at issuance time ``now`` (BR 3.2.2.8: within 8 hours)."""
        wild = dict(is_wildcard_by_name or {})
        checked_at = now or self.clock()
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(names)))) as pool:
            return list(
                pool.map(
                    lambda n: self._caa_one(n, wild.get(n, n.startswith("*.")), checked_at, method, account_uri),
                    names,
                )
            )

    def _caa_local(
        self, name: str, is_wildcard: bool, method: DcvMethod | str | None, account_uri: str | None
    ) -> CaaDecision:
        return check_caa(
            self.dns,
            name,
            is_wildcard=is_wildcard,
            issuer_domains=self.settings.caa_identities,
            account_uri=account_uri,
            method=method,
            clock=self.clock,
        )

    def _caa_one(
        self,
        name: str,
        is_wildcard: bool,
        now: datetime,
        method: DcvMethod | str | None,
        account_uri: str | None,
    ) -> CaaDecision:
        primary = self._caa_local(name, is_wildcard, method, account_uri)
        if not self.perspective_urls or not primary.permitted:
            return primary
        payload = {
            "kind": "caa",
            "name": name,
            "is_wildcard": is_wildcard,
            "method": DcvMethod(method).value if method else None,
            "account_uri": account_uri,
        }
        answers = self._ask(payload)
        quorum = quorum_decision(
            primary.permitted,
            [bool(a.answer.get("permitted")) if a.answer is not None else None for a in answers],
            rule_dates.remote_perspectives_required(now),
        )
        evidence = dict(primary.evidence)
        evidence["mpic"] = self._mpic_evidence(answers, quorum)
        reason = primary.reason if quorum.corroborated else f"{primary.reason}, but {quorum.reason}"
        return CaaDecision(name, quorum.corroborated, reason, primary.records, primary.relevant_name, evidence)

    # --- e-mail -------------------------------------------------------------------------------

    def send_email_code(self, domain: str, local_part: str, code: str, reference: str) -> None:
        """Send a (fresh) code to ``local_part@domain``; raises PolicyViolation or ValidationFailed."""
        send_code(
            smtp_host=self.settings.smtp_host,
            smtp_port=self.settings.smtp_port_for_dcv,
            mail_from=self.settings.mail_from,
            domain=domain,
            local_part=local_part,
            code=code,
            reference=reference,
        )

    # --- remote perspectives ------------------------------------------------------------------

    def local_check(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What a remote perspective runs for the primary: the same check, without corroboration."""
        kind = payload.get("kind")
        if kind == "dcv":
            m = DcvMethod(str(payload["method"]))
            if m not in _CORROBORATED:
                raise ValueError(f"method {m.value} is not checked remotely")
            return self._check_local(m, str(payload["domain"]), str(payload["code"]), None, None).to_dict()
        if kind == "caa":
            method = payload.get("method")
            account = payload.get("account_uri")
            return self._caa_local(
                str(payload["name"]),
                bool(payload.get("is_wildcard")),
                str(method) if method else None,
                str(account) if account else None,
            ).to_dict()
        if kind == "acme":  # RFC 8555 8 challenges, corroborated by the same perspectives
            from ecert.validation.acme import local_acme_check

            return local_acme_check(self, payload)
        raise ValueError(f"unknown check kind {kind!r}")

    def _ask(self, payload: Mapping[str, Any]) -> list[PerspectiveAnswer]:
        return ask_perspectives(
            self.perspective_urls,
            self.perspective_secret,
            payload,
            client=self._perspective_http,
            timeout=self.perspective_timeout,
        )

    def close(self) -> None:
        """Release pooled connections to the perspectives."""
        if self._perspective_http is not None:
            self._perspective_http.close()

    @staticmethod
    def _mpic_evidence(answers: Sequence[PerspectiveAnswer], quorum: QuorumDecision) -> dict[str, Any]:
        return {
            "perspectives": [a.to_evidence() for a in answers],
            "corroborated": quorum.corroborated,
            "reason": quorum.reason,
            "remote_used": quorum.remote_used,
            "non_corroborations": quorum.non_corroborations,
            "allowed_non_corroborations": quorum.allowed,
            "rule": "BR 3.2.2.9",
        }
