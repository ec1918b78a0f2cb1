"""revokeCert over ACME (RFC 8555 7.6): by an account of the certificate's application, or by its own key.

The decision and the publication are the existing revocation service's (services/revocation.py): the
certificate's CRL and OCSP change before the answer, and keyCompromise blocks the key. This module only
finds the certificate, checks who asks, and turns the service's answers into ACME problems.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ..core.acme_revocation import revocation_reason
from ..core.acme_rules import AcmeRefusal, ProblemType
from ..core.errors import Conflict
from ..store import acme_limits as store
from . import revocation
from .context import Context
from .refusals import record_refusal

__all__ = ["RevokeRequest", "revoke"]


@dataclass(frozen=True)
class RevokeRequest:
    """A verified revokeCert: the certificate's DER, the reason code, and who signed (an account or the key)."""

    certificate_der: bytes
    reason_code: object
    account_id: int | None  # signed with kid
    account_application_id: int | None
    signer_spki_sha256: str | None  # signed with a jwk: that key's SPKI hash
    client: str

    @property
    def actor(self) -> str:
        return f"acme:account:{self.account_id}" if self.account_id is not None else f"acme:key-holder:{self.client}"


def _issuer_key_and_serial(der: bytes) -> tuple[str, str]:
    """(AKI keyIdentifier hex, serial hex) of the certificate in the request: how the store finds it by index."""
    try:
        cert = x509.load_der_x509_certificate(der)
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (ValueError, x509.ExtensionNotFound):
        aki = None
    if aki is None:
        raise AcmeRefusal(
            ProblemType.MALFORMED, "certificate is not a DER certificate with an AKI keyIdentifier", rule="RFC 8555 7.6"
        )
    return aki.hex(), format(cert.serial_number, "x")


def _target(ctx: Context, der: bytes) -> tuple[str, str, int | None, str]:
    """(CA label, serial, application id, SPKI hash) of the issued certificate with exactly these bytes."""
    ski_hex, serial_hex = _issuer_key_and_serial(der)
    with ctx.read() as session:
        found = store.certificate_by_issuer_key(session, ski_hex, serial_hex)
        if found is None or found[0].der != der:
            raise AcmeRefusal(
                ProblemType.MALFORMED, "this CA issued no such certificate", status=404, rule="RFC 8555 7.6"
            )
        cert, ca = found
        return ca.label, cert.serial_hex, cert.application_id, cert.spki_sha256


def _check_authority(request: RevokeRequest, application_id: int | None, spki: str, serial: str) -> None:
    """RFC 8555 7.6: the account that holds the certificate (its application's), or the certificate's key."""
    if request.account_id is not None:
        if application_id is None or application_id != request.account_application_id:
            raise AcmeRefusal(
                ProblemType.UNAUTHORIZED,
                "this account does not hold the certificate (it belongs to another application)",
                status=403,
                rule="RFC 8555 7.6",
                value=serial,
            )
    elif request.signer_spki_sha256 != spki:
        raise AcmeRefusal(
            ProblemType.UNAUTHORIZED,
            "the request is signed neither by an account nor by the certificate's key",
            status=403,
            rule="RFC 8555 7.6",
            value=serial,
        )


def _revoke(ctx: Context, request: RevokeRequest) -> revocation.Revocation:
    reason = revocation_reason(request.reason_code)
    if request.account_id is None:
        # Signed by the certificate's key: whoever holds it outside the subscriber's control has compromised it,
        # so the reason is keyCompromise and the key is blocked (BR 4.9.1.1 item 3, as revoke_by_key_proof does).
        reason = "keyCompromise"
    label, serial, application_id, spki = _target(ctx, request.certificate_der)
    _check_authority(request, application_id, spki, serial)
    try:
        return revocation.revoke_certificate(ctx, ca_label=label, serial_hex=serial, reason=reason, actor=request.actor)
    except Conflict:
        raise AcmeRefusal(
            ProblemType.ALREADY_REVOKED, "the certificate is already revoked", rule="RFC 8555 7.6", value=serial
        ) from None


def revoke(ctx: Context, request: RevokeRequest) -> revocation.Revocation:
    """Revoke, or refuse with an ACME problem; the refusal is audited (the revocation is, by the service)."""
    try:
        return _revoke(ctx, request)
    except AcmeRefusal as refusal:
        record_refusal(
            ctx,
            event="acme.revocation.refused",
            actor=request.actor,
            subject=str(refusal.value) if refusal.value is not None else None,
            details={"problem": refusal.problem.value, "why": str(refusal)[:300]},
        )
        refusal.audited = True  # the edge does not log it again
        raise
