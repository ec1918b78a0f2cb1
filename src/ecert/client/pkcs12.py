"""PFX (PKCS#12) backup and restore: sections F and G of the user guide, with the checks Windows skips.

Export defaults to AES-256-CBC with PBKDF2-SHA256 and an HMAC-SHA256 MAC, which Windows Server 2019+
and OpenSSL 3 read; ``legacy`` gives 3DES with a SHA-1 MAC, the only kind Windows Server 2012-2016
(Exchange 2010/2013/2016 hosts) import — they report an AES file as "password incorrect".
Import refuses, before anything is written: a file without a MAC, an absurd MAC iteration count
(checked before any key derivation runs), a wrong password, and a key that does not match the
certificate.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.error import PyAsn1Error
from pyasn1_alt_modules import rfc7292

from ecert.client.errors import ClientError
from ecert.client.store import spki_bytes

__all__ = ["MAX_MAC_ITERATIONS", "Restored", "export_pfx", "import_pfx", "mac_iterations"]

MAX_PFX_BYTES = 1 << 20
# OpenSSL and Windows use 2,048-600,000 rounds; ten million already costs seconds per guess, and an
# attacker-made file with 2^31 rounds would hang the tool for hours before saying "wrong password".
MAX_MAC_ITERATIONS = 10_000_000
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
        raise ClientError(
            "the PFX has trailing bytes after its end; refusing a file that may have been altered"
        )
    mac = pfx["macData"]
    if not mac.isValue:
        return None
    return int(mac["iterations"])


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
        key,
        cert,
        chain or None,
        builder.build(password),  # type: ignore[arg-type]
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
        key=loaded.key,  # type: ignore[arg-type]
        cert=cert,
        chain=tuple(c.certificate for c in candidates if c is not main),
        friendly_name=name.decode("utf-8", "replace") if name else None,
    )
