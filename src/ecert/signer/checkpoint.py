"""The audit checkpoint key: a P-256 key of this instance, kept by the CA's key backend, signing chain heads.

It is not a CA key (a CA key signs only certificates, CRLs and OCSP responses), so it has no certificate;
it lives where the CA keys live (an encrypted file under ``keys/`` or the HSM token), so taking it costs
an attacker what taking a CA key costs. P-256 rather than Ed25519: both key backends make P-256 keys, the
token included, and the signature is verified with the public half alone.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..core.errors import KeyBackendError
from .keystore import KeyBackend, KeySpec

__all__ = ["CHECKPOINT_KEY_LABEL", "CHECKPOINT_KEY_SPEC", "key_id", "public_pem", "sign", "verify"]

CHECKPOINT_KEY_LABEL = "audit-checkpoint"
CHECKPOINT_KEY_SPEC = KeySpec("EC", curve="P-256")
_ALGORITHM = ec.ECDSA(hashes.SHA256())


def _spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_pem: bytes) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo: what each checkpoint names and the operator compares."""
    return hashlib.sha256(_spki(_load_public(public_pem))).hexdigest()


def public_pem(keys: KeyBackend, key_ref: str) -> bytes:
    """The public half of the checkpoint key, PEM, to keep beside the checkpoints for verification."""
    public = keys.public_key(key_ref)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise KeyBackendError("the audit checkpoint key is not an EC key", value=key_ref)
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(keys: KeyBackend, key_ref: str, payload: bytes) -> bytes:
    """Sign ``payload`` (a checkpoint's canonical bytes) with the checkpoint key."""
    key = keys.load_key(key_ref)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyBackendError("the audit checkpoint key is not an EC key", value=key_ref)
    return key.sign(payload, _ALGORITHM)


def verify(public_key_pem: bytes, payload: bytes, signature: bytes) -> None:
    """Return if ``signature`` over ``payload`` is good; raise InvalidSignature otherwise (style habit 2)."""
    _load_public(public_key_pem).verify(signature, payload, _ALGORITHM)


def _load_public(pem: bytes) -> ec.EllipticCurvePublicKey:
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InvalidSignature("the checkpoint public key is not an EC key")
    return public
