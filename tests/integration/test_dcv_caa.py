"""CAA (RFC 8659) by tree climbing against Knot DNS, with unbound in front for aliases and failures."""

from __future__ import annotations

import pytest

from ecert.validation.caa import climb_names
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import dcv_settings


@pytest.fixture(scope="module")
def caa_zone(knot_dns):
    """One sub-tree per case, so cases do not disturb each other."""
    k = knot_dns
    k.set_records("ok.caa.example.com", "CAA", ['0 issue "ecert.example.hk"'])
    k.set_records("deny.caa.example.com", "CAA", ['0 issue ";"'])
    k.set_records("other.caa.example.com", "CAA", ['0 issue "letsencrypt.org"'])
    k.set_records("crit.caa.example.com", "CAA", ['128 tbs "x"', '0 issue "ecert.example.hk"'])
    k.set_records("wild.caa.example.com", "CAA", ['0 issue "ecert.example.hk"', '0 issuewild ";"'])
    k.set_records("wildok.caa.example.com", "CAA", ['0 issue ";"', '0 issuewild "ecert.example.hk"'])
    k.set_records("parent.caa.example.com", "CAA", ['0 issue ";"'])
    k.set_records("www.deep.parent.caa.example.com", "A", ["127.0.0.1"])
    k.set_records("iodef.caa.example.com", "CAA", ['0 iodef "mailto:sec@example.com"'])
    # an alias into another zone whose target forbids, and one whose target permits
    k.set_records("alias-deny.caa.example.com", "CNAME", ["target-deny.example.net."])
    k.set_records("target-deny.example.net", "CAA", ['0 issue ";"'])
    k.set_records("alias-ok.caa.example.com", "CNAME", ["hop1.example.net."])
    k.set_records("hop1.example.net", "CNAME", ["hop2.example.org."])
    k.set_records("hop2.example.org", "CAA", ['0 issue "ecert.example.hk"'])
    k.set_records("caa.example.com", "CAA", ['0 issue "ecert.example.hk"'])
    return k


@pytest.fixture(params=["knot", "unbound"])
def validator(request, caa_zone, unbound_resolver):
    addr = caa_zone.resolver_addr if request.param == "knot" else unbound_resolver.resolver_addr
    return Validator(dcv_settings(addr))


@pytest.mark.parametrize(
    ("name", "wildcard", "permitted", "reason_part"),
    [
        ("ok.caa.example.com", False, True, "names this CA"),
        ("www.ok.caa.example.com", False, True, "names this CA"),  # climbs one level (NXDOMAIN)
        ("deny.caa.example.com", False, False, "forbids every CA"),
        ("other.caa.example.com", False, False, "names another CA"),
        ("crit.caa.example.com", False, False, "unknown critical"),
        ("*.wild.caa.example.com", True, False, "forbids every CA"),
        ("wild.caa.example.com", False, True, "names this CA"),
        ("*.wildok.caa.example.com", True, True, "names this CA"),
        ("www.deep.parent.caa.example.com", False, False, "forbids every CA"),  # two levels up
        ("iodef.caa.example.com", False, True, "no issue property"),
        ("alias-deny.caa.example.com", False, False, "forbids every CA"),
        ("alias-ok.caa.example.com", False, True, "names this CA"),
        ("nocaa.example.net", False, True, "no CAA records"),
    ],
)
def test_caa(validator, name, wildcard, permitted, reason_part):
    [decision] = validator.check_caa([name], is_wildcard_by_name={name: wildcard})
    assert decision.permitted is permitted, decision.reason
    assert reason_part in decision.reason
    assert decision.evidence["queries"], "the records seen must be kept for the audit log"


def test_alias_chain_is_recorded_in_evidence(validator):
    [decision] = validator.check_caa(["alias-ok.caa.example.com"])
    first = decision.evidence["queries"][0]
    assert first["cname_chain"] == ["hop1.example.net", "hop2.example.org"]
    assert first["records"] == ['0 issue "ecert.example.hk"']


def test_cname_loop_forbids(caa_zone, unbound_resolver):
    caa_zone.set_records("loop-a.example.net", "CNAME", ["loop-b.example.org."])
    caa_zone.set_records("loop-b.example.org", "CNAME", ["loop-a.example.net."])
    [decision] = Validator(dcv_settings(caa_zone.resolver_addr)).check_caa(["loop-a.example.net"])
    assert not decision.permitted


def test_servfail_forbids(unbound_resolver):
    [decision] = Validator(dcv_settings(unbound_resolver.resolver_addr)).check_caa(["www.servfail.example.info"])
    assert not decision.permitted
    assert "SERVFAIL" in decision.reason


def test_climb_stops_before_the_public_suffix():
    assert climb_names("a.b.example.com.hk") == ["a.b.example.com.hk", "b.example.com.hk", "example.com.hk"]
    assert climb_names("*.example.com") == ["example.com"]


# --- a misconfigured resolver fails closed (issue 10 point 5) ----------------------------------


@pytest.fixture(scope="module")
def dead_delegation(knot_dns):
    """``dead.caa.example.com`` is delegated to a name server that does not exist: nothing can be looked up."""
    knot_dns.set_records("dead.caa.example.com", "NS", ["ns.dead.invalid."])
    return "www.dead.caa.example.com"


def test_authoritative_server_as_resolver_refuses_a_dead_delegation(knot_dns, dead_delegation):
    [decision] = Validator(dcv_settings(knot_dns.authoritative_addr)).check_caa([dead_delegation])
    assert not decision.permitted, decision.reason
    assert "no CAA records" not in decision.reason
    assert "RFC 8659" in decision.reason and "BR 3.2.2.8" in decision.reason
    assert decision.evidence["queries"][0]["status"] in ("not-recursive", "referral")


def test_authoritative_server_as_resolver_refuses_even_a_name_it_holds(caa_zone):
    """Without the RA flag nothing counts: an authoritative server may hold a zone nobody delegates to it."""
    [decision] = Validator(dcv_settings(caa_zone.authoritative_addr)).check_caa(["ok.caa.example.com"])
    assert not decision.permitted
    assert "not recursive" in decision.reason


def test_referral_from_a_recursive_looking_server_is_a_failure(knot_dns, dead_delegation):
    """The same query seen raw from Knot is a referral; the client calls it one even if RA were set."""
    import dns.flags
    import dns.message
    import dns.query

    from ecert.validation.dns import _untrusted

    reply = dns.query.udp(
        dns.message.make_query(dead_delegation + ".", "CAA"), "127.0.0.1", port=knot_dns.port, timeout=2
    )
    assert not reply.answer and reply.authority
    reply.flags |= dns.flags.RA
    judged = _untrusted(dead_delegation, "CAA", reply)
    assert judged is not None and judged.status == "referral" and judged.failed


def test_recursive_resolver_permits_the_rest(unbound_resolver, caa_zone, dead_delegation):
    validator = Validator(dcv_settings(unbound_resolver.resolver_addr))
    dead, fine = validator.check_caa([dead_delegation, "www.ok.caa.example.com"])
    assert not dead.permitted and "SERVFAIL" in dead.reason
    assert fine.permitted, fine.reason


def test_issuance_is_refused_naming_the_rule(make_demo_ctx, knot_dns, dead_delegation):
    from ecert.core.errors import ValidationFailed
    from ecert.services.caa import check_caa_at_issuance

    ctx = make_demo_ctx(dns_resolvers=(knot_dns.authoritative_addr,), allow_private_addresses=True)
    with pytest.raises(ValidationFailed) as refused:
        check_caa_at_issuance(ctx, [dead_delegation], actor="operator:test")
    assert refused.value.rule == "BR 3.2.2.8 / RFC 8659"
    assert refused.value.value == dead_delegation
