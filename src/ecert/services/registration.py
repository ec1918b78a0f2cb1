"""The registration authority: the one door every issuance passes, whatever front door it came through.

Boulder's ``ra/`` is the model: the portal, the REST API, the operator's CLI and API, and ACME each hand
an :class:`IssuanceIntent` (names, the vetted organisation, the CSR, the profile, who asks) to
:func:`authorize`, which decides in numbered steps and returns a :class:`VettedRequest`; only a vetted
request reaches the issuance pipeline (``services.issuance``). Every refusal is audited here, once.

1. the organisation: an open application or a current operator-recorded vetting (BR 3.2.2.1, 4.2.1);
2. the names: normalised, the profile's rules, inside what the organisation was vetted for;
3. high-risk names: reviewed by a person (BR 4.2.1);
4. the CSR: intake rules, blocked and weak keys, never a CA key of this instance or a caller-named key
   such as the ACME account key (BR 6.1.1.3); its names among the certificate's;
5. domain control: recorded evidence for every name inside its reuse period (BR 3.2.2.4, 4.2.1);
6. CAA, looked up now (BR 3.2.2.8);
7. the vetted request, carrying the evidence the issuance record will keep.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from ..core import dcv_rules
from ..core.application import AppState
from ..core.csr import CSRInfo, check_csr, compare_names
from ..core.errors import Conflict, EcertError, NotFound, PolicyViolation
from ..core.evidence import (
    DomainEvidence,
    OrganisationEvidence,
    covering_evidence,
    names_outside,
    refuse_ca_key,
    refuse_forbidden_key,
    require_vetting_current,
)
from ..core.names import needs_manual_review, normalize_names
from ..core.profiles import CertType, SubjectData, names_for_application, profile_allowed
from ..store import audit
from ..store import registration as ra_store
from ..store.models import Application, Certificate
from . import process_cache
from .applications import application_names, load_application, subject_for
from .caa import check_caa_at_issuance
from .context import Context
from .issuance import IssueRequest
from .issuance import issue as run_pipeline

__all__ = [
    "Channel",
    "Requester",
    "IssuanceIntent",
    "VettedRequest",
    "authorize",
    "issue",
    "issue_vetted",
    "record_vetting",
    "list_vettings",
    "VettingView",
]


class Channel(enum.StrEnum):
    """The front door an intent came through; kept on the issuance record and in the audit log."""

    PORTAL = "portal"
    API = "api"
    OPERATOR_CLI = "operator-cli"
    OPERATOR_API = "operator-api"
    ACME = "acme"


@dataclass(frozen=True)
class Requester:
    channel: Channel
    actor: str


@dataclass(frozen=True)
class IssuanceIntent:
    """What a front door asks for. The subject is never taken from here or from the CSR: it comes from
    the vetted organisation (the application, or the operator's vetting)."""

    requester: Requester
    cert_type: CertType
    csr: bytes | str
    names: tuple[str, ...] = ()  # empty: the application's names
    application_id: int | None = None
    vetting_id: int | None = None
    requested_days: int | None = None
    high_risk_reviewed: bool = False
    forbidden_keys: Mapping[str, str] = field(default_factory=dict)  # SPKI SHA-256 -> what it is
    caa_account_uri: str | None = None  # RFC 8657 accounturi, for ACME
    replaces_id: int | None = None
    revoke_replaced: bool | None = None


_VETTED = object()  # only authorize() can make a VettedRequest


@dataclass(frozen=True)
class VettedRequest:
    """A request the registration authority approved; the pipeline takes nothing else."""

    request: IssueRequest
    csr: CSRInfo
    reference: str | None
    token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.token is not _VETTED:
            raise PolicyViolation("an issuance must be approved by the registration authority first")


@dataclass(frozen=True)
class _Organisation:
    subject: SubjectData
    evidence: OrganisationEvidence
    allowed_names: tuple[str, ...] | None  # None: any name with evidence (operator vetting)
    allowed_type: CertType | None
    subscription_end: datetime | None
    application_id: int | None
    reference: str | None
    reviewed_at_approval: bool
    held_namespaces: tuple[str, ...] = ()  # operator-held validations made for this organisation


# --- step 1: the organisation -----------------------------------------------------------------------


def _application_organisation(row: Application, now: datetime) -> _Organisation:
    if row.state == AppState.REJECTED.value:
        raise Conflict("the application was rejected; nothing can be issued for it", value=row.reference_number)
    if row.subscription_end <= now:
        raise Conflict("the subscription period has ended; apply again", value=row.subscription_end.isoformat())
    evidence = OrganisationEvidence(
        kind="application", ref=row.id, vetted_at=row.created_at, label=row.reference_number
    )
    return _Organisation(
        subject=subject_for(row),
        evidence=evidence,
        allowed_names=application_names(row),
        allowed_type=CertType(row.cert_type),
        subscription_end=row.subscription_end,
        application_id=row.id,
        reference=row.reference_number,
        reviewed_at_approval=True,
    )


def _vetting_organisation(session: Session, vetting_id: int) -> _Organisation:
    row = ra_store.get_vetting(session, vetting_id)
    if row is None:
        raise NotFound(
            f"no organisation vetting number {vetting_id}; record one with `ecert-ca vetting add`", value=vetting_id
        )
    subject = SubjectData(
        organization=row.organization,
        country=row.country,
        state=row.state,
        locality=row.locality,
        business_category=row.business_category,
        jurisdiction_country=row.jurisdiction_country,
        serial_number=row.registration_number,
    )
    evidence = OrganisationEvidence(kind="vetting", ref=row.id, vetted_at=row.vetted_at, label=row.organization)
    return _Organisation(
        subject=subject,
        evidence=evidence,
        allowed_names=None,
        allowed_type=None,
        subscription_end=None,
        application_id=None,
        reference=None,
        reviewed_at_approval=False,
    )


def _organisation(session: Session, intent: IssuanceIntent, now: datetime) -> _Organisation:
    if (intent.application_id is None) == (intent.vetting_id is None):
        raise PolicyViolation(
            "an issuance names exactly one vetted organisation: an application or a vetting", rule="BR 3.2.2.1"
        )
    if intent.application_id is not None:
        org = _application_organisation(load_application(session, intent.application_id), now)
        org = replace(org, held_namespaces=tuple(ra_store.held_namespaces_for(session, intent.application_id)))
    else:
        assert intent.vetting_id is not None
        org = _vetting_organisation(session, intent.vetting_id)
    require_vetting_current(org.evidence, now)
    return org


# --- step 2 and 3: names ----------------------------------------------------------------------------


def _names(intent: IssuanceIntent, org: _Organisation) -> tuple[str, ...]:
    """The certificate's names: the profile's rules over what was asked, inside what was vetted."""
    if org.allowed_type is not None and not profile_allowed(org.allowed_type, intent.cert_type):
        raise PolicyViolation(
            f"the application is for {org.allowed_type.value} certificates, not {intent.cert_type.value}",
            rule="profile",
            value=intent.cert_type.value,
        )
    if not intent.names:
        if org.allowed_names is None:
            raise PolicyViolation("name at least one server name to issue for", rule="BR 7.1.2.7.12")
        return org.allowed_names
    normalized = normalize_names(intent.names)
    names = names_for_application(intent.cert_type, normalized[0], tuple(normalized[1:]))
    if org.allowed_names is not None:
        outside = names_outside(names, org.allowed_names, org.held_namespaces)
        if outside:
            raise PolicyViolation(
                f"{', '.join(outside)} is not among the names of application {org.reference} "
                f"({', '.join(org.allowed_names)})",
                rule="BR 3.2.2.4",
                value=tuple(outside),
            )
    return names


def _require_review(names: tuple[str, ...], intent: IssuanceIntent, org: _Organisation) -> None:
    """BR 4.2.1: high-risk names need a person's review; applications had theirs at approval."""
    if org.reviewed_at_approval or intent.high_risk_reviewed:
        return
    for name in names:
        reason = needs_manual_review(name)
        if reason:
            raise PolicyViolation(
                f"{name} needs a manual high-risk review first: {reason}; confirm that a person has checked it",
                rule="BR 4.2.1",
                value=name,
            )


# --- step 4: the CSR --------------------------------------------------------------------------------


class _BlockedKeys:
    """A ``Container`` view of the blocked-key table for CSR intake (one indexed lookup per key)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __contains__(self, spki: object) -> bool:
        return isinstance(spki, str) and ra_store.is_key_blocked(self._session, spki)


def _ca_keys(ctx: Context, session: Session) -> dict[str, str]:
    """This instance's CA keys (BR 6.1.1.3), kept per process and read again when their stamp changes.

    The full set means every CA row and every responder certificate, parsed; the stamp is one small query,
    and it changes with any new CA or responder made by any process (init, rollover, the jobs).
    """
    memo = process_cache.slot(ctx)
    stamp = ra_store.ca_keys_stamp(session)
    cached = memo.get("ra_ca_keys")
    if cached is None or cached[0] != stamp:
        cached = (stamp, ra_store.ca_key_labels(session))
        memo["ra_ca_keys"] = cached
    keys: dict[str, str] = cached[1]
    return keys


def _check_csr(ctx: Context, session: Session, intent: IssuanceIntent, names: tuple[str, ...]) -> CSRInfo:
    info = check_csr(intent.csr, blocked_spki=_BlockedKeys(session))
    refuse_ca_key(info.key.spki_sha256, _ca_keys(ctx, session))
    for spki, what in intent.forbidden_keys.items():
        refuse_forbidden_key(info.key.spki_sha256, {spki}, what)
    compare_names(info.dns_names, names)
    return info


# --- step 5: domain control -------------------------------------------------------------------------


def _domain_evidence(
    session: Session, names: tuple[str, ...], org: _Organisation, now: datetime
) -> dict[str, DomainEvidence]:
    candidates = ra_store.operator_domain_evidence(session)
    if org.application_id is not None:
        candidates += ra_store.application_domain_evidence(session, org.application_id)
    domains = tuple(dict.fromkeys(dcv_rules.dns_name_for_validation(n) for n in names))
    return covering_evidence(domains, candidates, now)


# --- the decision -----------------------------------------------------------------------------------


def _decide(ctx: Context, intent: IssuanceIntent, now: datetime) -> VettedRequest:
    with process_cache.quick_read(ctx) as session:
        org = _organisation(session, intent, now)
        names = _names(intent, org)
        _require_review(names, intent, org)
        info = _check_csr(ctx, session, intent, names)
        by_domain = _domain_evidence(session, names, org, now)
    methods: dict[str, str | None] = {domain: ev.method for domain, ev in by_domain.items()}
    check_caa_at_issuance(
        ctx,
        names,
        actor=intent.requester.actor,
        application_id=org.application_id,
        reference=org.reference,
        methods=methods,
        account_uri=intent.caa_account_uri,
    )
    evidence = {
        "domains": {d: ev.as_record() for d, ev in by_domain.items()},
        "organisation": org.evidence.as_record(),
        "caa_checked_at": now.isoformat(),
    }
    request = IssueRequest(
        cert_type=intent.cert_type,
        names=names,
        subject=org.subject,
        public_key=info.public_key,  # type: ignore[arg-type]
        application_id=org.application_id,
        subscription_end=org.subscription_end,
        requested_days=intent.requested_days,
        actor=intent.requester.actor,
        evidence=evidence,
        channel=intent.requester.channel.value,
        replaces_id=intent.replaces_id,
        revoke_replaced=intent.revoke_replaced,
    )
    return VettedRequest(request=request, csr=info, reference=org.reference, token=_VETTED)


def _audit_refusal(ctx: Context, intent: IssuanceIntent, exc: EcertError) -> None:
    subject = str(intent.application_id or intent.vetting_id or "-")
    with ctx.transaction() as session:
        if intent.application_id is not None:
            subject = ra_store.reference_of(session, intent.application_id) or subject
        audit.append(
            session,
            actor=intent.requester.actor,
            event="issuance.refused",
            subject=subject,
            details={
                "channel": intent.requester.channel.value,
                "code": exc.code,
                "rule": exc.rule,
                "reason": exc.message[:1000],
                "profile": intent.cert_type.value,
                "names": [n[:253] for n in intent.names[:100]],
            },
            now=ctx.clock(),
        )


def authorize(ctx: Context, intent: IssuanceIntent) -> VettedRequest:
    """Decide ``intent`` (steps 1-7 above); every refusal is audited with the front door it came through."""
    try:
        return _decide(ctx, intent, ctx.clock())
    except EcertError as exc:
        _audit_refusal(ctx, intent, exc)
        raise


def issue_vetted(
    ctx: Context, vetted: VettedRequest, *, on_signed: Callable[[Session, Certificate], None] | None = None
) -> Certificate:
    """Hand an approved request to the durable, lint-gated pipeline."""
    return run_pipeline(ctx, vetted.request, on_signed=on_signed)


def issue(
    ctx: Context, intent: IssuanceIntent, *, on_signed: Callable[[Session, Certificate], None] | None = None
) -> Certificate:
    """Authorize, then issue: what a front door without its own state to move calls (operator paths)."""
    return issue_vetted(ctx, authorize(ctx, intent), on_signed=on_signed)


def record_vetting(
    ctx: Context, subject: SubjectData, *, source: str, actor: str, vetted_at: datetime | None = None
) -> int:
    """Record an organisation the operator vetted outside an application (BR 3.2.2.1); audited."""
    now = ctx.clock()
    when = vetted_at or now
    if when > now:
        raise PolicyViolation("a vetting cannot be dated in the future", rule="BR 3.2.2.1", value=when.isoformat())
    if not source.strip():
        raise PolicyViolation("say what the vetting relied on (registry extract, document number)", rule="BR 3.2.2.1")
    with ctx.transaction() as session:
        row = ra_store.add_vetting(
            session,
            organization=subject.organization,
            country=subject.country,
            state=subject.state,
            locality=subject.locality,
            business_category=subject.business_category,
            jurisdiction_country=subject.jurisdiction_country,
            registration_number=subject.serial_number,
            source=source.strip()[:1000],
            vetted_by=actor,
            vetted_at=when,
            now=now,
        )
        audit.append(
            session,
            actor=actor,
            event="vetting.recorded",
            subject=str(row.id),
            details={
                "organization": subject.organization,
                "country": subject.country,
                "source": source.strip()[:1000],
                "vetted_at": when.isoformat(),
            },
            now=now,
        )
        return row.id


@dataclass(frozen=True)
class VettingView:
    id: int
    organization: str
    country: str
    source: str
    vetted_by: str
    vetted_at: datetime


def list_vettings(ctx: Context) -> list[VettingView]:
    with ctx.read() as session:
        return [
            VettingView(
                id=r.id,
                organization=r.organization,
                country=r.country,
                source=r.source,
                vetted_by=r.vetted_by,
                vetted_at=r.vetted_at,
            )
            for r in ra_store.list_vettings(session)
        ]
