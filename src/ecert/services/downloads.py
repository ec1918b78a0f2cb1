"""Certificate downloads in the formats servers take, the public search, and the CA certificate links.

Downloads are keyed by application id or serial number, never by a path, so no input can reach a file.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy.orm import Session

from ..core import urls
from ..core.errors import Conflict, NotFound, PolicyViolation
from ..core.lifecycle import CertStatus
from ..core.names import to_unicode
from ..store import audit, cas, certificates, repo, status
from ..store.models import CA, Certificate
from . import applications, process_cache
from .context import Context

__all__ = [
    "FORMATS",
    "NOT_ACCEPTED",
    "Download",
    "SearchHit",
    "CaLink",
    "CrossLink",
    "ChainLinks",
    "download",
    "start_download",
    "start_session_download",
    "public_download",
    "search_certificates",
    "ca_links",
    "certificate_links",
    "render",
]

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
    revoked_at: datetime | None = None  # set ahead of time when a retired CA's revocation is scheduled


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


class _Renderable(Protocol):
    """A stored certificate as rendering reads it: a whole row, or a download's narrow read of one."""

    @property
    def der(self) -> bytes | None: ...
    @property
    def subject_cn(self) -> str | None: ...
    @property
    def serial_hex(self) -> str: ...
    @property
    def ca_id(self) -> int: ...


def _safe_stem(cert: _Renderable) -> str:
    stem = (cert.subject_cn or "certificate").replace("*", "wildcard")
    return re.sub(r"[^A-Za-z0-9.-]", "_", stem)[:80] or "certificate"


def render(cert: Certificate, issuer: CA, fmt: str) -> Download:
    """The certificate in ``fmt``; p7b (DER PKCS#7, RFC 2315 certs-only) and fullchain add the issuing CA."""
    return _render(cert, x509.load_der_x509_certificate(issuer.cert_der), fmt)


def _render(cert: _Renderable, ca: x509.Certificate, fmt: str) -> Download:
    if fmt not in FORMATS:
        raise NotFound("no such download format", value=str(fmt)[:20])
    if cert.der is None:
        raise NotFound("the certificate is not signed yet")
    leaf = x509.load_der_x509_certificate(cert.der)
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


def _issuer_cert(ctx: Context, session: Session, ca_id: int) -> x509.Certificate:
    """The issuing CA's certificate, kept per process by id: a CA row's certificate never changes, and
    reading and parsing it again was a query and a parse on every download."""
    known: dict[int, x509.Certificate] = process_cache.slot(ctx).setdefault("issuer_certs", {})
    found = known.get(ca_id)
    if found is None:
        row = cas.ca_by_id(session, ca_id)
        assert row is not None
        found = known[ca_id] = x509.load_der_x509_certificate(row.cert_der)
    return found


_RENDERINGS_KEPT = 4_096


def _rendered(ctx: Context, session: Session, cert: _Renderable, fmt: str) -> Download:
    """The certificate in ``fmt``, kept per process by serial and format: a signed certificate's bytes never
    change, and parsing and encoding it again was a tenth of a download's CPU under load."""
    known: dict[tuple[str, int, str], Download] = process_cache.slot(ctx).setdefault("renderings", {})
    key = (cert.serial_hex, cert.ca_id, fmt)
    found = known.get(key)
    if found is None:
        found = _render(cert, _issuer_cert(ctx, session, cert.ca_id), fmt)
        if len(known) >= _RENDERINGS_KEPT:
            known.clear()
        known[key] = found
    return found


NOT_ACCEPTED = "accept the certificate before downloading it"


def _accepted(session: Session, app_id: int) -> certificates.LiveCertificate:
    """The application's newest accepted certificate; Conflict while one only waits for acceptance.

    The seed offers the download only after "Accept" (C.6, C.7): an unaccepted certificate may still be
    rejected (and then revoked), so it must not reach a server first. (While a replacement waits, the
    accepted certificate it would replace is still the one to download.)
    """
    live = certificates.live_for_download(session, app_id)
    if not live:
        raise NotFound("this application has no certificate to download")
    accepted = next((cert for cert in live if cert.status == CertStatus.ACCEPTED), None)
    if accepted is None:
        raise Conflict(NOT_ACCEPTED, rule="seed C.6", value=live[0].serial_hex)
    return accepted


@dataclass
class _Pending:
    """One download waiting for its audit row to be committed; ``receipt`` resolves once it is."""

    ctx: Context
    serial_hex: str
    fmt: str
    actor: str
    channel: str
    at: datetime
    receipt: Future[None] = field(default_factory=Future)


class _GroupCommit:
    """Download audit rows share write transactions, written by one writer thread of the process.

    The audit chain admits one writer at a time (an advisory lock on PostgreSQL, the write lock on
    SQLite), so a transaction per download queued every download behind every other (p99 2.1 s at 16
    connections). A download still counts as done only once its own row is committed in the chain (its
    receipt), but the rows that arrive while one transaction runs go together in the next. The writer is a
    thread of its own so that waiting costs no request thread: the web edge awaits the receipt on the event
    loop, and batching no longer depends on how many request threads happen to be waiting.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._writer: threading.Thread | None = None

    def submit(self, item: _Pending) -> Future[None]:
        with self._cond:
            self._pending.append(item)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="ecert-download-audit", daemon=True)
                self._writer.start()
            self._cond.notify()
        return item.receipt

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending, []
            errors = _write_batch(batch)
            for item in batch:
                error = errors.get(id(item.ctx))
                if error is None:
                    item.receipt.set_result(None)
                else:
                    item.receipt.set_exception(error)


def _write_batch(batch: list[_Pending]) -> dict[int, BaseException]:
    """One transaction per database in the batch; returns the error of each context whose write failed."""
    errors: dict[int, BaseException] = {}
    by_ctx: dict[int, list[_Pending]] = {}
    for item in batch:
        by_ctx.setdefault(id(item.ctx), []).append(item)
    for key, items in by_ctx.items():
        try:
            entries = [
                audit.Entry(
                    item.actor,
                    "cert.downloaded",
                    item.serial_hex,
                    {"format": item.fmt, "channel": item.channel},
                    item.at,
                )
                for item in items
            ]
            with items[0].ctx.transaction() as session:
                audit.append_many(session, entries)
        except Exception as exc:  # noqa: BLE001 - handed to each waiting download of that database
            errors[key] = exc
    return errors


_DOWNLOAD_LOG = _GroupCommit()


def _audit_download(ctx: Context, serial_hex: str, fmt: str, actor: str, channel: str) -> Future[None]:
    """Every download is an audit event (issue 4 point 5): who took which certificate, in what form, where.

    The returned receipt resolves once the row is committed; concurrent downloads share the transaction.
    """
    return _DOWNLOAD_LOG.submit(_Pending(ctx, serial_hex, fmt, actor, channel, ctx.clock()))


def download(ctx: Context, app_id: int, fmt: str, *, actor: str = "subscriber", channel: str = "portal") -> Download:
    """The subscriber's accepted certificate in ``fmt`` (Conflict while it waits for acceptance); returns once
    its audit row is committed."""
    item, receipt = start_download(ctx, app_id, fmt, actor=actor, channel=channel)
    receipt.result()
    return item


def start_download(
    ctx: Context, app_id: int, fmt: str, *, actor: str = "subscriber", channel: str = "portal"
) -> tuple[Download, Future[None]]:
    """:func:`download`, for a caller that waits for the audit row itself (the web edge awaits the receipt on
    its event loop instead of holding a thread): hand the certificate out only once the receipt resolves."""
    if fmt not in FORMATS:
        raise NotFound("no such download format", value=str(fmt)[:20])
    with process_cache.quick_read(ctx) as session:
        cert = _accepted(session, app_id)
        item = _rendered(ctx, session, cert, fmt)
        serial = cert.serial_hex
    return item, _audit_download(ctx, serial, fmt, actor, channel)


def start_session_download(ctx: Context, token: str, fmt: str, *, channel: str) -> tuple[Download, Future[None]]:
    """:func:`start_download` for the holder of a portal session token: the session's check and the read in
    one database session, the actor named by the application's reference number."""
    if fmt not in FORMATS:
        raise NotFound("no such download format", value=str(fmt)[:20])

    def read(session: Session, app_id: int) -> tuple[int, Download, str]:
        cert = _accepted(session, app_id)
        return app_id, _rendered(ctx, session, cert, fmt), cert.serial_hex

    app_id, item, serial = applications.within_session(ctx, token, read)
    actor = f"subscriber:{applications.reference_of(ctx, app_id)}"
    return item, _audit_download(ctx, serial, fmt, actor, channel)


def public_download(
    ctx: Context, serial_hex: str, fmt: str, *, actor: str = "public", channel: str = "search"
) -> Download:
    """A published certificate by serial: accepted certificates only (seed C.7 note 1); audited."""
    if fmt not in FORMATS or not _SERIAL.match(serial_hex or ""):
        raise NotFound("no such certificate")
    try:
        serial = repo.normalize_serial_hex(serial_hex)
    except ValueError:
        raise NotFound("no such certificate") from None
    with ctx.read() as session:
        cert = status.accepted_by_serial(session, serial)
        if cert is None:
            raise NotFound("no such certificate")
        item = _rendered(ctx, session, cert, fmt)
        serial = cert.serial_hex
    _audit_download(ctx, serial, fmt, actor, channel).result()
    return item


def _spaced(serial_hex: str) -> str:
    digits = serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


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
        rows = [
            c
            for c in repo.find_certificates(session, query, by, limit=200)  # type: ignore[arg-type]
            if c.status == CertStatus.ACCEPTED
        ]
        issuers = {ca.id: ca for ca in cas.cas_of_roles(session)}
        orgs = status.organisation_names(session, {c.application_id for c in rows if c.application_id is not None})
        hits = []
        for c in rows[:100]:
            ca = issuers.get(c.ca_id)
            issuer_cn = _cn(x509.load_der_x509_certificate(ca.cert_der).subject) if ca is not None else None
            shown = "revoked" if c.revoked_at is not None else ("expired" if c.not_after < now else "valid")
            hits.append(
                SearchHit(
                    serial_hex=c.serial_hex,
                    serial_spaced=_spaced(c.serial_hex),
                    common_name=c.subject_cn,
                    names=tuple(c.names or ()),
                    names_unicode=tuple(_unicode(n) for n in c.names or ()),
                    organization=orgs.get(c.application_id) if c.application_id is not None else None,
                    issuer_cn=issuer_cn or "",
                    not_before=c.not_before,
                    not_after=c.not_after,
                    status=shown,
                )
            )
        return hits


def _link(ca: CA) -> CaLink:
    """A CA with site-relative links: the pages are served by this server, whatever base_url says.

    Absolute URLs (settings.base_url) belong only in certificates (AIA, CRLDP); a local instance's
    pages would otherwise point at a host that does not resolve.
    """
    cert = x509.load_der_x509_certificate(ca.cert_der)
    crl = None
    if ca.role in ("ov", "ev"):
        crl = urls.crl_path(ca.label)
    elif ca.role == "root":
        crl = urls.arl_path(ca.label)
    return CaLink(
        label=ca.label,
        role=ca.role,
        common_name=_cn(cert.subject) or ca.label,
        effective_from=ca.effective_from,
        not_after=ca.not_after,
        status=ca.status,
        crt_url=urls.ca_cert_path(ca.label, "crt"),
        pem_url=urls.ca_cert_path(ca.label, "pem"),
        crl_url=crl,
        revoked_at=ca.revoked_at,
    )


def ca_links(ctx: Context) -> list[CaLink]:
    """Every published CA certificate with its (site-relative) links; issuing CAs with their CRL, the root its ARL."""
    with ctx.read() as session:
        return [_link(ca) for ca in cas.cas_of_roles(session, ("root", "cross", "ov", "ev"))]


@dataclass(frozen=True)
class CrossLink:
    """A cross-certificate for our root, named as the seed names it: "<root> issued by <external root>"."""

    label: str
    subject_cn: str
    issuer_cn: str
    pem_url: str
    crt_url: str


@dataclass(frozen=True)
class ChainLinks:
    """What the download page (seed C.7) tells a subscriber to install with this certificate."""

    issuer: CaLink
    root_cn: str
    crosses: tuple[CrossLink, ...]
    arl_url: str | None


def certificate_links(ctx: Context, app_id: int) -> ChainLinks:
    """The CA that signed this application's accepted certificate, its root's cross-certificates and ARL.

    Only the certificate's own issuer: after a rollover, a CA not yet in effect (or the other
    generation) would not build the subscriber's chain (seed C.7 point 2).
    """
    with ctx.read() as session:
        cert = _accepted(session, app_id)
        issuer = cas.ca_by_id(session, cert.ca_id)
        if issuer is None:
            raise NotFound("the certificate's issuing CA is not known")
        root = cas.ca_by_id(session, issuer.parent_id) if issuer.parent_id is not None else None
        crosses: list[CrossLink] = []
        arl = None
        root_cn = ""
        if root is not None:
            root_cn = _cn(x509.load_der_x509_certificate(root.cert_der).subject) or root.label
            arl = urls.arl_path(root.label)
            for row in cas.crosses_of(session, root):
                cross = x509.load_der_x509_certificate(row.cert_der)
                crosses.append(
                    CrossLink(
                        label=row.label,
                        subject_cn=_cn(cross.subject) or root_cn,
                        issuer_cn=_cn(cross.issuer) or "",
                        pem_url=urls.ca_cert_path(row.label, "pem"),
                        crt_url=urls.ca_cert_path(row.label, "crt"),
                    )
                )
        return ChainLinks(issuer=_link(issuer), root_cn=root_cn, crosses=tuple(crosses), arl_url=arl)
