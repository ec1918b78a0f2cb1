"""DNSSEC (BR 3.2.2.8.1): behind a validating resolver, bogus data fails and validated data carries AD.

Knot signs example.org itself; unbound validates it against a trust anchor taken from Knot (good)
or a tampered one (every answer bogus, so unbound answers SERVFAIL).
"""

from __future__ import annotations

import base64

import dns.message
import dns.query
import pytest

from ecert.core.dcv_rules import new_validation_code
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import KnotDns, UnboundResolver, dcv_settings, free_port

ZONE = "example.org"


@pytest.fixture(scope="module")
def signed_knot(tmp_path_factory):
    knot = KnotDns(tmp_path_factory.mktemp("knot-signed"), free_port(), zones=(ZONE,), signed=(ZONE,))
    knot.start()
    yield knot
    knot.stop()


def _ksk(knot: KnotDns) -> str:
    reply = dns.query.udp(dns.message.make_query(ZONE + ".", "DNSKEY"), "127.0.0.1", port=knot.port, timeout=2)
    keys = [rd for rrset in reply.answer for rd in rrset if rd.flags == 257]
    assert keys, "Knot did not sign the zone"
    return keys[0].to_text()


def _validating(knot: KnotDns, workdir, anchor: str) -> UnboundResolver:
    extra = f'    module-config: "validator iterator"\n    trust-anchor: "{ZONE}. DNSKEY {anchor}"\n'
    resolver = UnboundResolver(workdir, free_port(), knot.port, zones=(ZONE,), extra=extra)
    resolver.start()
    return resolver


@pytest.fixture(scope="module")
def good_resolver(signed_knot, tmp_path_factory):
    resolver = _validating(signed_knot, tmp_path_factory.mktemp("unbound-good"), _ksk(signed_knot))
    yield resolver
    resolver.stop()


@pytest.fixture(scope="module")
def bogus_resolver(signed_knot, tmp_path_factory):
    flags, proto, alg, key = _ksk(signed_knot).split(" ", 3)
    raw = bytearray(base64.b64decode(key.replace(" ", "")))
    raw[-1] ^= 0xFF  # a different key: every signature in the zone now fails to validate
    anchor = f"{flags} {proto} {alg} {base64.b64encode(bytes(raw)).decode()}"
    resolver = _validating(signed_knot, tmp_path_factory.mktemp("unbound-bogus"), anchor)
    yield resolver
    resolver.stop()


def test_validated_answer_carries_ad_and_passes(signed_knot, good_resolver):
    code = new_validation_code()
    signed_knot.add_txt(f"secure.{ZONE}", code)
    validator = Validator(dcv_settings(good_resolver.resolver_addr, dnssec_required=True))
    result = validator.check("dns", f"secure.{ZONE}", code)
    assert result.passed, result.reason
    assert all(q["ad"] for q in result.evidence["queries"] if q["status"] == "ok")


@pytest.mark.parametrize("dnssec_required", [True, False])
def test_bogus_answer_is_a_failure_never_permission(signed_knot, bogus_resolver, dnssec_required):
    code = new_validation_code()
    signed_knot.add_txt(f"bogus.{ZONE}", code)
    validator = Validator(dcv_settings(bogus_resolver.resolver_addr, dnssec_required=dnssec_required))
    result = validator.check("dns", f"bogus.{ZONE}", code)
    assert not result.passed
    assert "SERVFAIL" in result.reason
    [decision] = validator.check_caa([f"bogus.{ZONE}"])
    assert not decision.permitted and "SERVFAIL" in decision.reason
