"""Subscriber key policy: allowed algorithms and sizes, known-weak keys, and the blocked-key table.

One place decides which public keys may be certified (Boulder keeps this in ``goodkey/``). The check
raises :class:`BadKey` or returns a :class:`KeyInfo`; it never answers False, because a caller that forgot
to look at a boolean would certify a weak key.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ecert.core.errors import BadKey

__all__ = [
    "KeyInfo",
    "ALLOWED_RSA_SIZES",
    "REQUIRED_RSA_EXPONENT",
    "ALLOWED_CURVES",
    "spki_sha256",
    "check_public_key",
]

# BR 6.1.5: RSA moduli of at least 2048 bits, divisible by 8. ecert takes only the three common sizes
# (as Boulder's goodkey does): odd sizes are almost always a broken generator.
ALLOWED_RSA_SIZES: frozenset[int] = frozenset({2048, 3072, 4096})
# BR 6.1.6 allows any odd e in [2^16+1, 2^256-1]; ecert takes only 65537, which every generator uses.
REQUIRED_RSA_EXPONENT = 65537
# BR 6.1.5: NIST P-256 and P-384 (P-521 is allowed by the BRs for CAs but not accepted by browsers'
# root programs for subscriber keys in practice; ecert refuses it).
ALLOWED_CURVES: dict[type[ec.EllipticCurve], str] = {ec.SECP256R1: "P-256", ec.SECP384R1: "P-384"}


_R_SIZE = "BR 6.1.5"
_R_EXPONENT = "BR 6.1.6"
_R_WEAK = "BR 6.1.1.3"


@dataclass(frozen=True)
class KeyInfo:
    """What the key policy learned about an accepted key."""

    algorithm: Literal["RSA", "EC"]
    size: int  # modulus bits for RSA, field size for EC
    curve: str | None  # "P-256" / "P-384" for EC keys
    spki_sha256: str  # hex SHA-256 of the DER SubjectPublicKeyInfo; the key's identity in the blocked table

    @property
    def description(self) -> str:
        """Human form, e.g. "RSA 2048" or "ECDSA P-256"."""
        return f"RSA {self.size}" if self.algorithm == "RSA" else f"ECDSA {self.curve}"


def _spki_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(public_key: PublicKeyTypes) -> str:
    """Hex SHA-256 over the DER SubjectPublicKeyInfo (the form used by key blocklists and CT tools)."""
    return hashlib.sha256(_spki_der(public_key)).hexdigest()


def _algorithm_name(public_key: object) -> str:
    """Readable name of a refused key type, for the message."""
    for kind, name in (
        (dsa.DSAPublicKey, "DSA"),
        (ed25519.Ed25519PublicKey, "Ed25519"),
        (ed448.Ed448PublicKey, "Ed448"),
        (x25519.X25519PublicKey, "X25519"),
        (x448.X448PublicKey, "X448"),
    ):
        if isinstance(public_key, kind):
            return name
    return type(public_key).__name__.removesuffix("PublicKey") or "unknown"


@functools.cache
def _badkeys() -> tuple[Any, tuple[str, ...]]:
    """badkeys and the checks ecert runs, imported on the first key check: badkeys brings gmpy2 and pyOpenSSL,
    a sixtieth of a second that commands which check no key (``ecert-ca ca list``) should not pay.

    BR 6.1.1.3: refuse keys known to be weak. badkeys' "blocklist" check needs a downloaded list (the
    internet), so it is left out; our own SPKI-hash table covers compromised keys instead."""
    import badkeys  # type: ignore[import-untyped]

    return badkeys, tuple(name for name in badkeys.allchecks if name != "blocklist")


def _check_weak(public_key: PublicKeyTypes) -> None:
    """Run badkeys' offline checks (Fermat, ROCA, shared primes, small factors, ...)."""
    badkeys, checks = _badkeys()
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    report: dict[str, Any] = badkeys.checkpubkey(pem.decode("ascii"), checks=checks)
    if "exception" in report:
        raise BadKey(
            f"key rejected: it cannot be checked for weaknesses ({report.get('errmsg', '')})",
            rule=_R_WEAK,
            value=spki_sha256(public_key),
        )
    results: dict[str, dict[str, Any]] = report.get("results", {})
    for check, finding in results.items():
        detail = badkeys.allchecks.get(check, {}).get("desc", check)
        subtest = finding.get("subtest") if isinstance(finding, dict) else None
        label = f"{check}/{subtest}" if subtest else check
        raise BadKey(
            f"key rejected: weak key found by badkeys check '{label}' ({detail})",
            rule=_R_WEAK,
            value=spki_sha256(public_key),
        )


def check_public_key(public_key: PublicKeyTypes, *, blocked_spki: Container[str] = frozenset()) -> KeyInfo:
    """Return what the key is, or raise :class:`BadKey` naming the rule it breaks.

    ``blocked_spki`` holds SPKI SHA-256 hashes (lower-case hex) of keys that must never be certified:
    reported compromised keys, the CA's own keys, ACME account keys (BR 6.1.1.3).
    """
    fingerprint = spki_sha256(public_key)
    if fingerprint in blocked_spki:
        raise BadKey("key is blocked (compromised)", rule=_R_WEAK, value=fingerprint)

    info: KeyInfo
    if isinstance(public_key, rsa.RSAPublicKey):
        size = public_key.key_size
        if size not in ALLOWED_RSA_SIZES:
            raise BadKey(
                f"RSA key of {size} bits is not allowed; use 2048, 3072 or 4096 bits",
                rule=_R_SIZE,
                value=size,
            )
        exponent = public_key.public_numbers().e
        if exponent != REQUIRED_RSA_EXPONENT:
            raise BadKey(
                f"RSA public exponent {exponent} is not allowed; it must be 65537",
                rule=_R_EXPONENT,
                value=exponent,
            )
        info = KeyInfo("RSA", size, None, fingerprint)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = ALLOWED_CURVES.get(type(public_key.curve))
        if curve is None:
            raise BadKey(
                f"elliptic curve {public_key.curve.name} is not allowed; use P-256 or P-384",
                rule=_R_SIZE,
                value=public_key.curve.name,
            )
        info = KeyInfo("EC", public_key.curve.key_size, curve, fingerprint)
    else:
        name = _algorithm_name(public_key)
        raise BadKey(
            f"{name} keys are not allowed; use RSA (2048, 3072 or 4096 bits) or ECDSA P-256/P-384",
            rule=_R_SIZE,
            value=name,
        )

    _check_weak(public_key)
    return info
