"""What an issuance may rely on: validation evidence per name, a vetted organisation, and never a CA key.

Pure rules, one function each, used only by the registration authority (``services.registration``):
every front door reaches them through it, so each rule below is enforced in exactly one place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import dcv_rules, rule_dates
from .errors import PolicyViolation, ValidationFailed

__all__ = [
    "DomainEvidence",
    "OrganisationEvidence",
    "covering_evidence",
    "covers_all",
    "names_outside",
    "require_vetting_current",
    "refuse_ca_key",
    "refuse_forbidden_key",
    "RULE_DCV",
    "RULE_VETTING",
    "RULE_CA_KEY",
]

RULE_DCV = "BR 3.2.2.4 / BR 4.2.1"
RULE_VETTING = "BR 3.2.2.1 / BR 4.2.1"
RULE_CA_KEY = "BR 6.1.1.3"


@dataclass(frozen=True)
class DomainEvidence:
    """One recorded domain validation, as the registration authority may rely on it.

    ``namespace`` evidence (an operator-held validation of a parent) covers every name below it;
    other evidence covers exactly its Authorization Domain Name.
    """

    validation_id: int
    domain: str
    method: str
    validated_at: datetime
    source: str  # "application" | "operator" | "acme"
    namespace: bool = False

    def covers(self, name: str) -> bool:
        if self.namespace:
            return dcv_rules.under_namespace(name, self.domain)
        return dcv_rules.dns_name_for_validation(name) == self.domain

    def as_record(self) -> dict[str, object]:
        """The reference kept on the issuance record, so an auditor can trace a certificate to its DCV."""
        return {
            "validation_id": self.validation_id,
            "domain": self.domain,
            "method": self.method,
            "validated_at": self.validated_at.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class OrganisationEvidence:
    """The vetting an issuance relies on for its subject: an application, or an operator-recorded vetting."""

    kind: str  # "application" | "vetting"
    ref: int
    vetted_at: datetime
    label: str  # the reference number, or the vetting's organisation name, for messages and audit

    def as_record(self) -> dict[str, object]:
        return {"kind": self.kind, "ref": self.ref, "vetted_at": self.vetted_at.isoformat(), "label": self.label}


def _newest_first(evidence: Iterable[DomainEvidence]) -> list[DomainEvidence]:
    return sorted(evidence, key=lambda e: e.validated_at, reverse=True)


def covering_evidence(
    names: Iterable[str], evidence: Iterable[DomainEvidence], now: datetime
) -> dict[str, DomainEvidence]:
    """For every name, the newest evidence that covers it inside the BR 4.2.1 reuse period; else refuse.

    BR 3.2.2.4: the CA confirms control of every FQDN before issuance; BR 4.2.1: a validation may be reused
    only for the period ``rule_dates.dcv_reuse_days`` gives at the time of reuse. The refusal lists every
    name without evidence, so the operator or subscriber knows exactly what to validate.
    """
    usable = [e for e in _newest_first(evidence) if dcv_rules.reusable(e.validated_at, now)]
    chosen: dict[str, DomainEvidence] = {}
    missing: list[str] = []
    for name in names:
        found = next((e for e in usable if e.covers(name)), None)
        if found is None:
            missing.append(name)
        else:
            chosen[name] = found
    if missing:
        raise ValidationFailed(
            "domain control has not been validated, or its validation is older than the reuse period, "
            f"for: {', '.join(missing)}; validate these names first",
            rule=RULE_DCV,
            value=tuple(missing),
        )
    return chosen


def covers_all(names: Iterable[str], evidence: Iterable[DomainEvidence], now: datetime) -> bool:
    """True if every name has evidence inside its reuse period: the same rule as :func:`covering_evidence`,
    asked ahead of issuance (an application wholly under operator-held validations skips the DCV step)."""
    try:
        covering_evidence(names, evidence, now)
    except ValidationFailed:
        return False
    return True


def names_outside(names: Iterable[str], covered: Collection[str], namespaces: Iterable[str] = ()) -> tuple[str, ...]:
    """The names an organisation may not be issued: neither among the names it was vetted for (its application)
    nor under a namespace the operator validated for that organisation (issue 13 point 2; BR 3.2.2.4.7 lets a
    validated Authorization Domain Name cover the names below it). Whether evidence is current is decided
    later, per name, by :func:`covering_evidence`."""
    held = tuple(namespaces)
    return tuple(
        n for n in dict.fromkeys(names) if n not in covered and not any(dcv_rules.under_namespace(n, ns) for ns in held)
    )


def require_vetting_current(organisation: OrganisationEvidence, now: datetime) -> None:
    """Refuse an organisation vetting older than the BR 4.2.1 reuse period for subject identity information."""
    limit = timedelta(days=rule_dates.identity_reuse_days(now))
    if organisation.vetted_at > now or now - organisation.vetted_at > limit:
        raise ValidationFailed(
            f"the organisation vetting of {organisation.label} was done on {organisation.vetted_at.date()} and "
            f"may be relied on for {limit.days} days only; vet the organisation again",
            rule=RULE_VETTING,
            value=organisation.label,
        )


def refuse_ca_key(spki_sha256: str, ca_keys: Mapping[str, str]) -> None:
    """BR 6.1.1.3: a subscriber key that is one of this instance's CA keys (any generation) is refused.

    ``ca_keys`` maps the SPKI SHA-256 of every CA, cross and responder certificate to its label.
    """
    label = ca_keys.get(spki_sha256)
    if label is not None:
        raise PolicyViolation(
            f"key rejected: this public key belongs to the CA certificate {label!r}; make a new key for the server",
            rule=RULE_CA_KEY,
            value=spki_sha256,
        )


def refuse_forbidden_key(spki_sha256: str, forbidden: Collection[str], what: str) -> None:
    """BR 6.1.1.3 (and RFC 8555 11.1): keys the caller names as never certifiable, e.g. the ACME account key."""
    if spki_sha256 in forbidden:
        raise PolicyViolation(
            f"key rejected: the CSR's key is {what}; use a separate key", rule=RULE_CA_KEY, value=spki_sha256
        )
