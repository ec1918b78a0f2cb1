"""Subscriber certificate profiles as data: what goes into a TLS server certificate, and why.

Pure: the caller passes the validated application data, the subject public key, the issuing CA's
facts and the instant of issuance; the result is a :class:`LeafPlan` the signer turns into a TBS.
The subject never comes from the CSR (BR 7.1.4.2: only validated data), and every name is in the SAN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from . import rule_dates
from .errors import PolicyViolation

__all__ = [
    "CertType",
    "CERT_TYPE_LABELS",
    "SubjectData",
    "IssuerFacts",
    "LeafRequest",
    "LeafPlan",
    "plan_leaf",
    "leaf_validity",
    "names_for_application",
    "profile_allowed",
    "MAX_MULTI_NAMES",
    "OID_OV",
    "OID_EV",
]

OID_OV = ObjectIdentifier("2.23.140.1.2.2")  # BR 7.1.6.1 organization-validated
OID_EV = ObjectIdentifier("2.23.140.1.1")  # EV Guidelines 9.7 / BR 7.1.6.1
OID_JURISDICTION_C = ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.3")  # EVG 9.2.4
OID_JURISDICTION_ST = ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.2")
OID_JURISDICTION_L = ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.1")
MAX_MULTI_NAMES = 50  # e-Cert (Server) multi-domain feature: server name plus additional names
MAX_ORG_LENGTH = 64  # X.520 ub-organization-name (BR 7.1.4.2 / RFC 5280 Appendix A)


class CertType(enum.StrEnum):
    """The e-Cert (Server) certificate types of the user guide."""

    SERVER = "server"
    WILDCARD = "wildcard"
    MULTI = "multi"
    EV = "ev"
    EV_MULTI = "ev_multi"

    @property
    def is_ev(self) -> bool:
        return self in (CertType.EV, CertType.EV_MULTI)

    @property
    def is_multi(self) -> bool:
        return self in (CertType.MULTI, CertType.EV_MULTI)

    @property
    def lint_type(self) -> str:
        return "EV-FINAL-CERTIFICATE" if self.is_ev else "OV-FINAL-CERTIFICATE"


CERT_TYPE_LABELS: dict[CertType, str] = {
    CertType.SERVER: "e-Cert (Server)",
    CertType.WILDCARD: 'e-Cert (Server) with "Wildcard" Feature',
    CertType.MULTI: 'e-Cert (Server) with "Multi-domain" Feature',
    CertType.EV: "EV e-Cert (Server)",
    CertType.EV_MULTI: 'EV e-Cert (Server) with "Multi-domain" Feature',
}


def _check_text(label: str, value: str | None, *, required: bool, limit: int = MAX_ORG_LENGTH) -> None:
    if value is None or value == "":
        if required:
            raise PolicyViolation(f"{label} is required", rule="BR 7.1.4.2")
        return
    if value != value.strip() or "\x00" in value or any(ord(c) < 0x20 for c in value):
        raise PolicyViolation(
            f"{label} has leading/trailing spaces or control characters", value=value, rule="BR 7.1.4.2"
        )
    if len(value) > limit:
        raise PolicyViolation(
            f"{label} is {len(value)} characters; at most {limit} fit",
            value=value,
            rule="RFC 5280 Appendix A (ub-organization-name)",
        )


@dataclass(frozen=True)
class SubjectData:
    """Validated subscriber identity: what the CA vetted, never what a CSR asked for."""

    organization: str
    country: str = "HK"
    state: str | None = "Hong Kong"
    locality: str | None = "Hong Kong"
    business_category: str | None = None  # EV only: "Private Organization", "Government Entity", ...
    jurisdiction_country: str | None = None
    jurisdiction_state: str | None = None
    jurisdiction_locality: str | None = None
    serial_number: str | None = None  # EV: registration number

    def __post_init__(self) -> None:
        _check_text("Organisation name", self.organization, required=True)
        if len(self.country) != 2 or not self.country.isascii() or not self.country.isupper():
            raise PolicyViolation(
                "Country must be an ISO 3166-1 two-letter code", value=self.country, rule="BR 7.1.4.2"
            )
        _check_text("State or province", self.state, required=False, limit=128)
        _check_text("Locality", self.locality, required=False, limit=128)
        if not (self.state or self.locality):
            raise PolicyViolation("Locality or state is required with an organisation name", rule="BR 7.1.4.2")
        _check_text("Registration number", self.serial_number, required=False)
        _check_text("Business category", self.business_category, required=False)


@dataclass(frozen=True)
class IssuerFacts:
    """What a leaf needs to know of its issuing CA: its name, key identifier and URLs."""

    subject: x509.Name
    ski: bytes
    ca_issuers_url: str
    crl_url: str
    policy_oid: str
    ocsp_url: str | None = None
    is_ev_capable: bool = False


@dataclass(frozen=True)
class LeafRequest:
    """Everything decided before issuance: type, validated names and subject, key, subscription."""

    cert_type: CertType
    names: tuple[str, ...]  # normalized A-labels from the validated application, CN first
    subject: SubjectData
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    subscription_end: datetime | None = None
    requested_days: int | None = None
    common_name: str | None = None  # defaults to names[0]

    def __post_init__(self) -> None:
        if not self.names:
            raise PolicyViolation("A certificate needs at least one name", rule="BR 7.1.2.7.12")
        cn = self.common_name or self.names[0]
        if cn not in self.names:
            raise PolicyViolation("The common name must be one of the certificate's names", value=cn, rule="BR 7.1.4.3")


@dataclass(frozen=True)
class LeafPlan:
    """The profile's decision: subject, extensions and validity; the signer adds serial and key."""

    subject: x509.Name
    names: tuple[str, ...]
    extensions: tuple[tuple[x509.ExtensionType, bool], ...]
    not_before: datetime
    not_after: datetime
    lint_type: str
    notes: tuple[str, ...] = field(default=())

    @property
    def validity_days(self) -> int:
        """Days covered, counting both ends as the guide's certificate page does."""
        return (self.not_after - self.not_before).days + 1


def names_for_application(cert_type: CertType, server_name: str, additional: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names a certificate of ``cert_type`` carries, from already-normalized application names.

    A wildcard certificate also carries its base name (the guide accepts the server name with or
    without the asterisk); multi-domain certificates take at most 50 names and no wildcard.
    """
    if cert_type is CertType.WILDCARD:
        if additional:
            raise PolicyViolation("A wildcard certificate has no additional server names", value=additional)
        if not server_name.startswith("*."):
            # The profile is chosen for its wildcard: a plain name here would silently become "*.name".
            raise PolicyViolation(
                f"A wildcard certificate's server name starts with '*.' (e.g. *.{server_name}); "
                "for a single name choose the server profile",
                value=server_name,
                rule="BR 7.1.2.7.12",
            )
        base = server_name[2:]
        if "*" in base:
            raise PolicyViolation("Only the leftmost label may be a wildcard", value=server_name, rule="BR 7.1.2.7.12")
        return (f"*.{base}", base)
    names = tuple(dict.fromkeys((server_name, *additional)))
    for name in names:
        if "*" in name:
            rule = "EV Guidelines 9.8.1" if cert_type.is_ev else "e-Cert (Server) multi-domain feature"
            raise PolicyViolation(
                f"Wildcard names are not allowed in {CERT_TYPE_LABELS[cert_type]}", value=name, rule=rule
            )
    if not cert_type.is_multi and len(names) > 1:
        raise PolicyViolation(
            f"{CERT_TYPE_LABELS[cert_type]} carries one server name; additional names need the multi-domain feature",
            value=names,
        )
    if len(names) > MAX_MULTI_NAMES:
        raise PolicyViolation(
            f"At most {MAX_MULTI_NAMES} names fit in one certificate, got {len(names)}", value=len(names)
        )
    return names


# Which certificate a vetted application of one type may also order (ACME's profiles, the operator):
# a multi-domain application covers its single names; a wildcard covers only wildcard certificates.
_ALSO_ALLOWED: dict[CertType, frozenset[CertType]] = {
    CertType.SERVER: frozenset({CertType.SERVER}),
    CertType.WILDCARD: frozenset({CertType.WILDCARD}),
    CertType.MULTI: frozenset({CertType.MULTI, CertType.SERVER}),
    CertType.EV: frozenset({CertType.EV}),
    CertType.EV_MULTI: frozenset({CertType.EV_MULTI, CertType.EV}),
}


def profile_allowed(vetted_for: CertType, requested: CertType) -> bool:
    """True if an organisation vetted for ``vetted_for`` may receive a ``requested`` certificate (EV vetting
    is not OV vetting and the other way round: EV Guidelines 11)."""
    return requested in _ALSO_ALLOWED[vetted_for]


def leaf_validity(
    now: datetime, *, subscription_end: datetime | None, requested_days: int | None
) -> tuple[datetime, datetime]:
    """notBefore/notAfter: one day under the BR 6.3.2 cap by default, never past the subscription.

    BR 6.3.2 counts the validity period inclusively (notAfter - notBefore + 1 second), so a
    200-day cap means notAfter is at most 200 days minus one second after notBefore.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    not_before = now.replace(microsecond=0)
    cap_days = rule_dates.max_validity_days(not_before)
    days = cap_days - 1 if requested_days is None else requested_days
    if days < 1:
        raise PolicyViolation("Validity must be at least one day", value=requested_days)
    if days > cap_days:
        raise PolicyViolation(
            f"Validity of {days} days exceeds the {cap_days}-day maximum on this date", value=days, rule="BR 6.3.2"
        )
    not_after = not_before + timedelta(days=days) - timedelta(seconds=1)
    if subscription_end is not None:
        if subscription_end <= not_before:
            raise PolicyViolation("The subscription period has ended", value=subscription_end.isoformat())
        not_after = min(not_after, subscription_end.replace(microsecond=0) - timedelta(seconds=1))
    return not_before, not_after


def _subject(req: LeafRequest, cn: str) -> x509.Name:
    s = req.subject
    attrs: list[x509.NameAttribute[str]] = []
    if req.cert_type.is_ev:
        # EVG 7.1.4.2.3-7.1.4.2.5: businessCategory, jurisdiction and registration number.
        if not (s.business_category and s.jurisdiction_country and s.serial_number):
            raise PolicyViolation(
                "EV needs business category, jurisdiction country and registration number", rule="EV Guidelines 7.1.4.2"
            )
    attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, s.country))
    if s.state:
        attrs.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, s.state))
    if s.locality:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, s.locality))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, s.organization))  # UTF8String by default
    if req.cert_type.is_ev:
        assert s.business_category and s.jurisdiction_country and s.serial_number
        attrs.append(x509.NameAttribute(NameOID.BUSINESS_CATEGORY, s.business_category))
        attrs.append(
            x509.NameAttribute(OID_JURISDICTION_C, s.jurisdiction_country, _type=x509.name._ASN1Type.PrintableString)
        )
        if s.jurisdiction_state:
            attrs.append(x509.NameAttribute(OID_JURISDICTION_ST, s.jurisdiction_state))
        if s.jurisdiction_locality:
            attrs.append(x509.NameAttribute(OID_JURISDICTION_L, s.jurisdiction_locality))
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, s.serial_number))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name([x509.RelativeDistinguishedName([a]) for a in attrs])


def _key_usage(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> x509.KeyUsage:
    # BR 7.1.2.7.11: digitalSignature; keyEncipherment MAY for RSA (NSS still wants it for RSA leaves).
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def plan_leaf(req: LeafRequest, issuer: IssuerFacts, now: datetime) -> LeafPlan:
    """Apply the BR 7.1.2.7 subscriber profile to ``req``."""
    if req.cert_type.is_ev and not issuer.is_ev_capable:
        raise PolicyViolation("EV certificates come only from the EV issuing CA", rule="EV Guidelines 9.7")
    if not isinstance(req.public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise PolicyViolation("Only RSA and ECDSA keys are certified", rule="BR 6.1.5")
    cn = req.common_name or req.names[0]
    not_before, not_after = leaf_validity(now, subscription_end=req.subscription_end, requested_days=req.requested_days)
    policy = OID_EV if req.cert_type.is_ev else OID_OV
    aia = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuer.ca_issuers_url)
        )
    ]
    if issuer.ocsp_url:
        aia.insert(
            0,
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(issuer.ocsp_url)),
        )
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (
        (x509.AuthorityKeyIdentifier(issuer.ski, None, None), False),  # BR 7.1.2.7.6
        (x509.AuthorityInformationAccess(aia), False),  # BR 7.1.2.7.7
        (
            x509.CertificatePolicies(
                [
                    x509.PolicyInformation(policy, None),
                    x509.PolicyInformation(ObjectIdentifier(issuer.policy_oid), None),
                ]
            ),
            False,
        ),  # BR 7.1.2.7.9
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),  # BR 7.1.2.7.10, serverAuth only
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(issuer.crl_url)], None, None, None)]
            ),
            False,
        ),  # BR 7.1.2.11.2
        (_key_usage(req.public_key), True),  # BR 7.1.2.7.11
        (x509.SubjectAlternativeName([x509.DNSName(n) for n in req.names]), False),  # BR 7.1.2.7.12
    )
    return LeafPlan(
        subject=_subject(req, cn),
        names=req.names,
        extensions=extensions,
        not_before=not_before,
        not_after=not_after,
        lint_type=req.cert_type.lint_type,
    )
