"""The subscriber profiles: names per certificate type, subject rules, validity caps by date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecert.core.errors import PolicyViolation
from ecert.core.profiles import (
    CertType,
    IssuerFacts,
    LeafRequest,
    SubjectData,
    leaf_validity,
    names_for_application,
    plan_leaf,
)

EC_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
RSA_KEY = rsa.generate_private_key(65537, 2048).public_key()
ISSUER = IssuerFacts(
    subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test OV CA")]),
    ski=b"\x01" * 20,
    ca_issuers_url="http://pki.ecert-demo.hk/repository/ca/ov.crt",
    crl_url="http://pki.ecert-demo.hk/crl/ov.crl",
    policy_oid="1.3.6.1.4.1.99999.1.1",
)
EV_ISSUER = IssuerFacts(
    subject=ISSUER.subject,
    ski=ISSUER.ski,
    ca_issuers_url=ISSUER.ca_issuers_url,
    crl_url=ISSUER.crl_url,
    policy_oid=ISSUER.policy_oid,
    is_ev_capable=True,
)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "cap"),
    [
        (datetime(2026, 3, 14, 23, 59, tzinfo=UTC), 398),
        (datetime(2026, 3, 15, 0, 0, tzinfo=UTC), 200),
        (datetime(2027, 3, 14, 12, tzinfo=UTC), 200),
        (datetime(2027, 3, 15, 12, tzinfo=UTC), 100),
        (datetime(2029, 3, 14, 12, tzinfo=UTC), 100),
        (datetime(2029, 3, 15, 12, tzinfo=UTC), 47),
    ],
)
def test_default_validity_is_one_day_under_the_br_cap_of_the_day(day: datetime, cap: int) -> None:
    not_before, not_after = leaf_validity(day, subscription_end=None, requested_days=None)
    # BR 6.3.2 counts inclusively: (notAfter - notBefore) + 1 second is the validity period.
    assert not_after - not_before + timedelta(seconds=1) == timedelta(days=cap - 1)


def test_requested_validity_over_the_cap_is_refused_naming_br_6_3_2() -> None:
    with pytest.raises(PolicyViolation) as err:
        leaf_validity(NOW, subscription_end=None, requested_days=201)
    assert err.value.rule == "BR 6.3.2"


def test_validity_never_runs_past_the_subscription() -> None:
    end = NOW + timedelta(days=30)
    _, not_after = leaf_validity(NOW, subscription_end=end, requested_days=None)
    assert not_after == end - timedelta(seconds=1)


def test_an_ended_subscription_gets_no_certificate() -> None:
    with pytest.raises(PolicyViolation, match="subscription period has ended"):
        leaf_validity(NOW, subscription_end=NOW - timedelta(days=1), requested_days=None)


@pytest.mark.parametrize(
    ("cert_type", "server", "extra", "expected"),
    [
        (CertType.SERVER, "www.example.com", (), ("www.example.com",)),
        (CertType.WILDCARD, "*.example.com", (), ("*.example.com", "example.com")),
        (CertType.MULTI, "www.example.com", ("www1.example.com",), ("www.example.com", "www1.example.com")),
        (CertType.EV_MULTI, "a.example.com", ("b.example.com", "a.example.com"), ("a.example.com", "b.example.com")),
    ],
)
def test_names_for_each_certificate_type(
    cert_type: CertType, server: str, extra: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert names_for_application(cert_type, server, extra) == expected


@pytest.mark.parametrize(
    ("cert_type", "server", "extra", "message"),
    [
        (CertType.MULTI, "www.example.com", ("*.example.com",), "Wildcard names are not allowed"),
        (CertType.EV, "*.example.com", (), "Wildcard names are not allowed"),
        (CertType.SERVER, "www.example.com", ("b.example.com",), "multi-domain feature"),
        (CertType.MULTI, "n0.example.com", tuple(f"n{i}.example.com" for i in range(1, 51)), "At most 50 names"),
        (CertType.WILDCARD, "*.example.com", ("b.example.com",), "no additional server names"),
        # A wildcard profile with a plain name would silently certify "*.name" (issue 10 point 8).
        (CertType.WILDCARD, "example.com", (), "server name starts with '\\*\\.'"),
    ],
)
def test_names_refused_per_certificate_type(
    cert_type: CertType, server: str, extra: tuple[str, ...], message: str
) -> None:
    with pytest.raises(PolicyViolation, match=message):
        names_for_application(cert_type, server, extra)


def test_multi_domain_takes_exactly_fifty_names() -> None:
    names = names_for_application(CertType.MULTI, "n0.example.com", tuple(f"n{i}.example.com" for i in range(1, 50)))
    assert len(names) == 50


def test_chinese_organisation_name_of_64_characters_fits_and_65_is_refused() -> None:
    SubjectData(organization="香" * 64)
    with pytest.raises(PolicyViolation, match="at most 64"):
        SubjectData(organization="香" * 65)


def _plan(
    cert_type: CertType = CertType.SERVER,
    key: object = EC_KEY,
    subject: SubjectData | None = None,
    names: tuple[str, ...] = ("www.example.com",),
    issuer: IssuerFacts = ISSUER,
):
    return plan_leaf(
        LeafRequest(cert_type=cert_type, names=names, subject=subject or SubjectData("Example Ltd"), public_key=key),
        issuer,
        NOW,
    )  # type: ignore[arg-type]


def _ext(plan, cls):  # type: ignore[no-untyped-def]
    return next(e for e, _ in plan.extensions if isinstance(e, cls))


def test_subject_has_validated_fields_cn_from_names_and_no_ou() -> None:
    plan = _plan(subject=SubjectData("香港郵政"))
    oids = [a.oid for a in plan.subject]
    assert NameOID.ORGANIZATIONAL_UNIT_NAME not in oids
    assert plan.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "香港郵政"
    assert plan.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    assert plan.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "HK"


def test_eku_is_server_auth_only() -> None:
    assert list(_ext(_plan(), x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_key_usage_adds_key_encipherment_only_for_rsa() -> None:
    assert not _ext(_plan(key=EC_KEY), x509.KeyUsage).key_encipherment
    assert _ext(_plan(key=RSA_KEY), x509.KeyUsage).key_encipherment
    assert _ext(_plan(key=RSA_KEY), x509.KeyUsage).digital_signature


def test_policies_are_ov_or_ev_first_then_the_cas_own() -> None:
    ov = [p.policy_identifier.dotted_string for p in _ext(_plan(), x509.CertificatePolicies)]
    ev_subject = SubjectData(
        "Example Ltd", business_category="Private Organization", jurisdiction_country="HK", serial_number="12345678"
    )
    ev = [
        p.policy_identifier.dotted_string
        for p in _ext(_plan(CertType.EV, subject=ev_subject, issuer=EV_ISSUER), x509.CertificatePolicies)
    ]
    assert ov == ["2.23.140.1.2.2", "1.3.6.1.4.1.99999.1.1"]
    assert ev == ["2.23.140.1.1", "1.3.6.1.4.1.99999.1.1"]


def test_ev_needs_its_subject_fields_and_an_ev_issuer() -> None:
    with pytest.raises(PolicyViolation, match="EV needs"):
        _plan(CertType.EV, issuer=EV_ISSUER)
    ev_subject = SubjectData(
        "Example Ltd", business_category="Private Organization", jurisdiction_country="HK", serial_number="12345678"
    )
    with pytest.raises(PolicyViolation, match="EV issuing CA"):
        _plan(CertType.EV, subject=ev_subject, issuer=ISSUER)


def test_common_name_must_be_one_of_the_names() -> None:
    with pytest.raises(PolicyViolation, match="common name"):
        LeafRequest(
            cert_type=CertType.SERVER,
            names=("a.example.com",),
            subject=SubjectData("X"),
            public_key=EC_KEY,
            common_name="b.example.com",
        )  # type: ignore[arg-type]
