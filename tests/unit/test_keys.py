"""Subscriber key policy: allowed algorithms and sizes, weak keys, the blocked-key table."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Callable

import gmpy2  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ecert.core.errors import BadKey
from ecert.core.keys import KeyInfo, check_public_key, spki_sha256

_rng = random.Random(6115)


def _prime(bits: int) -> int:
    return int(gmpy2.next_prime(_rng.getrandbits(bits) | (0b11 << (bits - 2))))


def rsa_public(bits: int, e: int = 65537) -> rsa.RSAPublicKey:
    """An RSA public key of exactly ``bits`` bits made from two random primes (fast for any size)."""
    while True:
        p, q = _prime(bits - bits // 2), _prime(bits // 2)
        n = p * q
        if n.bit_length() == bits and p != q and gmpy2.gcd(e, (p - 1) * (q - 1)) == 1:
            return rsa.RSAPublicNumbers(e, n).public_key()


def rsa_odd_modulus(bits: int, e: int = 65537) -> rsa.RSAPublicKey:
    """A key with a random odd modulus of ``bits`` bits: enough for size and exponent rules, which
    are checked before any factoring test."""
    n = _rng.getrandbits(bits) | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(e, n).public_key()


def rsa_close_primes() -> rsa.RSAPublicKey:
    p = _prime(1024)
    q = int(gmpy2.next_prime(p + 1000))
    return rsa.RSAPublicNumbers(65537, p * q).public_key()


def rsa_small_factor() -> rsa.RSAPublicKey:
    p = int(gmpy2.next_prime((1 << 2048) // 7 - _rng.getrandbits(1000)))
    return rsa.RSAPublicNumbers(65537, 7 * p).public_key()


@pytest.mark.parametrize(
    ("make", "algorithm", "size", "curve"),
    [
        (lambda: rsa_public(2048), "RSA", 2048, None),
        (lambda: rsa_public(3072), "RSA", 3072, None),
        (lambda: rsa_public(4096), "RSA", 4096, None),
        (lambda: rsa.generate_private_key(65537, 2048).public_key(), "RSA", 2048, None),
        (lambda: ec.generate_private_key(ec.SECP256R1()).public_key(), "EC", 256, "P-256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()).public_key(), "EC", 384, "P-384"),
    ],
    ids=["rsa2048", "rsa3072", "rsa4096", "rsa2048-generated", "p256", "p384"],
)
def test_allowed_keys_are_described(
    make: Callable[[], PublicKeyTypes], algorithm: str, size: int, curve: str | None
) -> None:
    key = make()
    info = check_public_key(key)
    assert (info.algorithm, info.size, info.curve) == (algorithm, size, curve)
    assert info.spki_sha256 == spki_sha256(key)


REFUSED: list[tuple[str, Callable[[], PublicKeyTypes], str, str]] = [
    ("rsa1024", lambda: rsa_odd_modulus(1024), "BR 6.1.5", "1024 bits"),
    ("rsa2047", lambda: rsa_odd_modulus(2047), "BR 6.1.5", "2047 bits"),
    ("rsa2049", lambda: rsa_odd_modulus(2049), "BR 6.1.5", "2049 bits"),
    ("rsa2056", lambda: rsa_odd_modulus(2056), "BR 6.1.5", "2056 bits"),  # divisible by 8, still unusual
    ("rsa8192", lambda: rsa_odd_modulus(8192), "BR 6.1.5", "8192 bits"),
    ("e3", lambda: rsa_odd_modulus(2048, e=3), "BR 6.1.6", "exponent 3 "),
    ("e17", lambda: rsa_odd_modulus(2048, e=17), "BR 6.1.6", "exponent 17 "),
    ("e65539", lambda: rsa_odd_modulus(2048, e=65539), "BR 6.1.6", "must be 65537"),
    ("p521", lambda: ec.generate_private_key(ec.SECP521R1()).public_key(), "BR 6.1.5", "secp521r1"),
    ("p224", lambda: ec.generate_private_key(ec.SECP224R1()).public_key(), "BR 6.1.5", "secp224r1"),
    ("secp256k1", lambda: ec.generate_private_key(ec.SECP256K1()).public_key(), "BR 6.1.5", "secp256k1"),
    (
        "brainpool",
        lambda: ec.generate_private_key(ec.BrainpoolP256R1()).public_key(),
        "BR 6.1.5",
        "brainpoolP256r1",
    ),
    ("dsa", lambda: dsa.generate_private_key(2048).public_key(), "BR 6.1.5", "DSA keys are not allowed"),
    ("ed25519", lambda: ed25519.Ed25519PrivateKey.generate().public_key(), "BR 6.1.5", "Ed25519 keys"),
    ("ed448", lambda: ed448.Ed448PrivateKey.generate().public_key(), "BR 6.1.5", "Ed448 keys"),
    ("x25519", lambda: x25519.X25519PrivateKey.generate().public_key(), "BR 6.1.5", "X25519 keys"),
    ("fermat", rsa_close_primes, "BR 6.1.1.3", "badkeys check 'fermat'"),
    ("smallfactors", rsa_small_factor, "BR 6.1.1.3", "badkeys check 'smallfactors"),
]


@pytest.mark.parametrize(("make", "rule", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_keys_name_the_rule(make: Callable[[], PublicKeyTypes], rule: str, message: str) -> None:
    with pytest.raises(BadKey) as caught:
        check_public_key(make())
    assert caught.value.rule == rule
    assert message in caught.value.message


def test_blocked_key_is_refused_even_when_otherwise_good() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(BadKey, match="key is blocked \\(compromised\\)") as caught:
        check_public_key(key, blocked_spki={spki_sha256(key)})
    assert caught.value.value == spki_sha256(key)
    # another key passes the same table
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert check_public_key(other, blocked_spki={spki_sha256(key)}).algorithm == "EC"


def test_spki_sha256_is_the_hash_of_the_der_subject_public_key_info() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki_sha256(key) == hashlib.sha256(der).hexdigest()


def test_key_info_is_immutable_and_readable() -> None:
    info = check_public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
    assert info.description == "ECDSA P-384"
    assert KeyInfo("RSA", 2048, None, "00").description == "RSA 2048"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size = 1  # type: ignore[misc]
