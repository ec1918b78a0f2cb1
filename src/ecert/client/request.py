"""Making a new request: the key pair, the CSR and a summary of what the CA will and will not take.

This is section B of the user guide (Exchange's "New Exchange Certificate" wizard) as one function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from ecert.client.choices import DEFAULT_KEY_TYPE, KeyType
from ecert.client.errors import ClientError
from ecert.core.errors import BadName
from ecert.core.names import normalize_dns_name, to_unicode

__all__ = [
    "DEFAULT_KEY_TYPE",
    "KeyType",
    "NewRequest",
    "RequestSpec",
    "build_request",
    "expand_names",
    "generate_key",
]


def generate_key(key_type: KeyType) -> PrivateKeyTypes:
    """A fresh key pair of the chosen type (e = 65537, BR 6.1.6)."""
    if key_type is KeyType.P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.P384:
        return ec.generate_private_key(ec.SECP384R1())
    bits = {KeyType.RSA2048: 2048, KeyType.RSA3072: 3072, KeyType.RSA4096: 4096}[key_type]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@dataclass(frozen=True)
class RequestSpec:
    """What the subscriber asked for, before any name is normalised."""

    friendly_name: str
    names: tuple[str, ...] = ()
    wildcard: str | None = None
    common_name: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None
    country: str = "HK"
    state: str = "Hong Kong"
    locality: str = "Hong Kong"
    key_type: KeyType = DEFAULT_KEY_TYPE


@dataclass(frozen=True)
class NewRequest:
    """The result: CSR and key in PEM, the names in A-label and Unicode form, and notes for the user."""

    csr_pem: bytes
    key_pem: bytes
    key_encrypted: bool
    names: tuple[str, ...]
    unicode_names: tuple[str, ...]
    common_name: str
    notes: tuple[str, ...] = field(default=())

    def meta(self, spec: RequestSpec, now: datetime) -> dict[str, object]:
        """What meta.json keeps about the request (never the passphrase)."""
        return {
            "friendly_name": spec.friendly_name,
            "names": list(self.names),
            "unicode_names": list(self.unicode_names),
            "common_name": self.common_name,
            "key_type": spec.key_type.value,
            "key_encrypted": self.key_encrypted,
            "organization": spec.organization,
            "created": now.isoformat(),
        }


def expand_names(spec: RequestSpec) -> tuple[tuple[str, ...], str]:
    """Normalise the names (A-labels) and pick the common name.

    ``--wildcard example.com`` (or ``*.example.com``) gives ``*.example.com`` and ``example.com``, as the
    guide's "Enable wildcard certificate" does. The common name must be one of the names, because the CA
    copies it from the SAN (BR 7.1.2.7.2).
    """
    raw: list[str] = []
    if spec.wildcard:
        base = spec.wildcard[2:] if spec.wildcard.startswith("*.") else spec.wildcard
        raw += [f"*.{base}", base]
    raw += list(spec.names)
    if not raw:
        raise ClientError("give at least one --name, or --wildcard DOMAIN")
    seen: dict[str, None] = {}
    for name in raw:
        seen.setdefault(normalize_dns_name(name), None)
    names = tuple(seen)
    if spec.common_name:
        cn = normalize_dns_name(spec.common_name)
        if cn not in names:
            raise BadName(
                f"the common name {spec.common_name!r} is not one of the names requested",
                rule="BR 7.1.2.7.2",
                value=spec.common_name,
            )
    else:
        cn = names[0]
    return names, cn


def build_request(spec: RequestSpec, passphrase: bytes | None, *, key: PrivateKeyTypes | None = None) -> NewRequest:
    """Generate the key and the CSR; the key is PKCS#8, encrypted with ``passphrase`` when one is given."""
    names, cn = expand_names(spec)
    if len(spec.country) != 2 or not spec.country.isalpha():
        raise ClientError(
            "the country must be a two-letter ISO 3166 code, e.g. HK", rule="BR 7.1.4.2.2", value=spec.country
        )
    key = key or generate_key(spec.key_type)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, spec.country.upper())]
    if spec.state:
        attrs.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, spec.state))
    if spec.locality:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, spec.locality))
    if spec.organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization))
    if spec.organizational_unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, spec.organizational_unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    notes = [
        "The CA takes the names in the SAN; they must be exactly the server names on your application.",
        "The CA sets O, C, ST and L from your application, not from this CSR.",
    ]
    if spec.organizational_unit:
        notes.append("The CA ignores OU: certificates carry no organizationalUnitName (BR 7.1.2.7.4).")
    if any(n.startswith("*.") for n in names):
        notes.append("Wildcard names can be validated by DNS or e-mail, not by the website-file method.")
    unicode_names = tuple(to_unicode(n) for n in names)
    return NewRequest(
        csr_pem=csr.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem,
        key_encrypted=passphrase is not None,
        names=names,
        unicode_names=unicode_names,
        common_name=cn,
        notes=tuple(notes),
    )
