"""ACME challenges through the Validator: the local check by type, then BR 3.2.2.9 corroboration.

A challenge is checked from the primary perspective; when it passes and remote perspectives are configured,
each perspective runs the same check (``kind: "acme"`` in its signed request, answered by
:func:`local_acme_check`) and the quorum decides, exactly as for the portal's methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ecert.core import rule_dates
from ecert.core.acme_orders import dns01_txt_value
from ecert.core.dcv_rules import DomainResult, quorum_decision
from ecert.validation.acme_dns import check_dns01
from ecert.validation.acme_http import check_http01
from ecert.validation.acme_tlsalpn import check_tls_alpn01

if TYPE_CHECKING:
    from ecert.validation.validator import Validator

__all__ = ["check_acme", "local_acme_check"]


def _local(validator: Validator, challenge_type: str, domain: str, token: str, key_authz: str) -> DomainResult:
    settings = validator.settings
    if challenge_type == "http-01":
        return check_http01(
            validator.dns,
            domain,
            token,
            key_authz,
            http_port=settings.http_port,
            https_port=settings.https_port,
            allow_private=settings.allow_private_addresses,
            limits=validator.http_limits,
            transport=validator.http_transport,
            clock=validator.clock,
        )
    if challenge_type == "dns-01":
        return check_dns01(validator.dns, domain, dns01_txt_value(key_authz), validator.clock)
    if challenge_type == "tls-alpn-01":
        return check_tls_alpn01(
            validator.dns,
            domain,
            key_authz,
            port=settings.https_port,
            allow_private=settings.allow_private_addresses,
            clock=validator.clock,
        )
    raise ValueError(f"unknown ACME challenge type {challenge_type!r}")


def local_acme_check(validator: Validator, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a remote perspective runs for the primary: the same challenge check, without corroboration."""
    return _local(
        validator, str(payload["type"]), str(payload["domain"]), str(payload["token"]), str(payload["key_authz"])
    ).to_dict()


def check_acme(validator: Validator, challenge_type: str, domain: str, token: str, key_authz: str) -> DomainResult:
    """Check one challenge from here, then corroborate a pass remotely (BR 3.2.2.9); evidence keeps both."""
    primary = _local(validator, challenge_type, domain, token, key_authz)
    if not validator.perspective_urls or not primary.passed:
        return primary
    payload = {"kind": "acme", "type": challenge_type, "domain": domain, "token": token, "key_authz": key_authz}
    answers = validator._ask(payload)
    quorum = quorum_decision(
        primary.passed,
        [bool(a.answer.get("passed")) if a.answer is not None else None for a in answers],
        rule_dates.remote_perspectives_required(validator.clock()),
    )
    evidence = dict(primary.evidence)
    evidence["mpic"] = validator._mpic_evidence(answers, quorum)
    if not quorum.corroborated:
        evidence["problem"] = "incorrectResponse"
    reason = primary.reason if quorum.corroborated else f"{primary.reason}, but {quorum.reason}"
    return DomainResult(domain, primary.method, quorum.corroborated, reason, evidence, primary.br_version)
