"""CSR intake: load what a subscriber pasted or uploaded, check it, and extract the names and key.

A CSR is only two things to this CA: proof of possession of a key, and a list of names the subscriber
wants. Everything else in it (subject fields, requested extensions, Microsoft attributes) is noted and
ignored; the certificate profile and the validated application decide the certificate's content.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from ecert.core.errors import BadCSR, BadKey, BadName, PolicyViolation
from ecert.core.keys import KeyInfo, check_public_key
from ecert.core.names import base_domain, is_wildcard, looks_like_ip_address, normalize_dns_name

__all__ = [
    "MAX_CSR_BYTES",
    "MAX_SANS",
    "CSRTooLarge",
    "CSRInfo",
    "load_csr",
    "check_csr",
    "compare_names",
    "missing_names",
]

# A real CSR is 1-4 KiB; cap the input before any parser sees it (hostile inputs, testing-recipes §5).
MAX_CSR_BYTES = 64 * 1024
# Boulder's limit on names per certificate; also keeps DCV work per application bounded.
MAX_SANS = 100

_R_PKCS10 = "RFC 2986"
_R_PEM = "RFC 7468"
_R_SAN = "BR 7.1.2.7.12"
_R_CN = "BR 7.1.2.7.12"  # CN, if present, must be one of the SAN dNSNames; never an IP here
_R_SAN_CAP = "ecert policy (at most 100 names, as Boulder)"

_CSR_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_KEY_LABELS = frozenset(
    {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"}
)
_BEGIN = re.compile(r"-----BEGIN ([^\r\n-]*)-----")
_END = re.compile(r"-----END ([^\r\n-]*)-----")
_WHITESPACE = re.compile(r"\s+")
# Characters a subscriber might type into CN when meaning a host name; anything else (spaces, "@", ...)
# means CN holds a label like "My Server", which is simply not used.
_HOSTLIKE = re.compile(r"[^\s@,;:/\\()\"'<>=]+\Z")

_SHORT_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.STREET_ADDRESS: "street",
    NameOID.POSTAL_CODE: "postalCode",
}
_ATTRIBUTE_NAMES: dict[str, str] = {
    "1.2.840.113549.1.9.7": "challengePassword",
    "1.2.840.113549.1.9.2": "unstructuredName",
    "1.3.6.1.4.1.311.13.2.3": "Microsoft OS version",
    "1.3.6.1.4.1.311.21.20": "Microsoft client information",
    "1.3.6.1.4.1.311.13.2.2": "Microsoft enrolment CSP",
    "1.3.6.1.4.1.311.13.2.1": "Microsoft enrolment name-value pair",
    "1.3.6.1.4.1.311.2.1.14": "Microsoft certificate extensions",
}
_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"  # PKCS#9 extensionRequest: read through csr.extensions


class CSRTooLarge(BadCSR):
    """The upload is over :data:`MAX_CSR_BYTES`; refused before parsing (HTTP 413 at the edge)."""

    code = "csr-too-large"
    status = 413


@dataclass(frozen=True)
class CSRInfo:
    """What intake learned from an accepted CSR.

    ``requested_subject`` is informational only: the CA never copies the subject from a CSR.
    ``ignored`` lists, in plain words, every part of the CSR that will not reach the certificate.
    """

    csr: x509.CertificateSigningRequest
    der: bytes
    key: KeyInfo
    public_key: CertificatePublicKeyTypes
    dns_names: tuple[str, ...]
    common_name: str | None
    requested_subject: Mapping[str, str]
    ignored: tuple[str, ...]


# --- loading -----------------------------------------------------------------------------------------


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        if len(data) > MAX_CSR_BYTES:
            raise CSRTooLarge(
                f"CSR too large ({len(data)} characters; the limit is {MAX_CSR_BYTES} bytes)",
                rule=_R_PKCS10,
                value=len(data),
            )
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadCSR("not a CSR: the text contains invalid characters", rule=_R_PEM) from exc
    return bytes(data)


def _pem_to_der(text: str) -> bytes:
    """Exactly one PEM block with a CSR label; surrounding text, CRLF and indentation are tolerated."""
    begins = list(_BEGIN.finditer(text))
    if len(begins) > 1:
        raise BadCSR(f"several PEM blocks found ({len(begins)}); paste exactly one CSR", rule=_R_PEM, value=len(begins))
    if not begins:
        raise BadCSR("not a CSR: no '-----BEGIN CERTIFICATE REQUEST-----' line", rule=_R_PEM)
    begin = begins[0]
    label = _WHITESPACE.sub(" ", begin.group(1).strip())
    if label in _CERT_LABELS:
        raise BadCSR(
            "this is a certificate, not a certificate request (CSR); paste the CSR your server made",
            rule=_R_PKCS10,
            value=label,
        )
    if label in _KEY_LABELS:
        raise BadCSR(
            "this is a private key, not a CSR; keep it secret and paste the CSR instead",
            rule=_R_PKCS10,
            value=label,
        )
    if label not in _CSR_LABELS:
        raise BadCSR(f"not a CSR: the PEM block is a '{label}'", rule=_R_PEM, value=label)
    end = _END.search(text, begin.end())
    if end is None:
        raise BadCSR("not a CSR: the PEM block is truncated (no END line)", rule=_R_PEM)
    if _WHITESPACE.sub(" ", end.group(1).strip()) != label:
        raise BadCSR(f"not a CSR: BEGIN {label} does not match END {end.group(1)}", rule=_R_PEM)
    body = _WHITESPACE.sub("", text[begin.end() : end.start()])
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadCSR("not a CSR: the PEM block is not valid base64 (truncated or altered?)", rule=_R_PEM) from exc


def _parse_der(der: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_der_x509_csr(der)
    except (ValueError, x509.InvalidVersion) as exc:
        try:
            x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion):
            raise BadCSR("not a CSR: the data is garbled or truncated", rule=_R_PKCS10) from exc
        raise BadCSR(
            "this is a certificate, not a certificate request (CSR); paste the CSR your server made",
            rule=_R_PKCS10,
        ) from exc


def _load(data: bytes | str) -> tuple[x509.CertificateSigningRequest, bytes]:
    raw = _as_bytes(data)
    if len(raw) > MAX_CSR_BYTES:
        raise CSRTooLarge(
            f"CSR too large ({len(raw)} bytes; the limit is {MAX_CSR_BYTES})", rule=_R_PKCS10, value=len(raw)
        )
    if not raw.strip():
        raise BadCSR("the CSR is empty; paste it including the BEGIN and END lines", rule=_R_PKCS10)
    if b"-----BEGIN" in raw:
        der = _pem_to_der(raw.decode("utf-8", errors="replace"))
    elif raw[:1] == b"\x30":
        der = raw
    else:
        raise BadCSR("not a CSR: expected a PEM block ('-----BEGIN CERTIFICATE REQUEST-----') or DER", rule=_R_PEM)
    csr = _parse_der(der)
    try:
        csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadKey(f"the CSR's public key is of an unsupported type or curve: {exc}", rule="BR 6.1.5") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadCSR(f"the CSR's signature cannot be checked: {exc}", rule=_R_PKCS10) from exc
    if not valid:
        raise BadCSR("the CSR's signature is invalid (altered after signing, or not signed by its key)", rule=_R_PKCS10)
    return csr, der


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a CSR (PEM or DER) and verify its self-signature, or raise :class:`BadCSR`.

    The size cap comes first, so no parser ever sees a hostile megabyte. Exchange/IIS "NEW CERTIFICATE
    REQUEST" headers, CRLF line ends and text around the block are accepted, as admins paste them.
    """
    return _load(data)[0]


# --- checking ----------------------------------------------------------------------------------------


def _short_name(attribute: x509.NameAttribute[str | bytes]) -> str:
    return _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def _oid_name(oid: ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _extension_note(ext: x509.Extension[x509.ExtensionType]) -> str:
    name = _oid_name(ext.oid)
    detail = ""
    value = ext.value
    if isinstance(value, x509.BasicConstraints):
        detail = " (CA:TRUE)" if value.ca else " (CA:FALSE)"
    elif isinstance(value, x509.ExtendedKeyUsage):
        detail = " (" + ", ".join(_oid_name(oid) for oid in value) + ")"
    return f"requested extension {name}{detail} ignored; the certificate profile decides"


def _subject(csr: x509.CertificateSigningRequest) -> tuple[list[str], dict[str, str], list[str]]:
    """Common names, the requested subject (for display) and a note for each ignored field."""
    common_names: list[str] = []
    requested: dict[str, str] = {}
    notes: list[str] = []
    try:
        attributes = list(csr.subject)
    except ValueError as exc:
        raise BadCSR(f"the CSR's subject cannot be parsed: {exc}", rule=_R_PKCS10) from exc
    for attribute in attributes:
        short = _short_name(attribute)
        value = _text(attribute.value)
        requested[short] = f"{requested[short]}; {value}" if short in requested else value
        if attribute.oid == NameOID.COMMON_NAME:
            common_names.append(value)
        elif attribute.oid == NameOID.ORGANIZATIONAL_UNIT_NAME:
            notes.append(f"OU '{value}' ignored (BR 7.1.2.7.4)")
        else:
            notes.append(f"{short} '{value}' ignored; the subject comes from the validated application")
    return common_names, requested, notes


def _attribute_notes(csr: x509.CertificateSigningRequest) -> list[str]:
    notes = []
    try:
        attributes = list(csr.attributes)
    except ValueError as exc:
        raise BadCSR(f"the CSR's attributes cannot be parsed: {exc}", rule=_R_PKCS10) from exc
    for attribute in attributes:
        dotted = attribute.oid.dotted_string
        if dotted == _EXTENSION_REQUEST:
            continue
        name = _ATTRIBUTE_NAMES.get(dotted, dotted)
        notes.append(f"attribute {name} ignored")
    return notes


def _san_names(csr: x509.CertificateSigningRequest) -> tuple[list[str], list[str]]:
    """The dNSName entries of the requested SAN, and notes for the other requested extensions."""
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise BadCSR(f"the CSR's requested extensions cannot be parsed: {exc}", rule=_R_PKCS10) from exc
    names: list[str] = []
    notes: list[str] = []
    for ext in extensions:
        if ext.oid != ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            notes.append(_extension_note(ext))
            continue
        general_names = list(ext.value) if isinstance(ext.value, x509.SubjectAlternativeName) else []
        if len(general_names) > MAX_SANS:
            raise BadCSR(
                f"too many names: {len(general_names)} in the CSR; the limit is {MAX_SANS}",
                rule=_R_SAN_CAP,
                value=len(general_names),
            )
        for general_name in general_names:
            if isinstance(general_name, x509.DNSName):
                names.append(general_name.value)
            elif isinstance(general_name, x509.RFC822Name):
                raise BadCSR(
                    f"e-mail address '{general_name.value}' in the SAN is not allowed in a server certificate",
                    rule=_R_SAN,
                    value=general_name.value,
                )
            elif isinstance(general_name, x509.UniformResourceIdentifier):
                raise BadCSR(
                    f"URI '{general_name.value}' in the SAN is not allowed; list domain names only",
                    rule=_R_SAN,
                    value=general_name.value,
                )
            elif isinstance(general_name, x509.IPAddress):
                raise BadCSR(
                    f"IP address {general_name.value} in the SAN is not allowed; this CA certifies domain names only",
                    rule=_R_SAN,
                    value=str(general_name.value),
                )
            else:
                kind = type(general_name).__name__
                raise BadCSR(
                    f"SAN entry of type {kind} is not allowed; list domain names only",
                    rule=_R_SAN,
                    value=kind,
                )
    return names, notes


def _normalize(name: str) -> str:
    try:
        return normalize_dns_name(name)
    except BadName as exc:
        raise BadName(f"a name in the CSR is refused: {exc.message}", rule=exc.rule, value=name) from exc


def _require_named_curve(csr: x509.CertificateSigningRequest, public_key: CertificatePublicKeyTypes) -> None:
    """Refuse an EC key given with explicit curve parameters (BR 6.1.5: named curves P-256/P-384 only).

    cryptography maps explicit parameters of a known curve to the named curve, so compare encodings: the
    named-curve SubjectPublicKeyInfo must appear verbatim in the request's to-be-signed bytes.
    """
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return
    named = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if named not in csr.tbs_certrequest_bytes:
        raise BadKey(
            "the EC key is given with explicit curve parameters; use the named curve P-256 or P-384",
            rule="BR 6.1.5 / RFC 5480 2.1.1",
        )


def check_csr(data: bytes | str, *, blocked_spki: Container[str] = frozenset()) -> CSRInfo:
    """Load, verify and check a CSR; return its key and normalised names, or raise (BadCSR/BadKey/BadName).

    Names come from the SAN dNSNames (normalised, duplicates dropped), then the CN if it names a host
    not already listed. Nothing else of the CSR reaches the certificate; ``ignored`` says what was left.
    """
    csr, der = _load(data)
    public_key = csr.public_key()
    key = check_public_key(public_key, blocked_spki=blocked_spki)
    _require_named_curve(csr, public_key)

    common_names, requested, subject_notes = _subject(csr)
    san_raw, extension_notes = _san_names(csr)
    notes = [*subject_notes, *extension_notes, *_attribute_notes(csr)]

    names: dict[str, None] = {}
    for raw in san_raw:
        names.setdefault(_normalize(raw), None)

    if len(common_names) > 1:
        raise BadCSR(
            f"the CSR has {len(common_names)} common names; use one (or none) and list names in the SAN",
            rule=_R_CN,
            value=common_names,
        )
    common_name = common_names[0] if common_names else None
    if common_name is not None:
        stripped = common_name.strip()
        if looks_like_ip_address(stripped):
            raise BadCSR(
                f"IP address '{stripped}' in the CN is not allowed; this CA certifies domain names only",
                rule=_R_CN,
                value=stripped,
            )
        if stripped and _HOSTLIKE.match(stripped):
            names.setdefault(_normalize(stripped), None)
        else:
            notes.append(f"CN '{common_name}' is not a domain name; ignored")

    if not names:
        raise BadCSR("the CSR names no domain: put the server's names in the Subject Alternative Name", rule=_R_SAN)
    if len(names) > MAX_SANS:
        raise BadCSR(
            f"too many names: {len(names)} in the CSR; the limit is {MAX_SANS}",
            rule=_R_SAN_CAP,
            value=len(names),
        )
    return CSRInfo(
        csr=csr,
        der=der,
        key=key,
        public_key=public_key,
        dns_names=tuple(names),
        common_name=common_name,
        requested_subject=MappingProxyType(requested),
        ignored=tuple(notes),
    )


# --- names against the application ------------------------------------------------------------------


def _allowed_set(allowed_names: Iterable[str]) -> set[str]:
    """The application's names plus the base of each wildcard (``*.example.com`` → ``example.com``)."""
    allowed: set[str] = set()
    for name in allowed_names:
        allowed.add(name)
        if is_wildcard(name):
            allowed.add(base_domain(name))
    return allowed


def compare_names(csr_names: Iterable[str], allowed_names: Collection[str]) -> None:
    """Raise :class:`PolicyViolation` listing the CSR's names that the application does not cover.

    Both sides must already be normalised. A name the application lists but the CSR omits is not an
    error here (see :func:`missing_names`): the certificate carries the application's validated names.
    """
    allowed = _allowed_set(allowed_names)
    extra = [name for name in csr_names if name not in allowed]
    if extra:
        listed = ", ".join(extra)
        raise PolicyViolation(
            f"the CSR names domains that are not in the application: {listed}",
            rule="BR 3.2.2.4 (only validated names)",
            value=tuple(extra),
        )


def missing_names(csr_names: Iterable[str], allowed_names: Iterable[str]) -> tuple[str, ...]:
    """The application's names that the CSR does not list, in application order (for a warning)."""
    present = set(csr_names)
    return tuple(name for name in allowed_names if name not in present)
