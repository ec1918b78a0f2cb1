"""DNSSEC (BR 3.2.2.8.1): behind a validating resolver, bogus data fails and validated data carries AD.

Knot signs example.org itself; unbound validates it against a trust anchor taken from Knot (good)
or a tampered one (every answer bogus, so unbound answers SERVFAIL).
"""

from __future__ import annotations

import pytest

from ecert.core.dcv_rules import new_validation_code
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import SIGNED_ZONE as ZONE
from tests.integration.dcv_fixtures import dcv_settings


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
