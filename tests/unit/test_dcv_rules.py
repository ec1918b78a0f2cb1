"""Pure DCV rules: methods per type and date, codes, reuse, constructed addresses, CAA decisions, quorum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecert.core.dcv_rules import (
    CaaRecord,
    ChallengeEvent,
    ChallengeStatus,
    DcvMethod,
    allowed_non_corroborations,
    applicable_methods,
    authorization_domain_names,
    caa_permits,
    challenge_move,
    code_expired,
    code_shared_by_names,
    codes_equal,
    constructed_addresses,
    dns_name_for_validation,
    ensure_authorization_domain_name,
    ensure_constructed_address,
    ensure_method_applicable,
    instructions,
    new_validation_code,
    parse_caa_value,
    quorum_decision,
    reusable,
    under_namespace,
)
from ecert.core.errors import PolicyViolation

BEFORE_SUNSET = datetime(2026, 3, 14, 12, tzinfo=UTC)
DISCOURAGED = datetime(2026, 11, 25, 12, tzinfo=UTC)
FORBIDDEN = datetime(2028, 3, 15, 0, tzinfo=UTC)
H, D, E = DcvMethod.HTTP_FILE, DcvMethod.DNS, DcvMethod.EMAIL


@pytest.mark.parametrize(
    ("cert_type", "names", "now", "expected"),
    [
        ("server", ["www.example.com"], BEFORE_SUNSET, {H, D, E}),
        ("ev", ["www.example.com"], DISCOURAGED, {H, D, E}),
        ("wildcard", ["*.example.com"], DISCOURAGED, {D, E}),
        ("multi", ["a.example.com", "b.example.com"], DISCOURAGED, {H, D}),
        ("ev_multi", ["a.example.com", "b.example.com"], DISCOURAGED, {H, D}),
        ("multi", ["a.example.com", "*.example.com"], DISCOURAGED, {D}),
        ("server", ["www.example.com"], FORBIDDEN, {H, D}),
    ],
)
def test_only_applicable_methods_are_offered(cert_type, names, now, expected):
    assert {o.method for o in applicable_methods(cert_type, names, now)} == expected


def test_email_offer_carries_a_warning_once_discouraged():
    offers = {o.method: o for o in applicable_methods("server", ["example.com"], DISCOURAGED)}
    assert offers[E].warning and "2028-03-15" in offers[E].warning
    assert offers[D].warning is None
    before = {o.method: o for o in applicable_methods("server", ["example.com"], BEFORE_SUNSET)}
    assert before[E].warning is None


@pytest.mark.parametrize(
    ("method", "cert_type", "names", "now", "rule"),
    [
        ("http_file", "wildcard", ["*.example.com"], DISCOURAGED, "BR 3.2.2.4.18"),
        ("http_file", "multi", ["a.example.com", "*.example.com"], DISCOURAGED, "BR 3.2.2.4.18"),
        ("email", "multi", ["a.example.com", "b.example.com"], DISCOURAGED, "seed C.4"),
        ("email", "ev_multi", ["a.example.com"], DISCOURAGED, "seed C.4"),
        ("email", "server", ["example.com"], FORBIDDEN, "BR 3.2.2.4.4"),
        ("carrier-pigeon", "server", ["example.com"], DISCOURAGED, "BR 3.2.2.4"),
    ],
)
def test_inapplicable_method_is_refused_naming_the_rule(method, cert_type, names, now, rule):
    with pytest.raises(PolicyViolation) as err:
        ensure_method_applicable(method, cert_type, names, now)
    assert err.value.rule == rule


def test_validation_codes_have_at_least_112_bits_and_differ():
    codes = {new_validation_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(c) * 6 >= 112 for c in codes)  # url-safe base64: 6 bits per character


@pytest.mark.parametrize(
    ("age", "expired"),
    [
        (timedelta(days=29, hours=23), False),
        (timedelta(days=30), False),
        (timedelta(days=30, seconds=1), True),
    ],
)
def test_code_expires_after_30_days(age, expired):
    created = datetime(2026, 11, 1, tzinfo=UTC)
    assert code_expired(created, created + age) is expired


def test_codes_compare_ignoring_surrounding_whitespace_only():
    assert codes_equal("abc", " abc\n")
    assert not codes_equal("abc", "abd")
    assert not codes_equal("abc", "ABC")


@pytest.mark.parametrize(
    ("validated", "reused", "ok"),
    [
        (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 12, 17, tzinfo=UTC), True),  # 199 days, limit 200
        (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 12, 19, tzinfo=UTC), False),  # 201 days
        (datetime(2026, 12, 10, tzinfo=UTC), datetime(2027, 3, 14, tzinfo=UTC), True),  # 94 days, limit 200
        (
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2027, 3, 15, tzinfo=UTC),
            False,
        ),  # 134 days, limit now 100
        (datetime(2029, 3, 10, tzinfo=UTC), datetime(2029, 3, 21, tzinfo=UTC), False),  # 11 days, limit 10
        (datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC), False),  # in the future
    ],
)
def test_reuse_period_by_date_of_reuse(validated, reused, ok):
    assert reusable(validated, reused) is ok


def test_wildcard_is_validated_on_its_base_domain():
    assert dns_name_for_validation("*.Example.COM.") == "example.com"
    assert dns_name_for_validation("www.example.com") == "www.example.com"


@pytest.mark.parametrize(
    ("name", "namespace", "inside"),
    [
        ("www.gov.example.hk", "gov.example.hk", True),
        ("*.dept.gov.example.hk", "gov.example.hk", True),
        ("gov.example.hk", "gov.example.hk", True),
        ("evilgov.example.hk", "gov.example.hk", False),
        ("example.hk", "gov.example.hk", False),
    ],
)
def test_operator_namespace_covers_names_below_it(name, namespace, inside):
    assert under_namespace(name, namespace) is inside


@pytest.mark.parametrize(
    "address",
    ["ceo@example.com", "admin@other.com", "admin@www.example.com.evil", "admin", "root@example.com"],
)
def test_only_constructed_addresses_may_receive_the_code(address):
    with pytest.raises(PolicyViolation) as err:
        ensure_constructed_address("example.com", address)
    assert err.value.rule == "BR 3.2.2.4.4"


def test_constructed_addresses_are_the_five_at_the_base_domain():
    assert constructed_addresses("*.example.com") == (
        "admin@example.com",
        "administrator@example.com",
        "webmaster@example.com",
        "hostmaster@example.com",
        "postmaster@example.com",
    )
    assert ensure_constructed_address("example.com", " Webmaster@Example.com ") == "webmaster@example.com"


@pytest.mark.parametrize(
    ("name", "adns"),
    [
        ("www.shop.example.com.hk", ("www.shop.example.com.hk", "shop.example.com.hk", "example.com.hk")),
        ("*.shop.example.com", ("shop.example.com", "example.com")),
        ("example.com", ("example.com",)),
        ("a.b.example.co.uk", ("a.b.example.co.uk", "b.example.co.uk", "example.co.uk")),
    ],
)
def test_authorization_domain_names_prune_down_to_the_base_domain(name, adns):
    # BR 1.6.1 "Authorization Domain Name": prune labels from the left until the Base Domain Name, never past it
    assert authorization_domain_names(name) == adns


@pytest.mark.parametrize("adn", ["com", "com.hk", "example.net", "x.www.example.com", "other.example.com"])
def test_an_address_domain_that_is_not_an_adn_is_refused(adn):
    with pytest.raises(PolicyViolation) as err:
        ensure_authorization_domain_name("www.example.com", adn)
    assert err.value.rule == "BR 3.2.2.4.4 / BR 1.6.1" and err.value.value == adn


def test_constructed_addresses_sit_at_every_adn():
    found = constructed_addresses("www.shop.example.com")
    assert {"admin@www.shop.example.com", "postmaster@shop.example.com", "webmaster@example.com"} <= set(found)
    assert not any(a.endswith("@com") for a in found) and len(found) == 15
    assert ensure_constructed_address("www.shop.example.com", "Admin@Example.com") == "admin@example.com"


def test_only_the_website_file_shares_one_code_across_names():
    # BR 3.2.2.4.18: one Random Value for the request, at one fixed path; DNS and e-mail stay per name
    assert code_shared_by_names(H) and not code_shared_by_names(D) and not code_shared_by_names(E)


@pytest.mark.parametrize(
    ("current", "event", "target"),
    [
        (ChallengeStatus.PENDING, ChallengeEvent.PASS, ChallengeStatus.PASSED),
        (ChallengeStatus.PENDING, ChallengeEvent.FAIL, ChallengeStatus.FAILED),
        (ChallengeStatus.FAILED, ChallengeEvent.PASS, ChallengeStatus.PASSED),
        (ChallengeStatus.FAILED, ChallengeEvent.EXPIRE, ChallengeStatus.EXPIRED),
    ],
)
def test_challenge_moves(current, event, target):
    assert challenge_move(current, event) is target


@pytest.mark.parametrize("spent", [ChallengeStatus.PASSED, ChallengeStatus.EXPIRED])
@pytest.mark.parametrize("event", list(ChallengeEvent))
def test_a_spent_code_does_not_move(spent, event):
    with pytest.raises(PolicyViolation):
        challenge_move(spent, event)


def test_instructions_for_each_method():
    f = instructions("http_file", "www.example.com", "CODE")
    assert f.file_urls == (
        "http://www.example.com/.well-known/pki-validation/fileauth.txt",
        "https://www.example.com/.well-known/pki-validation/fileauth.txt",
    )
    assert f.file_name == "fileauth.txt" and f.file_content == "CODE"
    d = instructions("dns", "*.example.com", "CODE")
    assert d.txt_hosts == ("example.com", "_pki-validation.example.com") and d.txt_value == "CODE"
    e = instructions("email", "example.com", "CODE")
    assert "postmaster@example.com" in e.email_addresses


# --- CAA -----------------------------------------------------------------------------------------

CA = ("ecert.example.hk",)


def rr(flags: int, tag: str, value: str) -> CaaRecord:
    return CaaRecord(flags, tag, value)


@pytest.mark.parametrize(
    ("records", "wildcard", "kwargs", "permitted"),
    [
        ({}, False, {}, True),
        ({"www.example.com": (), "example.com": ()}, False, {}, True),
        ({"example.com": (rr(0, "issue", "ecert.example.hk"),)}, False, {}, True),
        ({"example.com": (rr(0, "issue", "ECERT.example.hk."),)}, False, {}, True),
        ({"example.com": (rr(0, "issue", ";"),)}, False, {}, False),
        ({"example.com": (rr(0, "issue", "letsencrypt.org"),)}, False, {}, False),
        (
            {"example.com": (rr(0, "issue", "letsencrypt.org"), rr(0, "issue", "ecert.example.hk"))},
            False,
            {},
            True,
        ),
        ({"example.com": (rr(0, "iodef", "mailto:x@example.com"),)}, False, {}, True),
        ({"example.com": (rr(128, "tbs", "x"), rr(0, "issue", "ecert.example.hk"))}, False, {}, False),
        ({"example.com": (rr(0, "tbs", "x"), rr(0, "issue", "ecert.example.hk"))}, False, {}, True),
        # RFC 8659 §4.3: issuewild decides for wildcards, issue for the rest
        ({"example.com": (rr(0, "issue", "ecert.example.hk"), rr(0, "issuewild", ";"))}, True, {}, False),
        ({"example.com": (rr(0, "issue", "ecert.example.hk"), rr(0, "issuewild", ";"))}, False, {}, True),
        ({"example.com": (rr(0, "issue", ";"), rr(0, "issuewild", "ecert.example.hk"))}, True, {}, True),
        ({"example.com": (rr(0, "issue", "ecert.example.hk"),)}, True, {}, True),
        # the closest non-empty RRset is the relevant one, even if a parent would forbid
        (
            {"www.example.com": (rr(0, "issue", "ecert.example.hk"),), "example.com": (rr(0, "issue", ";"),)},
            False,
            {},
            True,
        ),
        # RFC 8657 parameters
        (
            {"example.com": (rr(0, "issue", "ecert.example.hk; accounturi=https://ca/acct/1"),)},
            False,
            {"account_uri": "https://ca/acct/1"},
            True,
        ),
        (
            {"example.com": (rr(0, "issue", "ecert.example.hk; accounturi=https://ca/acct/1"),)},
            False,
            {"account_uri": "https://ca/acct/2"},
            False,
        ),
        (
            {"example.com": (rr(0, "issue", "ecert.example.hk; validationmethods=dns-01"),)},
            False,
            {"method": "dns"},
            True,
        ),
        (
            {"example.com": (rr(0, "issue", "ecert.example.hk; validationmethods=dns-01"),)},
            False,
            {"method": "http_file"},
            False,
        ),
        (
            {"example.com": (rr(0, "issue", "ecert.example.hk; validationmethods=ecert-email,http-01"),)},
            False,
            {"method": "email"},
            True,
        ),
        ({"example.com": (rr(0, "issue", "ecert.example.hk; validationmethods=dns-01"),)}, False, {}, False),
        ({"example.com": (rr(0, "issue", "ecert.example.hk; garbage"),)}, False, {}, False),
    ],
)
def test_caa_decision(records, wildcard, kwargs, permitted):
    decision = caa_permits(records, "www.example.com", wildcard, CA, **kwargs)
    assert decision.permitted is permitted, decision.reason


def test_caa_decision_names_the_deciding_records():
    decision = caa_permits({"www.example.com": (), "example.com": (rr(0, "issue", ";"),)}, "www.example.com", False, CA)
    assert decision.relevant_name == "example.com"
    assert decision.records == (rr(0, "issue", ";"),)
    assert "forbids every CA" in decision.reason


def test_parse_caa_value():
    assert parse_caa_value(" ca.example ; accounturi=x ; validationmethods=dns-01") == (
        "ca.example",
        {"accounturi": "x", "validationmethods": "dns-01"},
    )
    assert parse_caa_value(";") == (None, {})


# --- BR 3.2.2.9 quorum ---------------------------------------------------------------------------


@pytest.mark.parametrize(("used", "allowed"), [(1, 0), (2, 1), (5, 1), (6, 2), (10, 2)])
def test_quorum_table(used, allowed):
    assert allowed_non_corroborations(used) == allowed


@pytest.mark.parametrize(
    ("primary", "remote", "required", "ok"),
    [
        (True, [True] * 5, 5, True),
        (True, [True, True, True, True, None], 5, True),
        (True, [True, True, True, False, None], 5, False),
        (True, [True, True, True, True], 5, False),  # too few perspectives
        (False, [True] * 5, 5, False),  # remote passes never overturn a primary failure
        (True, [True] * 4 + [False, None], 5, True),  # 6 remotes allow 2
    ],
)
def test_quorum_decision(primary, remote, required, ok):
    assert quorum_decision(primary, remote, required).corroborated is ok
