"""Pure domain-control-validation rules: methods per certificate type, codes, reuse, CAA and quorum decisions.

Nothing here touches the network or reads the clock: callers pass ``now``. The network side lives in
``ecert.validation``; it gathers what DNS/HTTP/SMTP said and hands it to these functions to decide.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ecert.core import rule_dates
from ecert.core.errors import EcertError, PolicyViolation
from ecert.core.names import registrable_domain

__all__ = [
    "CERT_TYPES",
    "DcvMethod",
    "ChallengeStatus",
    "ChallengeEvent",
    "LIVE_CHALLENGE_STATUSES",
    "challenge_move",
    "MethodOffer",
    "DomainResult",
    "Instructions",
    "CaaRecord",
    "CaaDecision",
    "QuorumDecision",
    "CONSTRUCTED_LOCAL_PARTS",
    "CODE_VALIDITY",
    "VALIDATION_FILE_PATH",
    "PKI_VALIDATION_LABEL",
    "CAA_METHOD_TOKENS",
    "applicable_methods",
    "ensure_method_applicable",
    "new_validation_code",
    "code_expired",
    "codes_equal",
    "reusable",
    "dns_name_for_validation",
    "under_namespace",
    "authorization_domain_names",
    "ensure_authorization_domain_name",
    "constructed_addresses",
    "ensure_constructed_address",
    "code_shared_by_names",
    "instructions",
    "parse_caa_value",
    "caa_permits",
    "allowed_non_corroborations",
    "quorum_decision",
]

# Certificate types of the seed's e-Cert (Server) product line.
CERT_TYPES = ("server", "wildcard", "multi", "ev", "ev_multi")
_MULTI_TYPES = frozenset({"multi", "ev_multi"})


class DcvMethod(StrEnum):
    """The three methods the seed offers, each a BR 3.2.2.4 subsection."""

    HTTP_FILE = "http_file"  # BR 3.2.2.4.18 Agreed-Upon Change to Website v2
    DNS = "dns"  # BR 3.2.2.4.7 DNS Change
    EMAIL = "email"  # BR 3.2.2.4.4 Constructed Email to Domain Contact
    # The ACME challenges (RFC 8555 8.3, 8.4; RFC 8737), recorded by the ACME front door, never offered by the portal.
    ACME_HTTP = "acme-http-01"  # BR 3.2.2.4.19 Agreed-Upon Change to Website - ACME
    ACME_DNS = "acme-dns-01"  # BR 3.2.2.4.7 DNS Change
    ACME_TLS_ALPN = "acme-tls-alpn-01"  # BR 3.2.2.4.20 TLS Using ALPN

    @property
    def br_section(self) -> str:
        return _BR_SECTION[self]


_BR_SECTION = {
    DcvMethod.HTTP_FILE: "BR 3.2.2.4.18",
    DcvMethod.DNS: "BR 3.2.2.4.7",
    DcvMethod.EMAIL: "BR 3.2.2.4.4",
    DcvMethod.ACME_HTTP: "BR 3.2.2.4.19",
    DcvMethod.ACME_DNS: "BR 3.2.2.4.7",
    DcvMethod.ACME_TLS_ALPN: "BR 3.2.2.4.20",
}


class ChallengeStatus(StrEnum):
    """Where one DCV challenge (a Validation Code for one name and method) stands; stored as text."""

    PENDING = "pending"  # made; not checked yet (or, for the operator's own, not passed yet)
    PASSED = "passed"  # the check found the code: evidence was recorded
    FAILED = "failed"  # the last check did not find it; the code stays usable until it ages out
    EXPIRED = "expired"  # older than 30 days, replaced by a fresh e-mail, or never delivered: it no longer counts


class ChallengeEvent(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    EXPIRE = "expire"


# A code counts while pending or failed (BR 3.2.2.4.18: usable for 30 days, however often it is checked).
LIVE_CHALLENGE_STATUSES = frozenset({ChallengeStatus.PENDING, ChallengeStatus.FAILED})
_CHALLENGE_MOVES: Mapping[tuple[ChallengeStatus, ChallengeEvent], ChallengeStatus] = {
    (ChallengeStatus.PENDING, ChallengeEvent.PASS): ChallengeStatus.PASSED,
    (ChallengeStatus.PENDING, ChallengeEvent.FAIL): ChallengeStatus.FAILED,
    (ChallengeStatus.PENDING, ChallengeEvent.EXPIRE): ChallengeStatus.EXPIRED,
    (ChallengeStatus.FAILED, ChallengeEvent.PASS): ChallengeStatus.PASSED,
    (ChallengeStatus.FAILED, ChallengeEvent.FAIL): ChallengeStatus.FAILED,
    (ChallengeStatus.FAILED, ChallengeEvent.EXPIRE): ChallengeStatus.EXPIRED,
}


def challenge_move(current: ChallengeStatus | str, event: ChallengeEvent) -> ChallengeStatus:
    """The status a challenge moves to on ``event``; a passed or expired code is spent (PolicyViolation)."""
    found = _CHALLENGE_MOVES.get((ChallengeStatus(current), event))
    if found is None:
        raise PolicyViolation(
            f"a {current} Validation Code cannot be checked again", rule="BR 3.2.2.4.18", value=str(current)
        )
    return found


# BR 3.2.2.4.4: the only local parts a constructed address may use.
CONSTRUCTED_LOCAL_PARTS = ("admin", "administrator", "webmaster", "hostmaster", "postmaster")
# BR 3.2.2.4.18 and BR 1.6.1 "Random Value": usable for no more than 30 days from creation.
CODE_VALIDITY = timedelta(days=30)
# BR 3.2.2.4.18: the file lives under this path on the Authorization Domain Name.
VALIDATION_FILE_PATH = "/.well-known/pki-validation/fileauth.txt"
# BR 3.2.2.4.7: the TXT record may sit at the name or at the name prefixed with this label.
PKI_VALIDATION_LABEL = "_pki-validation"
# BR 1.6.1 "Random Value": at least 112 bits of entropy; 24 bytes gives 192.
_CODE_BYTES = 24

EMAIL_DISCOURAGED_WARNING = (
    "Constructed e-mail validation is discouraged by the Baseline Requirements from 2026-03-15 and "
    "will be withdrawn on 2028-03-15 (BR 3.2.2.4.4); prefer the DNS or website method."
)

# RFC 8657 §4 names methods by their ACME labels. Our BR methods map onto the ACME ones that are the
# same BR method (dns-01 is a BR 3.2.2.4.7 DNS change, http-01 a BR 3.2.2.4.19/.18 website change);
# ecert-specific tokens are accepted too so a domain owner can name exactly the ecert method.
# Constructed e-mail has no ACME label, so only its ecert token permits it.
CAA_METHOD_TOKENS: Mapping[DcvMethod, frozenset[str]] = {
    DcvMethod.DNS: frozenset({"dns-01", "ecert-dns"}),
    DcvMethod.HTTP_FILE: frozenset({"http-01", "ecert-http-file"}),
    DcvMethod.EMAIL: frozenset({"ecert-email"}),
    DcvMethod.ACME_HTTP: frozenset({"http-01"}),
    DcvMethod.ACME_DNS: frozenset({"dns-01"}),
    DcvMethod.ACME_TLS_ALPN: frozenset({"tls-alpn-01"}),
}


@dataclass(frozen=True)
class MethodOffer:
    """A method offered for an application, with a warning to show beside it when the BR frowns on it."""

    method: DcvMethod
    br_section: str
    warning: str | None = None


@dataclass(frozen=True)
class DomainResult:
    """What one check of one domain found: the record an auditor samples (BR 3.2.2.4, BR 5.4.1)."""

    domain: str
    method: str
    passed: bool
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    br_version: str = rule_dates.BR_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "method": self.method,
            "passed": self.passed,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "br_version": self.br_version,
        }


@dataclass(frozen=True)
class Instructions:
    """What the portal shows the subscriber for one domain and method."""

    method: DcvMethod
    domain: str
    code: str
    file_name: str | None = None
    file_urls: tuple[str, ...] = ()
    file_content: str | None = None
    txt_hosts: tuple[str, ...] = ()
    txt_value: str | None = None
    txt_ttl: int | None = None
    email_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaaRecord:
    """One CAA resource record (RFC 8659 §4.1): flags, tag, value."""

    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        return bool(self.flags & 0x80)  # RFC 8659 §4.1: bit 0 (value 128) is the Issuer Critical Flag

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


@dataclass(frozen=True)
class CaaDecision:
    """Whether CAA permits this CA to issue for one name, why, and the records that decided it."""

    name: str
    permitted: bool
    reason: str
    records: tuple[CaaRecord, ...] = ()
    relevant_name: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "permitted": self.permitted,
            "reason": self.reason,
            "records": [str(r) for r in self.records],
            "relevant_name": self.relevant_name,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True)
class QuorumDecision:
    """The BR 3.2.2.9 verdict over the primary's determination and the remote perspectives' answers."""

    corroborated: bool
    reason: str
    remote_used: int
    non_corroborations: int
    allowed: int


# --- which methods ------------------------------------------------------------------------------


def _is_wildcard(name: str) -> bool:
    return name.startswith("*.")


def applicable_methods(cert_type: str, names: Sequence[str], now: datetime) -> tuple[MethodOffer, ...]:
    """The methods the seed offers for this certificate type and names, by date.

    The website method cannot prove control of a whole namespace (BR 3.2.2.4.18 forbids it for
    wildcard names); constructed e-mail is not offered for multi-domain certificates (seed, step 4C)
    and is switched off by date (BR 3.2.2.4.4, ballot SC-080).
    """
    if cert_type not in CERT_TYPES:
        raise PolicyViolation(f"Unknown certificate type {cert_type!r}.", rule="seed C.4", value=cert_type)
    offers: list[MethodOffer] = []
    wildcard = cert_type == "wildcard" or any(_is_wildcard(n) for n in names)
    if not wildcard:
        offers.append(MethodOffer(DcvMethod.HTTP_FILE, DcvMethod.HTTP_FILE.br_section))
    offers.append(MethodOffer(DcvMethod.DNS, DcvMethod.DNS.br_section))
    if cert_type not in _MULTI_TYPES:
        status = rule_dates.email_dcv_status(now)
        if status == "allowed":
            offers.append(MethodOffer(DcvMethod.EMAIL, DcvMethod.EMAIL.br_section))
        elif status == "discouraged":
            offers.append(MethodOffer(DcvMethod.EMAIL, DcvMethod.EMAIL.br_section, EMAIL_DISCOURAGED_WARNING))
    return tuple(offers)


def ensure_method_applicable(method: DcvMethod | str, cert_type: str, names: Sequence[str], now: datetime) -> DcvMethod:
    """Return the method if offered for this application; raise PolicyViolation naming the rule if not."""
    try:
        m = DcvMethod(method)
    except ValueError:
        raise PolicyViolation(f"Unknown validation method {method!r}.", rule="BR 3.2.2.4", value=method) from None
    if any(o.method is m for o in applicable_methods(cert_type, names, now)):
        return m
    if m is DcvMethod.HTTP_FILE:
        raise PolicyViolation(
            "The website method cannot validate a wildcard name; use the DNS method.",
            rule="BR 3.2.2.4.18",
            value=list(names),
        )
    if m is DcvMethod.EMAIL and cert_type in _MULTI_TYPES:
        raise PolicyViolation(
            "Constructed e-mail validation is not offered for multi-domain certificates.",
            rule="seed C.4",
            value=cert_type,
        )
    raise PolicyViolation(
        "Constructed e-mail validation is no longer permitted.", rule="BR 3.2.2.4.4", value=now.isoformat()
    )


# --- codes and reuse ----------------------------------------------------------------------------


def new_validation_code() -> str:
    """A fresh Validation Code with 192 bits from the OS CSPRNG (BR 1.6.1 asks for at least 112)."""
    return secrets.token_urlsafe(_CODE_BYTES)


def code_expired(created_at: datetime, now: datetime) -> bool:
    """True once the code is older than 30 days (BR 3.2.2.4.18, BR 1.6.1 Random Value)."""
    return now - created_at > CODE_VALIDITY


def codes_equal(expected: str, given: str) -> bool:
    """Compare a code the subscriber typed back in constant time, ignoring surrounding whitespace."""
    return hmac.compare_digest(expected.strip().encode(), given.strip().encode())


def reusable(validated_at: datetime, now: datetime) -> bool:
    """True while a validation may be reused for a new certificate (BR 4.2.1, period by date of reuse)."""
    if validated_at > now:
        return False
    return now - validated_at <= timedelta(days=rule_dates.dcv_reuse_days(now))


# --- names --------------------------------------------------------------------------------------


def dns_name_for_validation(name: str) -> str:
    """The name whose control is checked: a wildcard is validated on its base domain (BR 3.2.2.4.7)."""
    name = name.strip().rstrip(".").lower()
    return name[2:] if name.startswith("*.") else name


def under_namespace(name: str, namespace: str) -> bool:
    """True if the name (or a wildcard's base) equals the namespace or lies below it.

    An operator-held DNS validation of an Authorization Domain Name covers its subdomains (BR 3.2.2.4.7
    allows validating a parent; BR 1.6.1 "Authorization Domain Name").
    """
    base = dns_name_for_validation(name)
    ns = dns_name_for_validation(namespace)
    return base == ns or base.endswith("." + ns)


def authorization_domain_names(name: str) -> tuple[str, ...]:
    """The Authorization Domain Names of ``name``, the name itself first (BR 1.6.1 "Authorization Domain Name").

    A wildcard loses its ``*.``; then labels may be pruned from the left down to, and including, the Base
    Domain Name (the registrable domain), never further: ``www.shop.example.com.hk`` gives itself,
    ``shop.example.com.hk`` and ``example.com.hk``. A name with no registrable domain has only itself.
    """
    base = dns_name_for_validation(name)
    try:
        floor = registrable_domain(base)
    except EcertError:
        return (base,)
    if base != floor and not base.endswith("." + floor):
        return (base,)
    labels = base.split(".")
    pruned = len(labels) - len(floor.split("."))
    return tuple(".".join(labels[i:]) for i in range(pruned + 1))


def ensure_authorization_domain_name(name: str, adn: str) -> str:
    """Return ``adn`` normalised if it is an Authorization Domain Name of ``name``; raise naming the rule if not."""
    chosen = adn.strip().lower().rstrip(".")
    if chosen not in authorization_domain_names(name):
        raise PolicyViolation(
            f"{chosen[:253]} is not an Authorization Domain Name of {dns_name_for_validation(name)}: choose the "
            "name itself or one of its parent domains above the public suffix",
            rule="BR 3.2.2.4.4 / BR 1.6.1",
            value=chosen[:253],
        )
    return chosen


def constructed_addresses(domain: str) -> tuple[str, ...]:
    """Every address BR 3.2.2.4.4 allows for ``domain``: the five local parts at each of its ADNs.

    BR 3.2.2.4.4 constructs the address "at the Authorization Domain Name", so a parent down to the
    Base Domain Name counts as well as the name itself (``authorization_domain_names``).
    """
    return tuple(f"{local}@{adn}" for adn in authorization_domain_names(domain) for local in CONSTRUCTED_LOCAL_PARTS)


def ensure_constructed_address(domain: str, address: str) -> str:
    """Return the normalised address if it is a constructed one for ``domain`` (BR 3.2.2.4.4); raise otherwise."""
    normal = address.strip().lower()
    if normal not in constructed_addresses(domain):
        raise PolicyViolation(
            "Only admin, administrator, webmaster, hostmaster or postmaster at the domain or one of its "
            "parent domains may receive the code.",
            rule="BR 3.2.2.4.4",
            value=address[:320],
        )
    return normal


# BR 3.2.2.4.18 asks for a Random Value unique to the certificate request, and the file sits at one fixed
# path, so one code serves every name of an application (a site serving two names serves one file).
# BR 3.2.2.4.7 (DNS) and BR 3.2.2.4.4 (e-mail) keep a code per name: each record or mailbox is its own.
_SHARED_CODE_METHODS = frozenset({DcvMethod.HTTP_FILE})


def code_shared_by_names(method: DcvMethod | str) -> bool:
    """True when one Validation Code serves every name of an application (the website file, BR 3.2.2.4.18)."""
    return DcvMethod(method) in _SHARED_CODE_METHODS


def instructions(method: DcvMethod | str, domain: str, code: str, *, txt_ttl: int = 3600) -> Instructions:
    """What to show the subscriber: the file and its URLs, the TXT hosts and value, or the addresses."""
    m = DcvMethod(method)
    base = dns_name_for_validation(domain)
    if m is DcvMethod.HTTP_FILE:
        return Instructions(
            method=m,
            domain=domain,
            code=code,
            file_name="fileauth.txt",
            file_urls=(f"http://{base}{VALIDATION_FILE_PATH}", f"https://{base}{VALIDATION_FILE_PATH}"),
            file_content=code,
        )
    if m is DcvMethod.DNS:
        return Instructions(
            method=m,
            domain=domain,
            code=code,
            txt_hosts=(base, f"{PKI_VALIDATION_LABEL}.{base}"),
            txt_value=code,
            txt_ttl=txt_ttl,
        )
    return Instructions(method=m, domain=domain, code=code, email_addresses=constructed_addresses(base))


# --- CAA (RFC 8659, RFC 8657) -------------------------------------------------------------------

# RFC 8659 §4.2-4.4 and the IANA "Certification Authority Restriction Properties" registry.
_KNOWN_CAA_TAGS = frozenset({"issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc"})


def parse_caa_value(value: str) -> tuple[str | None, dict[str, str]] | None:
    """Parse an issue/issuewild value into (issuer domain or None, parameters); None if malformed.

    RFC 8659 §4.2: ``[issuer-domain-name] *(";" parameter)``, parameters ``tag=value``.
    """
    parts = value.split(";")
    issuer = parts[0].strip().lower().rstrip(".") or None
    if issuer is not None and (" " in issuer or "=" in issuer):
        return None
    params: dict[str, str] = {}
    for raw in parts[1:]:
        raw = raw.strip()
        if not raw:
            continue
        if "=" not in raw:
            return None
        key, _, val = raw.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not key.isalnum():
            return None
        params[key] = val
    return issuer, params


def _record_matches(
    record: CaaRecord,
    issuer_domains: frozenset[str],
    account_uri: str | None,
    method: DcvMethod | None,
) -> tuple[bool, str]:
    parsed = parse_caa_value(record.value)
    if parsed is None:
        return False, f"malformed value in {record}"
    issuer, params = parsed
    if issuer is None:
        return False, f"{record} forbids every CA"
    if issuer not in issuer_domains:
        return False, f"{record} names another CA"
    if "accounturi" in params and params["accounturi"] != account_uri:  # RFC 8657 §3
        return False, f"{record} is bound to another account"
    if "validationmethods" in params:  # RFC 8657 §4
        allowed = {t.strip().lower() for t in params["validationmethods"].split(",") if t.strip()}
        if method is None or not (allowed & CAA_METHOD_TOKENS[method]):
            return False, f"{record} does not allow the method used"
    return True, f"{record} names this CA"


def caa_permits(
    records_by_relevant_name: Mapping[str, Sequence[CaaRecord]],
    name: str,
    is_wildcard: bool,
    issuer_domains: Sequence[str],
    account_uri: str | None = None,
    method: DcvMethod | str | None = None,
) -> CaaDecision:
    """Decide RFC 8659 §4 for one name over what the tree climb found.

    ``records_by_relevant_name`` maps each name queried, in climbing order (the name first, then its
    parents), to the CAA records found there; the first non-empty set is the Relevant RRset (§3).
    """
    m = DcvMethod(method) if method is not None else None
    issuers = frozenset(d.lower().rstrip(".") for d in issuer_domains)
    relevant_name: str | None = None
    records: tuple[CaaRecord, ...] = ()
    for queried, found in records_by_relevant_name.items():
        if found:
            relevant_name, records = queried, tuple(found)
            break
    if not records:
        return CaaDecision(name, True, "no CAA records at the name or its parents (RFC 8659 §3)")
    for r in records:  # RFC 8659 §4.1: an unknown property with the critical flag forbids issuance
        if r.critical and r.tag.lower() not in _KNOWN_CAA_TAGS:
            return CaaDecision(
                name,
                False,
                f"unknown critical CAA property at {relevant_name}: {r} (RFC 8659 §4.1)",
                records,
                relevant_name,
            )
    issue = [r for r in records if r.tag.lower() == "issue"]
    issuewild = [r for r in records if r.tag.lower() == "issuewild"]
    # RFC 8659 §4.3: for a wildcard, issuewild takes precedence over issue when present.
    chosen, tag = (issuewild, "issuewild") if is_wildcard and issuewild else (issue, "issue")
    if not chosen:
        return CaaDecision(
            name,
            True,
            f"CAA at {relevant_name} has no {tag} property (RFC 8659 §4.2)",
            records,
            relevant_name,
        )
    reasons = []
    for r in chosen:
        ok, why = _record_matches(r, issuers, account_uri, m)
        if ok:
            return CaaDecision(name, True, f"CAA at {relevant_name}: {why}", records, relevant_name)
        reasons.append(why)
    return CaaDecision(
        name,
        False,
        f"CAA at {relevant_name} does not permit this CA: " + "; ".join(reasons) + " (RFC 8659 §4)",
        records,
        relevant_name,
    )


# --- multi-perspective issuance corroboration (BR 3.2.2.9) -------------------------------------


def allowed_non_corroborations(remote_used: int) -> int:
    """BR 3.2.2.9 Quorum Requirements table: 2-5 remote perspectives allow 1, 6 or more allow 2."""
    if remote_used < 2:
        return 0
    return 1 if remote_used <= 5 else 2


def quorum_decision(primary: bool, remote: Sequence[bool | None], required_remote: int) -> QuorumDecision:
    """Corroborate the primary's pass with the remotes' answers (None = no answer).

    Only a pass needs corroboration; a failure at the primary is final, so a remote that claims success
    can never turn a failure into a pass. A remote that fails or does not answer is a non-corroboration.
    """
    used = len(remote)
    allowed = allowed_non_corroborations(used)
    non = sum(1 for r in remote if r is not True)
    if not primary:
        return QuorumDecision(False, "the primary network perspective did not pass", used, non, allowed)
    if used < required_remote:
        return QuorumDecision(
            False,
            f"{used} remote perspectives configured, {required_remote} required (BR 3.2.2.9)",
            used,
            non,
            allowed,
        )
    if non > allowed:
        return QuorumDecision(
            False,
            f"{non} of {used} remote perspectives did not corroborate, at most {allowed} may (BR 3.2.2.9)",
            used,
            non,
            allowed,
        )
    return QuorumDecision(True, f"corroborated by {used - non} of {used} remote perspectives", used, non, allowed)
