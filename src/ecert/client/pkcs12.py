"""PFX (PKCS#12) backup and restore: sections F and G of the user guide, with the checks Windows skips.

Export defaults to AES-256-CBC with PBKDF2-SHA256 and an HMAC-SHA256 MAC, which Windows Server 2019+
and OpenSSL 3 read; ``legacy`` gives 3DES with a SHA-1 MAC, the only kind Windows Server 2012-2016
(Exchange 2010/2013/2016 hosts) import — they report an AES file as "password incorrect".
Import refuses, before anything is written: a file without a MAC, an absurd iteration count for the
MAC or for any password-based encryption visible before decryption (the encrypted certificate safe and
each shrouded key bag; checked before any key derivation runs), a wrong password, and a key that does
not match the certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_alt_modules import rfc5652, rfc7292, rfc8018

from ecert.client.errors import ClientError
from ecert.client.store import spki_bytes

__all__ = [
    "MAX_MAC_ITERATIONS",
    "MAX_KDF_ITERATIONS",
    "Restored",
    "export_pfx",
    "import_pfx",
    "kdf_iterations",
    "mac_iterations",
]

MAX_PFX_BYTES = 1 << 20
# OpenSSL and Windows use 2,048-600,000 rounds; ten million already costs seconds per guess, and an
# attacker-made file with 2^31 rounds would hang the tool for hours before saying "wrong password".
MAX_MAC_ITERATIONS = 10_000_000
# The same ceiling for the key-encryption KDFs (PBKDF2 in PBES2, the PKCS#12 KDF in PBES1): each is paid
# once per encrypted part, before pyca can tell a wrong password from a right one.
MAX_KDF_ITERATIONS = MAX_MAC_ITERATIONS
EXPORT_ROUNDS = 200_000  # PBKDF2-HMAC-SHA256 rounds: 100x OpenSSL's default of 2,048, ~0.1 s here


def mac_iterations(data: bytes) -> int | None:
    """The PFX's MacData iteration count, or ``None`` when it has no MAC (RFC 7292 section 4).

    Read with pyasn1 before pyca derives any key, so the cap applies before the cost is paid.
    """
    try:
        pfx, rest = der_decoder.decode(data, asn1Spec=rfc7292.PFX())
    except (PyAsn1Error, ValueError) as exc:
        raise ClientError("the file is not a PKCS#12 (.pfx/.p12) file, or it is truncated") from exc
    if rest:
        raise ClientError("the PFX has trailing bytes after its end; refusing a file that may have been altered")
    mac = pfx["macData"]
    if not mac.isValue:
        return None
    return int(mac["iterations"])


_PKCS5_PBES1 = univ.ObjectIdentifier("1.2.840.113549.1.5")  # pbeWithMD5AndDES-CBC and kin (RFC 8018 A.3)


def _algorithm_iterations(alg: object) -> int | None:
    """The iteration count of one password-based encryption AlgorithmIdentifier, if it has one.

    PBES2 (RFC 8018 A.4) keeps it in the PBKDF2 parameters; PKCS#12 PBE (RFC 7292 Appendix C) and
    PKCS#5 PBES1 (RFC 8018 A.3) in their own parameter SEQUENCE.
    """
    oid = alg["algorithm"]  # type: ignore[index]
    params = alg["parameters"]  # type: ignore[index]
    if not params.isValue:
        return None
    raw = bytes(params)
    if oid == rfc8018.id_PBES2:
        pbes2, _ = der_decoder.decode(raw, asn1Spec=rfc8018.PBES2_params())
        kdf = pbes2["keyDerivationFunc"]
        if kdf["algorithm"] != rfc8018.id_PBKDF2:
            raise ClientError(f"the PFX uses an unknown key derivation ({kdf['algorithm']}); refusing it")
        pbkdf2, _ = der_decoder.decode(bytes(kdf["parameters"]), asn1Spec=rfc8018.PBKDF2_params())
        return int(pbkdf2["iterationCount"])
    if rfc7292.pkcs_12PbeIds.isPrefixOf(oid):
        pbe, _ = der_decoder.decode(raw, asn1Spec=rfc7292.Pkcs_12PbeParams())
        return int(pbe["iterations"])
    if _PKCS5_PBES1.isPrefixOf(oid):
        pbe1, _ = der_decoder.decode(raw, asn1Spec=rfc8018.PBEParameter())
        return int(pbe1["iterationCount"])
    return None


def _safe_contents_iterations(raw: bytes, depth: int = 0) -> list[int]:
    """Iteration counts of the shrouded key bags in one SafeContents (nested safeContentsBags too)."""
    if depth > 4:
        raise ClientError("the PFX nests its bags too deeply; refusing it")
    bags, _ = der_decoder.decode(raw, asn1Spec=rfc7292.SafeContents())
    counts: list[int] = []
    for bag in bags:
        bag_id = bag["bagId"]
        value = bytes(bag["bagValue"])
        if bag_id == rfc7292.id_pkcs8ShroudedKeyBag:
            epki, _ = der_decoder.decode(value, asn1Spec=rfc7292.EncryptedPrivateKeyInfo())
            n = _algorithm_iterations(epki["encryptionAlgorithm"])
            if n is not None:
                counts.append(n)
        elif bag_id == rfc7292.id_safeContentsBag:
            counts += _safe_contents_iterations(value, depth + 1)
    return counts


def kdf_iterations(data: bytes) -> list[int]:
    """Every key-derivation iteration count readable before decryption (RFC 7292 section 4.1).

    That is the encryptedData safes (usually the certificates) and the shrouded key bags in plain
    safes (usually the key). A key bag nested inside an encrypted safe is only readable after pyca
    has decrypted that safe, whose own count is checked here first.
    """
    try:
        pfx, _ = der_decoder.decode(data, asn1Spec=rfc7292.PFX())
        auth_safe = pfx["authSafe"]
        if auth_safe["contentType"] != rfc5652.id_data:
            raise ClientError("the PFX is signed with a public key (RFC 7292 4.1), which ecert does not read")
        octets, _ = der_decoder.decode(bytes(auth_safe["content"]), asn1Spec=univ.OctetString())
        safes, _ = der_decoder.decode(bytes(octets), asn1Spec=rfc7292.AuthenticatedSafe())
        counts: list[int] = []
        for info in safes:
            kind, content = info["contentType"], bytes(info["content"])
            if kind == rfc5652.id_data:
                inner, _ = der_decoder.decode(content, asn1Spec=univ.OctetString())
                counts += _safe_contents_iterations(bytes(inner))
            elif kind == rfc5652.id_encryptedData:
                enc, _ = der_decoder.decode(content, asn1Spec=rfc5652.EncryptedData())
                n = _algorithm_iterations(enc["encryptedContentInfo"]["contentEncryptionAlgorithm"])
                if n is not None:
                    counts.append(n)
            else:
                raise ClientError(f"the PFX holds a part of unknown type ({kind}); refusing it")
    except (PyAsn1Error, ValueError, TypeError, KeyError) as exc:
        raise ClientError("the PFX's contents are malformed; it may be truncated or altered") from exc
    return counts


def export_pfx(
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    password: bytes,
    *,
    friendly_name: str,
    legacy: bool = False,
) -> bytes:
    """Serialise key, certificate and chain into a password-protected PFX (see module docstring)."""
    if not password:
        raise ClientError("a PFX backup needs a password; it protects the private key")
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        builder = (
            builder.kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())
        )
    else:
        builder = (
            builder.kdf_rounds(EXPORT_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
        )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode(),
        cast(pkcs12.PKCS12PrivateKeyTypes, key),  # pyca raises TypeError for a key type PKCS#12 cannot hold
        cert,
        chain or None,
        builder.build(password),
    )


@dataclass(frozen=True)
class Restored:
    """The contents of a PFX that passed every check."""

    key: PrivateKeyTypes
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    friendly_name: str | None


def import_pfx(data: bytes, password: bytes) -> Restored:
    """Open a PFX, refusing anything unsafe or inconsistent with one sentence (nothing is written here)."""
    if len(data) > MAX_PFX_BYTES:
        raise ClientError(f"the PFX is {len(data)} bytes; a backup of one certificate is a few KiB")
    iterations = mac_iterations(data)
    if iterations is None:
        raise ClientError(
            "the PFX has no integrity MAC, so a changed file could not be detected; refusing it",
            rule="RFC 7292 4",
        )
    if iterations > MAX_MAC_ITERATIONS or iterations < 1:
        raise ClientError(
            f"the PFX asks for {iterations:,} MAC iterations (limit {MAX_MAC_ITERATIONS:,}); refusing it "
            "rather than spend hours deriving keys",
            value=iterations,
        )
    for rounds in kdf_iterations(data):
        if rounds > MAX_KDF_ITERATIONS or rounds < 1:
            raise ClientError(
                f"the PFX asks for {rounds:,} key-derivation iterations (limit {MAX_KDF_ITERATIONS:,}); "
                "refusing it rather than spend hours deriving keys",
                rule="RFC 8018 5.2",
                value=rounds,
            )
    try:
        loaded = pkcs12.load_pkcs12(data, password)
    except ValueError as exc:
        raise ClientError("wrong password for the PFX (its integrity check did not match)") from exc
    if loaded.key is None:
        raise ClientError("the PFX holds no private key; a backup must hold the key and its certificate")
    key_id = spki_bytes(loaded.key.public_key())
    # The certificate pyca pairs with the key, else any certificate in the file for that key.
    candidates = ([loaded.cert] if loaded.cert is not None else []) + list(loaded.additional_certs)
    if not candidates:
        raise ClientError("the PFX holds no certificate; a backup must hold the key and its certificate")
    main = next((c for c in candidates if spki_bytes(c.certificate.public_key()) == key_id), None)
    if main is None:
        raise ClientError("the private key in the PFX does not match its certificate; refusing it")
    cert = main.certificate
    name = main.friendly_name
    return Restored(
        key=loaded.key,
        cert=cert,
        chain=tuple(c.certificate for c in candidates if c is not main),
        friendly_name=name.decode("utf-8", "replace") if name else None,
    )
