"""RFC 8657 in the CAA decision (core.dcv_rules.caa_permits): accounturi binds issuance to one ACME account,
validationmethods to the challenge types listed; callers without an account keep the RFC 8659 behaviour."""

from __future__ import annotations

from typing import Any

import pytest

from ecert.core.dcv_rules import CaaRecord, DcvMethod, caa_permits

CA = ("ecert.example.hk",)
ME = "https://acme.ecert.example.hk/acme/acct/17"
OTHER = "https://acme.ecert.example.hk/acme/acct/18"


def issue(value: str, tag: str = "issue") -> CaaRecord:
    return CaaRecord(0, tag, value)


CASES: list[tuple[str, tuple[CaaRecord, ...], bool, dict[str, Any], bool]] = [
    # accounturi (RFC 8657 3): exact match of the account URL, nothing else
    ("bound to me", (issue(f"ecert.example.hk; accounturi={ME}"),), False, {"account_uri": ME}, True),
    ("bound to another account", (issue(f"ecert.example.hk; accounturi={OTHER}"),), False, {"account_uri": ME}, False),
    ("bound, asked without an account", (issue(f"ecert.example.hk; accounturi={ME}"),), False, {}, False),
    (
        "bound, URL differs in case",
        (issue(f"ecert.example.hk; accounturi={ME.upper()}"),),
        False,
        {"account_uri": ME},
        False,
    ),
    (
        "bound, URL with a trailing slash",
        (issue(f"ecert.example.hk; accounturi={ME}/"),),
        False,
        {"account_uri": ME},
        False,
    ),
    ("parameter name in capitals", (issue(f"ecert.example.hk; AccountURI={ME}"),), False, {"account_uri": ME}, True),
    (
        "one record for another account, one open",
        (issue(f"ecert.example.hk; accounturi={OTHER}"), issue("ecert.example.hk")),
        False,
        {"account_uri": ME},
        True,
    ),
    (
        "two records, one for each account",
        (issue(f"ecert.example.hk; accounturi={OTHER}"), issue(f"ecert.example.hk; accounturi={ME}")),
        False,
        {"account_uri": ME},
        True,
    ),
    (
        "bound to me, but for another CA",
        (issue(f"letsencrypt.org; accounturi={ME}"),),
        False,
        {"account_uri": ME},
        False,
    ),
    ("no parameter: any account", (issue("ecert.example.hk"),), False, {"account_uri": ME}, True),
    # issuewild carries its own parameters for wildcards (RFC 8659 4.3 with RFC 8657)
    (
        "issuewild bound to another account",
        (issue("ecert.example.hk"), issue(f"ecert.example.hk; accounturi={OTHER}", "issuewild")),
        True,
        {"account_uri": ME},
        False,
    ),
    (
        "issuewild bound to me",
        (issue(";"), issue(f"ecert.example.hk; accounturi={ME}", "issuewild")),
        True,
        {"account_uri": ME},
        True,
    ),
    # validationmethods (RFC 8657 4): the method used must be listed
    (
        "dns-01 listed, DNS used",
        (issue("ecert.example.hk; validationmethods=dns-01"),),
        False,
        {"method": DcvMethod.DNS},
        True,
    ),
    (
        "dns-01 listed, website used",
        (issue("ecert.example.hk; validationmethods=dns-01"),),
        False,
        {"method": DcvMethod.HTTP_FILE},
        False,
    ),
    (
        "several listed",
        (issue("ecert.example.hk; validationmethods=tls-alpn-01,http-01"),),
        False,
        {"method": DcvMethod.HTTP_FILE},
        True,
    ),
    ("listed, no method known", (issue("ecert.example.hk; validationmethods=dns-01"),), False, {}, False),
    (
        "empty list permits no method",
        (issue("ecert.example.hk; validationmethods="),),
        False,
        {"method": DcvMethod.DNS},
        False,
    ),
    # both parameters must hold
    (
        "both hold",
        (issue(f"ecert.example.hk; accounturi={ME}; validationmethods=dns-01"),),
        False,
        {"account_uri": ME, "method": DcvMethod.DNS},
        True,
    ),
    (
        "account holds, method does not",
        (issue(f"ecert.example.hk; accounturi={ME}; validationmethods=dns-01"),),
        False,
        {"account_uri": ME, "method": DcvMethod.HTTP_FILE},
        False,
    ),
    (
        "method holds, account does not",
        (issue(f"ecert.example.hk; accounturi={ME}; validationmethods=dns-01"),),
        False,
        {"account_uri": OTHER, "method": DcvMethod.DNS},
        False,
    ),
]


@pytest.mark.parametrize(
    ("records", "wildcard", "kwargs", "permitted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rfc8657_parameters(
    records: tuple[CaaRecord, ...], wildcard: bool, kwargs: dict[str, Any], permitted: bool
) -> None:
    name = "*.example.com" if wildcard else "www.example.com"
    decision = caa_permits({name.lstrip("*."): records}, name, wildcard, CA, **kwargs)
    assert decision.permitted is permitted, decision.reason
    if not permitted:
        assert "RFC 8659" in decision.reason and decision.records == records


def test_callers_without_an_account_keep_the_rfc8659_answer() -> None:
    """The portal and the REST API pass no account: a record without RFC 8657 parameters decides as before."""
    records = {"example.com": (issue("ecert.example.hk"),)}
    assert caa_permits(records, "www.example.com", False, CA).permitted
    assert caa_permits(records, "www.example.com", False, CA, None, None).permitted
