"""Certificate downloads in the formats servers take, the public search, and the CA certificate links.

Downloads are keyed by application id or serial number, never by a path, so no input can reach a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import select

from ..core import urls
from ..core.errors import NotFound, PolicyViolation
from ..core.names import to_unicode
from ..store import repo
from ..store.models import CA, Application, Certificate
from .context import Context

__all__ = ["FORMATS", "Download", "SearchHit", "CaLink", "download", "public_download", "search_certificates",
           "ca_links", "render"]

Format = Literal["pem", "der", "p7b", "fullchain"]
# What each format is and how browsers should save it (Exchange's "Complete Pending Request" takes .cer/.p7b).
FORMATS: dict[str, tuple[str, str]] = {
    "pem": ("application/x-pem-file", "pem"),
    "der": ("application/pkix-cert", "cer"),
    "p7b": ("application/x-pkcs7-certificates", "p7b"),
    "fullchain": ("application/x-pem-file", "fullchain.pem"),
}
_MAX_QUERY = 253
_SERIAL = re.compile(r"[0-9a-fA-F:\s]{1,100}\Z")


@dataclass(frozen=True)
class Download:
    data: bytes
    media_type: str
    filename: str


@dataclass(frozen=True)
class SearchHit:
    """One published (accepted) certificate as the search page lists it."""

    serial_hex: str
    serial_spaced: str
    common_name: str | None
    names: tuple[str, ...]
    names_unicode: tuple[str, ...]
    organization: str | None
    issuer_cn: str
    not_before: datetime
    not_after: datetime
    status: str  # valid | expired | revoked


@dataclass(frozen=True)
class CaLink:
    label: str
    role: str
    common_name: str
    effective_from: datetime | None
    not_after: datetime
    status: str
    crt_url: str
    pem_url: str
    crl_url: str | None


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _safe_stem(cert: Certificate) -> str:
    stem = (cert.subject_cn or "certificate").replace("*", "wildcard")
    return re.sub(r"[^A-Za-z0-9.-]", "_", stem)[:80] or "certificate"


def render(cert: Certificate, issuer: CA, fmt: str) -> Download:
    """The certificate in ``fmt``; p7b (DER PKCS#7, RFC 2315 certs-only) and fullchain add the issuing CA."""
    if fmt not in FORMATS:
        raise NotFound("no such download format", value=str(fmt)[:20])
    if cert.der is None:
        raise NotFound("the certificate is not signed yet")
    leaf = x509.load_der_x509_certificate(cert.der)
    ca = x509.load_der_x509_certificate(issuer.cert_der)
    media_type, ext = FORMATS[fmt]
    if fmt == "pem":
        data = leaf.public_bytes(serialization.Encoding.PEM)
    elif fmt == "der":
        data = cert.der
    elif fmt == "p7b":
        data = pkcs7.serialize_certificates([leaf, ca], serialization.Encoding.DER)
    else:
        data = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    return Download(data=data, media_type=media_type, filename=f"{_safe_stem(cert)}.{ext}")


def download(ctx: Context, app_id: int, fmt: str) -> Download:
    """The subscriber's current certificate (issued or accepted) in ``fmt``."""
    if fmt not in FORMATS:
        raise NotFound("no such download format", value=str(fmt)[:20])
    with ctx.read() as session:
        cert = session.scalars(select(Certificate).where(
            Certificate.application_id == app_id, Certificate.status.in_(("issued", "accepted")))
            .order_by(Certificate.created_at.desc(), Certificate.id.desc())).first()
        if cert is None:
            raise NotFound("this application has no certificate to download")
        issuer = session.get(CA, cert.ca_id)
        assert issuer is not None
        return render(cert, issuer, fmt)


def public_download(ctx: Context, serial_hex: str, fmt: str) -> Download:
    """A published certificate by serial: accepted certificates only (seed C.7 note 1)."""
    if fmt not in FORMATS or not _SERIAL.match(serial_hex or ""):
        raise NotFound("no such certificate")
    try:
        serial = repo.normalize_serial_hex(serial_hex)
    except ValueError:
        raise NotFound("no such certificate") from None
    with ctx.read() as session:
        cert = session.scalars(select(Certificate).where(Certificate.serial_hex == serial,
                                                         Certificate.status == "accepted")).first()
        if cert is None:
            raise NotFound("no such certificate")
        issuer = session.get(CA, cert.ca_id)
        assert issuer is not None
        return render(cert, issuer, fmt)


def _spaced(serial_hex: str) -> str:
    digits = serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex
    return " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def _unicode(name: str) -> str:
    try:
        return to_unicode(name)
    except Exception:  # noqa: BLE001 - shown as stored when it cannot be decoded
        return name


def search_certificates(ctx: Context, *, by: str, query: str) -> list[SearchHit]:
    """Accepted certificates matching ``query`` by server name (substring), serial or reference number.

    Values are bound parameters and LIKE wildcards match literally (store.repo.find_certificates).
    """
    if by not in ("server_name", "serial", "reference"):
        raise PolicyViolation("search by server_name, serial or reference", value=str(by)[:20])
    query = (query or "").strip()
    if not query:
        return []
    if len(query) > _MAX_QUERY:
        raise PolicyViolation(f"the search text is longer than {_MAX_QUERY} characters", value=len(query))
    if by == "server_name":
        try:  # a Unicode name is searched as its A-label form too
            import idna

            ascii_query = idna.encode(query.lower(), uts46=True).decode()
        except Exception:  # noqa: BLE001 - fall back to the text as typed
            ascii_query = query.lower()
        query = ascii_query
    now = ctx.clock()
    with ctx.read() as session:
        rows = [c for c in repo.find_certificates(session, query, by, limit=200)  # type: ignore[arg-type]
                if c.status == "accepted"]
        issuers = {ca.id: ca for ca in session.scalars(select(CA)).all()}
        orgs = {}
        app_ids = {c.application_id for c in rows if c.application_id is not None}
        if app_ids:
            for app in session.scalars(select(Application).where(Application.id.in_(app_ids))):
                orgs[app.id] = app.org_name_zh if (app.use_chinese and app.org_name_zh) else app.org_name_en
        hits = []
        for c in rows[:100]:
            ca = issuers.get(c.ca_id)
            issuer_cn = _cn(x509.load_der_x509_certificate(ca.cert_der).subject) if ca is not None else None
            status = "revoked" if c.revoked_at is not None else ("expired" if c.not_after < now else "valid")
            hits.append(SearchHit(
                serial_hex=c.serial_hex, serial_spaced=_spaced(c.serial_hex), common_name=c.subject_cn,
                names=tuple(c.names or ()), names_unicode=tuple(_unicode(n) for n in c.names or ()),
                organization=orgs.get(c.application_id) if c.application_id is not None else None,
                issuer_cn=issuer_cn or "", not_before=c.not_before, not_after=c.not_after, status=status))
        return hits


def ca_links(ctx: Context) -> list[CaLink]:
    """Every published CA certificate with its download URLs; issuing CAs with their CRL, the root with its ARL."""
    base = ctx.settings.base_url
    out: list[CaLink] = []
    with ctx.read() as session:
        for ca in session.scalars(select(CA).where(CA.role.in_(("root", "cross", "ov", "ev")))
                                  .order_by(CA.id)).all():
            cert = x509.load_der_x509_certificate(ca.cert_der)
            crl = None
            if ca.role in ("ov", "ev"):
                crl = urls.absolute(base, urls.crl_path(ca.label))
            elif ca.role == "root":
                crl = urls.absolute(base, urls.arl_path(ca.label))
            out.append(CaLink(
                label=ca.label, role=ca.role, common_name=_cn(cert.subject) or ca.label,
                effective_from=ca.effective_from, not_after=ca.not_after, status=ca.status,
                crt_url=urls.absolute(base, urls.ca_cert_path(ca.label, "crt")),
                pem_url=urls.absolute(base, urls.ca_cert_path(ca.label, "pem")), crl_url=crl))
    return out
