"""Building the served chain from the installed CA certificates: issuer lookup, completeness, the
cross-certificate (only a real one), and the verdict on a chain a server sends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.test_client_pki import NOW, TestPKI, _ca_cert, _name

from ecert.client.chain import build_chain, cross_certificate_for, is_cross_certificate
from ecert.client.check import judge_completeness

HOST = "www.example.com"


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="module")
def leaf(pki: TestPKI):
    return pki.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), [HOST])


def test_the_issuing_ca_is_never_taken_for_a_cross_certificate(pki: TestPKI, leaf) -> None:
    # The audit's bug: with no chain, the leaf was "the top" and its sub-CA came back as the cross-certificate.
    assert cross_certificate_for(leaf, [pki.sub, pki.root, pki.cross]) is None
    assert not is_cross_certificate(pki.sub, [pki.sub, pki.root, pki.cross, pki.old_root])
    assert is_cross_certificate(pki.cross, [pki.root])


# pool (by attribute name) -> (complete, intermediates, cross appended?, missing CA's CN)
CASES = {
    "nothing-installed": ([], False, [], False, "Test e-Cert SSL CA 3 - 17"),
    "sub-ca-without-root": (["sub"], False, ["sub"], False, "Test Root CA 3"),
    "sub-ca-and-root": (["sub", "root"], True, ["sub"], False, None),
    "root-and-cross": (["root", "sub", "cross", "old_root"], True, ["sub"], True, None),
    "cross-to-older-root-only": (["sub", "cross", "old_root"], True, ["sub", "cross"], False, None),
    "cross-without-any-root": (["sub", "cross"], False, ["sub", "cross"], False, "Old Global Root R3"),
}


@pytest.mark.parametrize(("pool", "complete", "chain", "has_cross", "missing"), CASES.values(), ids=CASES.keys())
def test_build_chain_from_what_is_installed(pki, leaf, pool, complete, chain, has_cross, missing) -> None:
    plan = build_chain(leaf, [getattr(pki, n) for n in pool], now=NOW)
    assert plan.complete is complete
    assert list(plan.intermediates) == [getattr(pki, n) for n in chain]
    assert (plan.cross == pki.cross) if has_cross else plan.cross is None
    if missing is None:
        assert plan.missing is None
    else:
        assert missing in str(plan.refusal("web")) and "ecert ca install" in str(plan.refusal("web"))


def test_a_ca_with_the_issuers_name_but_another_key_is_not_the_issuer(pki: TestPKI, leaf) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    impostor = _ca_cert(pki.sub.subject, other_key, pki.root.subject, pki.root_key, NOW, 100, path_len=0)
    plan = build_chain(leaf, [impostor, pki.root], now=NOW)
    assert not plan.complete and plan.intermediates == ()


def test_the_valid_sub_ca_certificate_is_preferred_to_an_expired_one_with_the_same_key(pki: TestPKI, leaf) -> None:
    expired = _ca_cert(
        _name("Test e-Cert SSL CA 3 - 17"), pki.sub_key, pki.root.subject, pki.root_key, NOW - timedelta(days=400), 10
    )
    plan = build_chain(leaf, [expired, pki.sub, pki.root], now=NOW)
    assert plan.intermediates == (pki.sub,)


def test_backup_holds_the_whole_path(pki: TestPKI, leaf) -> None:
    plan = build_chain(leaf, [pki.sub, pki.root, pki.cross, pki.old_root], now=NOW)
    assert plan.backup() == [pki.sub, pki.cross, pki.root]


# served chain (attribute names; "leaf" is the server's certificate) -> complete?, words in the reason
SERVED = {
    "leaf-and-sub": (["leaf", "sub"], True, None),
    "leaf-sub-and-cross": (["leaf", "sub", "cross"], True, None),
    "leaf-sub-and-root": (["leaf", "sub", "root"], True, None),
    "leaf-only": (["leaf"], False, "sends only its own certificate"),
    "wrong-order": (["leaf", "root", "sub"], False, "out of order"),
    "stranger-in-the-chain": (["leaf", "old_root"], False, "out of order"),
    "self-signed": (["root"], False, "self-signed"),
}


@pytest.mark.parametrize(("served", "complete", "reason"), SERVED.values(), ids=SERVED.keys())
def test_served_chain_completeness(pki: TestPKI, leaf, served, complete: bool, reason: str | None) -> None:
    certs = [leaf if n == "leaf" else getattr(pki, n) for n in served]
    anchors = [pki.root] if served != ["root"] else [pki.old_root]
    verdict, why = judge_completeness(certs, anchors)
    assert verdict is complete
    assert (why is None) if reason is None else (reason in why)
