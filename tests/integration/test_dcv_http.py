"""Website-change method (BR 3.2.2.4.18) against a scripted loopback HTTP(S) server, names from Knot DNS."""

from __future__ import annotations

import time

import pytest

from ecert.core.dcv_rules import new_validation_code
from ecert.validation.http_file import HttpLimits
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import dcv_settings

PATH = "/.well-known/pki-validation/fileauth.txt"
LIMITS = HttpLimits(request_timeout=0.5, total_time=2.0, max_hops=5, max_body=64 * 1024)


@pytest.fixture(scope="module")
def names(knot_dns):
    for label in (
        "site",
        "moved",
        "elsewhere",
        "loop",
        "slowpoke",
        "bigfile",
        "tlsonly",
        "see-other",
        "otherport",
        "ftp",
        "missing",
        "wrong",
        "e500",
        "nxhost-ref",
    ):
        knot_dns.set_records(f"{label}.example.com", "A", ["127.0.0.1"])
    return knot_dns


@pytest.fixture()
def validator(names, http_file_server):
    return Validator(dcv_settings(names.resolver_addr, http=http_file_server), http_limits=LIMITS)


def test_file_over_http_passes_with_evidence(validator, http_file_server):
    code = new_validation_code()
    http_file_server.serve_file("site.example.com", f"\n  {code}  \n")
    result = validator.check("http_file", "site.example.com", code)
    assert result.passed, result.reason
    request = result.evidence["attempts"][0]["requests"][0]
    assert request["status"] == 200 and request["address"] == "127.0.0.1"
    assert ("http", "site.example.com", PATH) in http_file_server.requests


def test_https_is_tried_when_http_fails(validator, http_file_server):
    code = new_validation_code()
    http_file_server.status("tlsonly.example.com", 404, scheme="http")
    http_file_server.serve_file("tlsonly.example.com", code, scheme="https")
    result = validator.check("http_file", "tlsonly.example.com", code)
    assert result.passed, result.reason
    assert result.reason.startswith("Validation Code found at https://tlsonly.example.com")


def test_redirect_to_another_host_on_authorized_port_is_followed(validator, http_file_server):
    code = new_validation_code()
    port = http_file_server.http_port
    http_file_server.redirect("moved.example.com", 301, f"http://elsewhere.example.com:{port}{PATH}")
    http_file_server.serve_file("elsewhere.example.com", code)
    result = validator.check("http_file", "moved.example.com", code)
    assert result.passed, result.reason
    assert [r["status"] for r in result.evidence["attempts"][0]["requests"]] == [301, 200]


@pytest.mark.parametrize(
    ("setup", "reason_part"),
    [
        (lambda s, c: None, "HTTP 404 at http://missing.example.com"),
        (
            lambda s, c: s.serve_file("wrong.example.com", "something-else"),
            "does not hold the Validation Code",
        ),
        (lambda s, c: s.status("e500.example.com", 500), "HTTP 500"),
        (
            lambda s, c: s.redirect("otherport.example.com", 302, f"http://otherport.example.com:1{PATH}"),
            "port 1 is not an Authorized Port",
        ),
        (
            lambda s, c: s.redirect("see-other.example.com", 303, f"http://site.example.com:{s.http_port}{PATH}"),
            "HTTP 303 redirect",
        ),
        (
            lambda s, c: s.redirect("ftp.example.com", 301, "ftp://ftp.example.com/fileauth.txt"),
            "non-http(s)",
        ),
        (
            lambda s, c: s.redirect("loop.example.com", 307, f"http://loop.example.com:{s.http_port}{PATH}"),
            "more than 5 redirects",
        ),
        (lambda s, c: s.slow("slowpoke.example.com", 1.5, c), "within"),
        (lambda s, c: s.huge("bigfile.example.com", 1_000_000, c), "larger than 65536 bytes"),
        (lambda s, c: None, "no A or AAAA record"),
    ],
    ids=["missing", "wrong-code", "500", "other-port", "303", "ftp", "loop", "slow", "huge", "no-address"],
)
def test_http_failures(validator, http_file_server, request, setup, reason_part):
    code = new_validation_code()
    domain = {
        "missing": "missing.example.com",
        "wrong-code": "wrong.example.com",
        "500": "e500.example.com",
        "other-port": "otherport.example.com",
        "303": "see-other.example.com",
        "ftp": "ftp.example.com",
        "loop": "loop.example.com",
        "slow": "slowpoke.example.com",
        "huge": "bigfile.example.com",
        "no-address": "nothing-here.example.com",
    }[request.node.callspec.id]
    setup(http_file_server, code)
    started = time.monotonic()
    result = validator.check("http_file", domain, code)
    assert not result.passed
    assert reason_part in result.reason, result.reason
    assert time.monotonic() - started < 2 * LIMITS.total_time + 1


def test_loopback_is_refused_in_production_configuration(names, http_file_server):
    code = new_validation_code()
    http_file_server.serve_file("site.example.com", code)
    settings = dcv_settings(names.resolver_addr, http=http_file_server, allow_private_addresses=False)
    result = Validator(settings, http_limits=LIMITS).check("http_file", "site.example.com", code)
    assert not result.passed
    assert "non-public address 127.0.0.1" in result.reason
    assert http_file_server.requests == []


def test_wildcard_name_is_refused_by_the_file_method(validator, http_file_server):
    result = validator.check("http_file", "*.site.example.com", "CODE")
    assert not result.passed and "BR 3.2.2.4.18" in result.reason
    assert http_file_server.requests == []


@pytest.mark.parametrize(
    ("address", "forbidden"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.1", True),
        ("169.254.169.254", True),  # cloud metadata
        ("100.64.0.1", True),  # carrier-grade NAT
        ("224.0.0.1", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("::ffff:127.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:4700::1111", False),
    ],
)
def test_non_public_destinations_are_forbidden(address, forbidden):
    from ecert.validation.netguard import is_forbidden_address

    assert is_forbidden_address(address) is forbidden
