"""core/acme_orders.py: each refusal in a table (input -> problem type and rule), the state tables, the digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import josepy as jose
import pytest
from acme import challenges
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.acme_orders import (
    ORDER_TRANSITIONS,
    AuthzStatus,
    OrderEvent,
    OrderStatus,
    challenge_types_for,
    check_challenge_type,
    check_csr_names,
    check_identifiers,
    choose_profile,
    dns01_txt_value,
    effective_order_status,
    key_authorization,
    order_move,
    order_status_from,
)
from ecert.core.acme_rules import AcmeRefusal, ProblemType
from ecert.core.profiles import CertType

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("call", "problem", "rule"),
    [
        (lambda: check_identifiers([]), ProblemType.MALFORMED, "RFC 8555 7.4"),
        (
            lambda: check_identifiers([{"type": "ip", "value": "192.0.2.1"}]),
            ProblemType.UNSUPPORTED_IDENTIFIER,
            "RFC 8555 9.7.7",
        ),
        (
            lambda: check_identifiers([{"type": "dns", "value": f"n{i}.example.com"} for i in range(51)]),
            ProblemType.REJECTED_IDENTIFIER,
            "RFC 8555 7.4",
        ),
        (
            lambda: choose_profile("platinum", CertType.SERVER, ["a.example.com"]),
            ProblemType.INVALID_PROFILE,
            "draft-aaron-acme-profiles 4",
        ),
        (
            lambda: choose_profile("ev", CertType.SERVER, ["a.example.com"]),
            ProblemType.INVALID_PROFILE,
            "draft-aaron-acme-profiles 4",
        ),
        (
            lambda: choose_profile("server", CertType.EV, ["a.example.com"]),
            ProblemType.INVALID_PROFILE,
            "draft-aaron-acme-profiles 4",
        ),
        (
            lambda: check_challenge_type("*.example.com", "http-01"),
            ProblemType.REJECTED_IDENTIFIER,
            "BR 3.2.2.4.19 / RFC 8555 7.1.3",
        ),
        (
            lambda: check_challenge_type("*.example.com", "tls-alpn-01"),
            ProblemType.REJECTED_IDENTIFIER,
            "BR 3.2.2.4.19 / RFC 8555 7.1.3",
        ),
        (
            lambda: check_csr_names(["a.example.com", "b.example.com"], ["a.example.com"]),
            ProblemType.BAD_CSR,
            "RFC 8555 7.4",
        ),
        (lambda: check_csr_names([], ["a.example.com"]), ProblemType.BAD_CSR, "RFC 8555 7.4"),
        (lambda: order_move("pending", OrderEvent.FINALIZE), ProblemType.ORDER_NOT_READY, "RFC 8555 7.4"),
        (lambda: order_move("valid", OrderEvent.FINALIZE), ProblemType.ORDER_NOT_READY, "RFC 8555 7.4"),
    ],
)
def test_refusals(call: Any, problem: ProblemType, rule: str) -> None:
    with pytest.raises(AcmeRefusal) as caught:
        call()
    assert caught.value.problem is problem and caught.value.rule == rule


def test_identifiers_are_lowered_and_deduplicated_in_order() -> None:
    ids = [
        {"type": "dns", "value": "B.example.com."},
        {"type": "dns", "value": "a.example.com"},
        {"type": "dns", "value": "b.example.com"},
    ]
    assert check_identifiers(ids) == ("b.example.com", "a.example.com")


def test_profile_defaults_to_the_application_and_multi_may_ask_for_server() -> None:
    assert choose_profile(None, CertType.MULTI, ["a.example.com"]) is CertType.MULTI
    assert choose_profile("server", CertType.MULTI, ["a.example.com"]) is CertType.SERVER
    assert choose_profile(None, CertType.WILDCARD, ["*.example.com"]) is CertType.WILDCARD


def test_wildcards_only_by_dns01() -> None:
    assert challenge_types_for("*.example.com") == ("dns-01",)
    assert challenge_types_for("www.example.com") == ("http-01", "dns-01", "tls-alpn-01")


def test_order_states_follow_rfc_8555_7_1_6() -> None:
    assert order_move("ready", OrderEvent.FINALIZE) == (OrderStatus.READY, OrderStatus.PROCESSING)
    assert order_move("processing", OrderEvent.ISSUE) == (OrderStatus.PROCESSING, OrderStatus.VALID)
    assert all(source not in (OrderStatus.VALID, OrderStatus.INVALID) for source, _ in ORDER_TRANSITIONS)
    assert order_status_from(["valid", "valid"]) is OrderEvent.AUTHORIZED
    assert order_status_from(["valid", "pending"]) is None
    assert order_status_from(["valid", AuthzStatus.INVALID.value]) is OrderEvent.FAIL
    assert effective_order_status("ready", NOW, NOW) == "invalid"
    assert effective_order_status("ready", NOW + timedelta(seconds=1), NOW) == "ready"
    assert effective_order_status("valid", NOW, NOW) == "valid"


def test_key_authorization_and_dns01_digest_match_certbots_acme_library() -> None:
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    chall = challenges.DNS01(token=b"\x01" * 32)
    thumb = jose.b64encode(key.thumbprint(hash_function=hashes.SHA256)).decode()
    ours = key_authorization(chall.encode("token"), thumb)
    assert ours == chall.key_authorization(key)
    assert dns01_txt_value(ours) == chall.validation(key)


@pytest.mark.parametrize(
    ("names", "covered", "namespaces", "outside"),
    [
        (("www.a.hk",), ("www.a.hk",), (), ()),
        (("new.a.hk",), ("www.a.hk",), (), ("new.a.hk",)),
        (("new.a.hk", "*.a.hk"), ("www.a.hk",), ("a.hk",), ()),  # held for this organisation: covers below it
        (("new.b.hk",), ("www.a.hk",), ("a.hk",), ("new.b.hk",)),
        (("xa.hk",), (), ("a.hk",), ("xa.hk",)),  # a label boundary, not a string suffix
    ],
)
def test_names_outside_what_the_organisation_may_be_issued(
    names: tuple[str, ...], covered: tuple[str, ...], namespaces: tuple[str, ...], outside: tuple[str, ...]
) -> None:
    """One rule for the RA and ACME's early refusal (core.evidence.names_outside)."""
    from ecert.core.evidence import names_outside

    assert names_outside(names, covered, namespaces) == outside
