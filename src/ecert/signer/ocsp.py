"""OCSP signing: pre-signed responses (RFC 6960, RFC 5019 profile) and delegated responder certificates.

Responses are signed ahead of time by a short-lived responder certificate that the issuing CA
delegates OCSP signing to, so the CA key signs only that certificate and answering a request
costs no signature. Nothing here reads the clock or touches a socket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecert.core.errors import PolicyViolation
from ecert.signer.crl import authority_key_identifier, check_reason, check_window, signature_hash
from ecert.signer.hierarchy import new_serial

__all__ = [
    "OCSP_MIN_VALIDITY",
    "OCSP_MAX_VALIDITY",
    "RESPONDER_MAX_DAYS",
    "CertStatus",
    "issuer_hashes",
    "build_ocsp_response",
    "build_ocsp_error",
    "build_responder_certificate",
]

CertStatus = Literal["good", "revoked", "unknown"]

# BR 4.9.10: an OCSP response is valid for at least eight hours and at most ten days.
OCSP_MIN_VALIDITY = timedelta(hours=8)
OCSP_MAX_VALIDITY = timedelta(days=10)
# RFC 6960 4.2.2.2.1: a responder certificate with id-pkix-ocsp-nocheck cannot itself be revoked
# in practice, so it is kept short-lived; we refuse anything longer than a month.
RESPONDER_MAX_DAYS = 30

_STATUSES: dict[str, ocsp.OCSPCertStatus] = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}
_ERRORS: dict[str, ocsp.OCSPResponseStatus] = {
    "malformedRequest": ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
    "internalError": ocsp.OCSPResponseStatus.INTERNAL_ERROR,
    "tryLater": ocsp.OCSPResponseStatus.TRY_LATER,
    "sigRequired": ocsp.OCSPResponseStatus.SIG_REQUIRED,
    "unauthorized": ocsp.OCSPResponseStatus.UNAUTHORIZED,
}


def _subject_public_key_bits(public_key: object) -> bytes:
    """The contents of the subjectPublicKey BIT STRING, the input to issuerKeyHash (RFC 6960 4.1.1)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raise PolicyViolation("the issuer key must be RSA or ECDSA", rule="BR 6.1.5", value=type(public_key).__name__)


def issuer_hashes(issuer_cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CertID for this issuer (RFC 6960 4.1.1).

    With these and a serial the responder can answer without the leaf certificate, and the web
    layer can compute the same pair to index stored responses.
    """

    def digest(data: bytes) -> bytes:
        h = hashes.Hash(algorithm)
        h.update(data)
        return h.finalize()

    return digest(issuer_cert.subject.public_bytes()), digest(_subject_public_key_bits(issuer_cert.public_key()))


def _check_responder(issuer_cert: x509.Certificate, responder_cert: x509.Certificate, at: datetime) -> None:
    """The responder is the CA itself or a certificate it delegated OCSP signing to (RFC 6960 4.2.2.2)."""
    if responder_cert == issuer_cert:
        return
    if responder_cert.issuer != issuer_cert.subject:
        raise PolicyViolation(
            "the OCSP responder certificate was not issued by this CA",
            rule="RFC 6960 4.2.2.2",
            value=responder_cert.issuer.rfc4514_string(),
        )
    try:
        eku = responder_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise PolicyViolation("the OCSP responder certificate lacks the OCSPSigning EKU", rule="RFC 6960 4.2.2.2")
    if not responder_cert.not_valid_before_utc <= at <= responder_cert.not_valid_after_utc:
        raise PolicyViolation(
            "the OCSP responder certificate is not valid at thisUpdate", rule="RFC 6960 4.2.2.2", value=at
        )


def build_ocsp_response(
    *,
    issuer_cert: x509.Certificate,
    responder_cert: x509.Certificate,
    responder_key: object,
    cert_serial: int,
    status: CertStatus,
    revoked_at: datetime | None = None,
    reason: x509.ReasonFlags | None = None,
    this_update: datetime,
    next_update: datetime,
    request_hash: hashes.HashAlgorithm | None = None,
    now: datetime | None = None,
) -> bytes:
    """Sign one pre-computed OCSP response for ``cert_serial`` and return its DER.

    RFC 5019 profile: a basic response naming the responder by key hash, with the responder
    certificate included, no nonce (the response is signed before any request arrives) and a
    CertID made from the issuer's name and key hashes (SHA-1 unless ``request_hash`` says
    otherwise), so the leaf certificate is not needed. Whether a serial was issued is the
    service's decision; it must ask for "unknown", never "good", for one that was not.
    """
    # BR 4.9.10: at least eight hours, at most ten days; RFC 6960 2.4: thisUpdate not in the future.
    check_window(
        this_update,
        next_update,
        shortest=OCSP_MIN_VALIDITY,
        longest=OCSP_MAX_VALIDITY,
        rule="BR 4.9.10",
        now=now,
    )
    cert_status = _STATUSES.get(status)
    if cert_status is None:
        raise PolicyViolation("the OCSP status must be good, revoked or unknown", rule="RFC 6960 2.2", value=status)
    if cert_status is ocsp.OCSPCertStatus.REVOKED:
        if revoked_at is None or revoked_at.tzinfo is None:
            raise PolicyViolation(
                "a revoked response needs an aware revocation time", rule="RFC 6960 2.2", value=revoked_at
            )
        check_reason(reason, for_ca=False)
        if revoked_at > this_update:
            raise PolicyViolation("the revocation time is after thisUpdate", rule="RFC 6960 2.2", value=revoked_at)
    elif revoked_at is not None or reason is not None:
        raise PolicyViolation(
            f"a {status} response carries no revocation time or reason", rule="RFC 6960 2.2", value=status
        )
    if not 0 < cert_serial < (1 << 159):
        raise PolicyViolation(
            "the serial must be positive and at most 159 bits", rule="RFC 5280 4.1.2.2", value=cert_serial
        )
    _check_responder(issuer_cert, responder_cert, this_update)
    if responder_key.public_key() != responder_cert.public_key():  # type: ignore[attr-defined]
        raise PolicyViolation("the responder key does not match the responder certificate", rule="RFC 6960 4.2.2.2")

    algorithm = request_hash if request_hash is not None else hashes.SHA1()  # RFC 5019 2.1.1
    name_hash, key_hash = issuer_hashes(issuer_cert, algorithm)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=name_hash,
        issuer_key_hash=key_hash,
        serial_number=cert_serial,
        algorithm=algorithm,
        cert_status=cert_status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)  # RFC 5019 2.2.3
    if responder_cert != issuer_cert:
        builder = builder.certificates([responder_cert])  # RFC 6960 4.2.1: lets the client find the signer
    response = builder.sign(responder_key, signature_hash(responder_cert.public_key()))  # type: ignore[arg-type]
    return response.public_bytes(Encoding.DER)


def build_ocsp_error(status: str | ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned OCSP error response (RFC 6960 4.2.1): malformedRequest, unauthorized, internalError..."""
    code: ocsp.OCSPResponseStatus | None
    if isinstance(status, ocsp.OCSPResponseStatus):
        code = status if status is not ocsp.OCSPResponseStatus.SUCCESSFUL else None
    else:
        code = _ERRORS.get(status)
    if code is None:
        raise PolicyViolation("an OCSP error response needs an error status", rule="RFC 6960 4.2.1", value=status)
    return ocsp.OCSPResponseBuilder.build_unsuccessful(code).public_bytes(Encoding.DER)


def build_responder_certificate(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: object,
    responder_public_key: object,
    subject_cn: str,
    not_before: datetime,
    validity_days: int = 4,
) -> x509.Certificate:
    """Issue a delegated OCSP responder certificate for ``issuer_cert`` (BR 7.1.2.8, RFC 6960 4.2.2.2).

    EKU OCSPSigning only, id-pkix-ocsp-nocheck so clients need not check its own status, KU
    digitalSignature, not a CA, AKI/SKI; subject O and C copied from the issuer with the given
    CN. It lives only a few days and is renewed by the scheduler, which is what makes nocheck safe.
    """
    if not_before.tzinfo is None:
        raise PolicyViolation("notBefore must be an aware datetime", rule="RFC 5280 4.1.2.5", value=not_before)
    if not 1 <= validity_days <= RESPONDER_MAX_DAYS:
        raise PolicyViolation(
            f"a responder certificate lives 1 to {RESPONDER_MAX_DAYS} days",
            rule="RFC 6960 4.2.2.2.1",
            value=validity_days,
        )
    signature_hash(responder_public_key)  # RFC 5280 / BR 6.1.5: RSA, P-256 or P-384 only
    if not subject_cn or len(subject_cn) > 64:
        raise PolicyViolation("the responder CN must be 1 to 64 characters", rule="RFC 5280 A.1", value=subject_cn)

    attributes: list[x509.NameAttribute[str | bytes]] = []
    for oid in (NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME):
        attributes.extend(issuer_cert.subject.get_attributes_for_oid(oid))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject_cn))

    issuer_public = issuer_cert.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(issuer_cert.subject)
        .public_key(responder_public_key)  # type: ignore[arg-type]
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=validity_days) - timedelta(seconds=1))
        .add_extension(authority_key_identifier(issuer_cert), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(responder_public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.OCSPNoCheck(), critical=False)  # RFC 6960 4.2.2.2.1
    )
    cert = builder.sign(issuer_key, signature_hash(issuer_public))  # type: ignore[arg-type]
    try:
        cert.verify_directly_issued_by(issuer_cert)  # the wrong CA key would give a useless responder
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise PolicyViolation("the signing key does not match the issuer certificate", rule="RFC 5280 4.1.1.3") from exc
    return cert
