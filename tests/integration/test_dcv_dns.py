"""DNS Change method (BR 3.2.2.4.7) against Knot DNS, and unbound in front for resolver failures."""

from __future__ import annotations

import pytest

from ecert.core.dcv_rules import new_validation_code
from ecert.validation.dns import DnsClient
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import dcv_settings


@pytest.fixture()
def validator(knot_dns):
    return Validator(dcv_settings(knot_dns.resolver_addr))


def test_txt_at_the_name_passes_and_records_what_was_seen(knot_dns, validator):
    code = new_validation_code()
    knot_dns.add_txt("txt-ok.example.com", code)
    result = validator.check("dns", "txt-ok.example.com", code)
    assert result.passed, result.reason
    assert result.method == "dns" and result.br_version
    assert code in result.evidence["txt_seen"]
    assert result.evidence["resolvers"] == [knot_dns.resolver_addr]


def test_txt_under_pki_validation_label_passes(knot_dns, validator):
    code = new_validation_code()
    knot_dns.add_txt("_pki-validation.prefixed.example.com", code)
    result = validator.check("dns", "prefixed.example.com", code)
    assert result.passed, result.reason
    assert result.evidence["matched_at"] == "_pki-validation.prefixed.example.com"


def test_strings_of_one_record_are_concatenated(knot_dns, validator):
    code = new_validation_code()
    knot_dns.add_txt("split.example.com", [code[:10], code[10:]])
    assert validator.check("dns", "split.example.com", code).passed


def test_any_of_several_records_may_match(knot_dns, validator):
    code = new_validation_code()
    knot_dns.add_txt("several.example.com", "v=spf1 -all")
    knot_dns.add_txt("several.example.com", code)
    knot_dns.add_txt("several.example.com", "google-site-verification=abc")
    assert validator.check("dns", "several.example.com", code).passed


def test_wildcard_is_validated_on_its_base_domain(knot_dns, validator):
    code = new_validation_code()
    knot_dns.add_txt("wild.example.com", code)
    assert validator.check("dns", "*.wild.example.com", code).passed


def test_live_update_is_seen_between_checks(knot_dns, validator):
    code = new_validation_code()
    assert not validator.check("dns", "later.example.com", code).passed
    knot_dns.add_txt("later.example.com", code)
    assert validator.check("dns", "later.example.com", code).passed


@pytest.mark.parametrize(
    ("where", "value", "reason_part"),
    [
        ("wrongname-other.example.com", "CODE", "no TXT record"),  # record on another name
        ("wrongcode.example.com", "not-the-code", "do not hold the Validation Code"),
        ("_acme-challenge.acme.example.com", "CODE", "no TXT record"),  # ACME label is not ours
        ("partial.example.com", "xxCODExx", "do not hold the Validation Code"),
    ],
)
def test_txt_failures(knot_dns, validator, where, value, reason_part):
    code = new_validation_code()
    knot_dns.add_txt(where, value.replace("CODE", code))
    domain = {
        "wrongname-other.example.com": "wrongname.example.com",
        "_acme-challenge.acme.example.com": "acme.example.com",
    }.get(where, where)
    result = validator.check("dns", domain, code)
    assert not result.passed
    assert reason_part in result.reason


def test_servfail_from_the_resolver_fails_closed(knot_dns, unbound_resolver):
    validator = Validator(dcv_settings(unbound_resolver.resolver_addr))
    result = validator.check("dns", "www.servfail.example.info", "CODE")
    assert not result.passed
    assert "SERVFAIL" in result.reason


def test_dead_resolver_times_out_in_bounded_time(knot_dns):
    import socket
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:  # bound, never answers
        hole.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{hole.getsockname()[1]}"
        client = DnsClient([addr], timeout=0.3, lifetime=0.6)
        validator = Validator(dcv_settings(addr), dns_client=client)
        started = time.monotonic()
        result = validator.check("dns", "www.example.com", "CODE")
    assert not result.passed and "TIMEOUT" in result.reason
    assert time.monotonic() - started < 3


def test_dnssec_required_refuses_unauthenticated_answers(knot_dns):
    code = new_validation_code()
    knot_dns.add_txt("unsigned.example.com", code)
    validator = Validator(dcv_settings(knot_dns.resolver_addr, dnssec_required=True))
    result = validator.check("dns", "unsigned.example.com", code)
    assert not result.passed
    assert "UNAUTHENTICATED" in result.reason
