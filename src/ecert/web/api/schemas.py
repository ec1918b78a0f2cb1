"""JSON shapes of the REST API (what the OpenAPI document publishes and the subscriber tool reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...core.dcv_rules import DcvMethod
from ...services import applications as apps
from ...services import certificates, downloads, enrolment

ApiMethod = Literal["http_file", "dns_txt", "email"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionIn(_In):
    server_name: str = Field(max_length=300)
    reference_number: str = Field(max_length=20)
    pin: str = Field(max_length=40)


class SessionOut(BaseModel):
    token: str
    expires_at: datetime


class ConfirmIn(_In):
    use_chinese: bool = False


class ReasonIn(_In):
    reason: str = Field(default="", max_length=1000)


class DcvStartIn(_In):
    method: ApiMethod
    email_local_part: str | None = Field(default=None, max_length=64)
    # BR 3.2.2.4.4: the constructed address may be at the name or at a parent above the public suffix.
    email_domain: str | None = Field(
        default=None, max_length=253, description="The Authorization Domain Name for the e-mail (default: the name)"
    )


class DcvCheckIn(_In):
    email_code: str | None = Field(default=None, max_length=200)
    method: ApiMethod | None = Field(default=None, description="The method to check (default: the last started)")


class CsrIn(_In):
    csr: str = Field(max_length=65536)


class ReplaceIn(_In):
    """A deliberate replacement: the new CSR, and whether the current certificate is revoked (superseded)
    when the replacement is accepted, or left to expire."""

    csr: str = Field(max_length=65536)
    revoke_current: bool


class DirectIssueIn(_In):
    """The operator's direct issuance: the registration authority checks evidence, vetting, key and CAA."""

    csr: str = Field(max_length=65536)
    profile: str = Field(max_length=20)
    names: list[str] = Field(min_length=1, max_length=50)
    vetting_id: int | None = None
    reference_number: str | None = Field(default=None, max_length=9)
    days: int | None = Field(default=None, ge=1, le=398)
    high_risk_reviewed: bool = False


class DirectIssuedOut(BaseModel):
    serial_hex: str
    names: list[str]
    not_before: datetime
    not_after: datetime
    profile: str
    pem: str
    evidence: dict[str, str]


class NameOut(BaseModel):
    name: str
    unicode: str


class ApplicationOut(BaseModel):
    reference_number: str
    server_name: str
    server_name_unicode: str
    additional_names: list[NameOut]
    number_of_additional: int
    names: list[str]
    org_name_en: str
    org_name_zh: str | None
    branch_name_en: str | None
    branch_name_zh: str | None
    reg_doc_type: str
    reg_doc_label: str
    reg_doc_number: str
    cert_type: str
    cert_type_label: str
    subscription_period: str
    subscription_start: datetime
    subscription_end: datetime
    state: str
    next_step: str
    is_government: bool
    use_chinese: bool
    has_chinese: bool

    @classmethod
    def of(cls, v: apps.ApplicationView) -> ApplicationOut:
        return cls(
            reference_number=v.reference_number,
            server_name=v.server_name.a_label,
            server_name_unicode=v.server_name.unicode,
            additional_names=[NameOut(name=n.a_label, unicode=n.unicode) for n in v.additional_names],
            number_of_additional=v.number_of_additional,
            names=list(v.names),
            org_name_en=v.org_name_en,
            org_name_zh=v.org_name_zh,
            branch_name_en=v.branch_name_en,
            branch_name_zh=v.branch_name_zh,
            reg_doc_type=v.reg_doc_type,
            reg_doc_label=v.reg_doc_label,
            reg_doc_number=v.reg_doc_number,
            cert_type=v.cert_type.value,
            cert_type_label=v.cert_type_label,
            subscription_period=v.subscription_period,
            subscription_start=v.subscription_start,
            subscription_end=v.subscription_end,
            state=v.state,
            next_step=v.next_step.value,
            is_government=v.is_government,
            use_chinese=v.use_chinese,
            has_chinese=v.has_chinese,
        )


class MethodOut(BaseModel):
    method: ApiMethod
    label: str
    br_section: str
    warning: str | None


class ChallengeOut(BaseModel):
    domain: str
    domain_unicode: str
    code: str | None = None
    file_name: str | None = None
    file_url: str | None = None
    file_urls: list[str] | None = None
    file_content: str | None = None
    txt_name: str | None = None
    txt_names: list[str] | None = None
    txt_value: str | None = None
    txt_ttl: int | None = None
    email_addresses: list[str] | None = None
    email_address: str | None = None
    expires_at: datetime | None = None

    @classmethod
    def of(cls, c: enrolment.ChallengeView) -> ChallengeOut:
        return cls(
            domain=c.domain,
            domain_unicode=c.domain_unicode,
            code=c.code,
            file_name=c.file_name,
            file_url=c.file_urls[0] if c.file_urls else None,
            file_urls=list(c.file_urls) or None,
            file_content=c.file_content,
            txt_name=c.txt_name,
            txt_names=list(c.txt_names) or None,
            txt_value=c.txt_value,
            txt_ttl=c.txt_ttl,
            email_addresses=list(c.email_addresses) or None,
            email_address=c.email_address,
            expires_at=c.expires_at,
        )


class DcvStartOut(BaseModel):
    method: ApiMethod
    domains: list[ChallengeOut]


class DomainResultOut(BaseModel):
    domain: str
    domain_unicode: str
    passed: bool
    reason: str
    method: str | None
    reused: bool


class DcvCheckOut(BaseModel):
    passed: bool
    state: str
    domains: list[DomainResultOut]


class CertificateOut(BaseModel):
    reference_number: str
    serial_hex: str
    serial_spaced: str
    issuer: str
    not_before: datetime
    not_after: datetime
    validity_days: int
    names: list[str]
    names_unicode: list[str]
    type: str
    type_label: str
    state: str
    application_state: str
    replaces_serial: str | None = None
    revoke_replaced: bool | None = None

    @classmethod
    def of(cls, c: certificates.CertificateView) -> CertificateOut:
        return cls(
            reference_number=c.reference_number,
            serial_hex=c.serial_hex,
            serial_spaced=c.serial_spaced,
            issuer=c.issuer_cn,
            not_before=c.not_before,
            not_after=c.not_after,
            validity_days=c.validity_days,
            names=list(c.names),
            names_unicode=list(c.names_unicode),
            type=c.cert_type,
            type_label=c.cert_type_label,
            state=c.state,
            application_state=c.application_state,
            replaces_serial=c.replaces_serial,
            revoke_replaced=c.revoke_replaced,
        )


class SearchHitOut(BaseModel):
    serial_hex: str
    serial_spaced: str
    common_name: str | None
    names: list[str]
    names_unicode: list[str]
    organization: str | None
    issuer: str
    not_before: datetime
    not_after: datetime
    status: str

    @classmethod
    def of(cls, h: downloads.SearchHit) -> SearchHitOut:
        return cls(
            serial_hex=h.serial_hex,
            serial_spaced=h.serial_spaced,
            common_name=h.common_name,
            names=list(h.names),
            names_unicode=list(h.names_unicode),
            organization=h.organization,
            issuer=h.issuer_cn,
            not_before=h.not_before,
            not_after=h.not_after,
            status=h.status,
        )


class RegisteredOut(BaseModel):
    application_id: int
    reference_number: str
    pin: str
    envelope_html: str
    mail_sent: bool


def method_out(m: DcvMethod) -> ApiMethod:
    return enrolment.API_METHOD_NAMES[m]  # type: ignore[return-value]
