"""Key ceremonies: make the hierarchy, roll issuing CAs over, and the offline-root request/sign/import steps.

Each step stores the CA row and its audit event in one transaction, after the key backend has
made the key and the signer has made the certificate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ..core import urls
from ..core.ca_lifecycle import CaAction
from ..core.errors import BadName, ConfigError, Conflict, NotFound, PolicyViolation
from ..core.keys import spki_sha256
from ..core.names import normalize_dns_name
from ..signer import hierarchy
from ..signer.keystore import KeySpec
from ..store import audit, cas, repo
from ..store.models import CA
from .ca_config import CaEntry, HierarchyConfig
from .context import Context

__all__ = [
    "ISSUING_ROLES",
    "InitResult",
    "init_hierarchy",
    "rollover",
    "make_ca_request",
    "sign_ca_request",
    "import_ca_certificate",
    "import_cross_certificate",
    "cross_request",
    "ca_urls_for",
    "load_private_key",
]

ISSUING_ROLES = ("ov", "ev")


@dataclass(frozen=True)
class InitResult:
    created: tuple[str, ...]
    already: bool


def _ski_hex(cert: x509.Certificate) -> str | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return None


def _add_ca(
    session: Session,
    *,
    label: str,
    role: str,
    cert: x509.Certificate,
    key_ref: str | None,
    parent: CA | None,
    now: datetime,
    actor: str,
    effective_from: datetime | None = None,
) -> CA:
    if cas.ca_by_label(session, label) is not None:
        raise Conflict(f"a CA labelled {label} already exists", value=label)
    row = repo.add_ca(
        session,
        label=label,
        role=role,
        subject_dn=cert.subject.rfc4514_string(),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        key_ref=key_ref,
        parent_id=parent.id if parent else None,
        effective_from=effective_from or cert.not_valid_before_utc,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        ski_hex=_ski_hex(cert),
        spki_sha256=spki_sha256(cert.public_key()),
        now=now,
    )
    audit.append(
        session,
        actor=actor,
        event="ca.created",
        subject=label,
        details={
            "role": role,
            "serial": format(cert.serial_number, "x"),
            "subject": row.subject_dn,
            "parent": parent.label if parent else None,
            "not_after": row.not_after.isoformat(),
        },
        now=now,
    )
    return row


def ca_urls_for(ctx: Context, issuer_label: str, *, role: str) -> hierarchy.CaUrls:
    """What a certificate issued by ``issuer_label`` points to: the issuer's certificate and CRL (or ARL)."""
    base = ctx.settings.base_url
    crl = urls.arl_path(issuer_label) if role in ("root", "external-root") else urls.crl_path(issuer_label)
    ocsp = urls.absolute(base, urls.OCSP_PATH) if ctx.settings.ocsp_enabled and role in ISSUING_ROLES else None
    return hierarchy.CaUrls(
        ca_issuers_url=urls.absolute(base, urls.ca_cert_path(issuer_label)),
        crl_url=urls.absolute(base, crl),
        ocsp_url=ocsp,
    )


def load_private_key(ctx: Context, row: CA) -> hierarchy.CaPrivateKey:
    if not row.key_ref:
        raise NotFound(f"CA {row.label} has no key here (an external or offline CA)", value=row.label)
    return ctx.keys.load_key(row.key_ref)  # type: ignore[return-value]


def _cert(row: CA) -> x509.Certificate:
    return x509.load_der_x509_certificate(row.cert_der)


def _issuing(
    ctx: Context,
    session: Session,
    *,
    root: CA,
    root_key: hierarchy.CaPrivateKey,
    entry: CaEntry,
    role: str,
    org: HierarchyConfig,
    now: datetime,
    actor: str,
    effective_from: datetime | None = None,
) -> CA:
    key_ref = ctx.keys.create_key(entry.label, KeySpec.parse(entry.key))
    public_key = ctx.keys.public_key(key_ref)
    cert = hierarchy.issuing_ca_certificate(
        root_cert=_cert(root),
        root_key=root_key,
        subject=hierarchy.ca_name(entry.common_name, org.organization.name, org.organization.country),
        public_key=public_key,  # type: ignore[arg-type]
        urls=ca_urls_for(ctx, root.label, role="root"),
        own_policy_oid=ctx.settings.ca_policy_oid,
        ev=role == "ev",
        now=now,
        days=entry.validity_days,
    )
    return _add_ca(
        session,
        label=entry.label,
        role=role,
        cert=cert,
        key_ref=key_ref,
        parent=root,
        now=now,
        actor=actor,
        effective_from=effective_from,
    )


def check_public_base_url(base_url: str) -> None:
    """Refuse a base URL whose host is an IP address or internal name: every certificate would carry it.

    BR 7.1.2.11.2 and pkilint's ``cabf.internal_domain_name``: AIA and CRLDP URLs name public hosts.
    """
    parsed = urlsplit(base_url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise ConfigError(
            "base URL must be http://HOST[/PATH] (RFC 5280 4.2.1.13: CRL and AIA over http)", value=base_url
        )
    try:
        normalize_dns_name(parsed.hostname, allow_wildcard=False)
    except BadName as exc:
        raise ConfigError(
            f"base URL host {parsed.hostname!r} is not a public domain name: {exc.message}; set ECERT_BASE_URL",
            rule="BR 7.1.2.11.2",
            value=base_url,
        ) from exc


def init_hierarchy(ctx: Context, config: HierarchyConfig, *, demo: bool, actor: str = "operator") -> InitResult:
    """Make root, OV and EV issuing CAs and (demo only) a stand-in external root with its cross-certificate,
    then each issuing CA's OCSP responder certificate, so no OCSP request ever has to make one.

    Running it again on an initialised instance changes nothing and says so.
    """
    result = _init_hierarchy(ctx, config, demo=demo, actor=actor)
    if not result.already:
        _ensure_responders(ctx, [label for label in result.created if label in _issuing_labels(ctx)])
    return result


def _issuing_labels(ctx: Context) -> set[str]:
    with ctx.read() as session:
        return {row.label for role in ISSUING_ROLES for row in cas.active_of_role(session, role)}


def _ensure_responders(ctx: Context, labels: list[str]) -> None:
    from .publication import ensure_responders  # publication imports this module (load_private_key)

    ensure_responders(ctx, labels)  # /ocsp answers whether or not leaves carry its URL (ocsp_enabled)


def _init_hierarchy(ctx: Context, config: HierarchyConfig, *, demo: bool, actor: str) -> InitResult:
    check_public_base_url(ctx.settings.base_url)
    now = ctx.clock()
    with ctx.transaction() as session:
        if cas.root_exists(session):
            return InitResult(created=(), already=True)
        if demo and config.external_root is None:
            raise PolicyViolation("the demo needs an [external_root] section in the hierarchy config")
        created: list[str] = []
        org = config.organization
        root_ref = ctx.keys.create_key(config.root.label, KeySpec.parse(config.root.key))
        root_key = cast(hierarchy.CaPrivateKey, ctx.keys.load_key(root_ref))
        root_cert = hierarchy.root_certificate(
            subject=hierarchy.ca_name(config.root.common_name, org.name, org.country),
            key=root_key,
            now=now,
            days=config.root.validity_days,
        )
        root = _add_ca(
            session,
            label=config.root.label,
            role="root",
            cert=root_cert,
            key_ref=root_ref,
            parent=None,
            now=now,
            actor=actor,
        )
        created.append(root.label)
        for role, entry in (("ov", config.ov), ("ev", config.ev)):
            created.append(
                _issuing(
                    ctx,
                    session,
                    root=root,
                    root_key=root_key,
                    entry=entry,
                    role=role,
                    org=config,
                    now=now,
                    actor=actor,
                ).label
            )
        if demo and config.external_root is not None:
            ext = config.external_root
            ext_ref = ctx.keys.create_key(ext.label, KeySpec.parse(ext.key))
            ext_key = cast(hierarchy.CaPrivateKey, ctx.keys.load_key(ext_ref))
            ext_cert = hierarchy.root_certificate(
                subject=hierarchy.ca_name(ext.common_name, ext.organization, org.country),
                key=ext_key,
                now=now,
                days=ext.validity_days,
            )
            ext_row = _add_ca(
                session,
                label=ext.label,
                role="external-root",
                cert=ext_cert,
                key_ref=ext_ref,
                parent=None,
                now=now,
                actor=actor,
            )
            cross = hierarchy.cross_certificate(
                external_root_cert=ext_cert,
                external_root_key=ext_key,
                our_root_cert=root_cert,
                urls=ca_urls_for(ctx, ext.label, role="external-root"),
                now=now,
                days=ext.cross_validity_days,
            )
            created += [
                ext_row.label,
                _add_ca(
                    session,
                    label=f"{root.label}-cross-{ext.label}",
                    role="cross",
                    cert=cross,
                    key_ref=None,
                    parent=ext_row,
                    now=now,
                    actor=actor,
                ).label,
            ]
        return InitResult(created=tuple(created), already=False)


def _next_label(session: Session, label: str) -> str:
    match = re.match(r"^(.*?)(\d+)$", label)
    stem, number = (match.group(1), int(match.group(2))) if match else (label + "-", 1)
    existing = cas.ca_labels(session)
    number += 1
    while f"{stem}{number}" in existing:
        number += 1
    return f"{stem}{number}"


def _root(session: Session) -> CA:
    root = cas.active_root(session)
    if root is None:
        raise NotFound("no root CA: run `ecert-ca init` first")
    return root


def rollover(
    ctx: Context,
    config: HierarchyConfig,
    role: str,
    *,
    label: str | None = None,
    common_name: str | None = None,
    effective_from: datetime | None = None,
    actor: str = "operator",
) -> tuple[CA, list[CA]]:
    """A new issuing CA for ``role``; the old ones stop issuing now (their revocation is a separate step)."""
    if role not in ISSUING_ROLES:
        raise PolicyViolation("rollover applies to the issuing CAs: ov or ev", value=role)
    now = ctx.clock()
    with ctx.transaction() as session:
        root = _root(session)
        old = cas.active_of_role(session, role)
        template: CaEntry = getattr(config, role)
        newest = old[-1].label if old else template.label
        entry = template.model_copy(
            update={
                "label": label or _next_label(session, newest),
                "common_name": common_name or _bump_cn(old, template),
            }
        )
        new = _issuing(
            ctx,
            session,
            root=root,
            root_key=load_private_key(ctx, root),
            entry=entry,
            role=role,
            org=config,
            now=now,
            actor=actor,
            effective_from=effective_from or now,
        )
        for row in old:
            cas.move_ca(session, row.id, CaAction.RETIRE, current=row.status, retire_at=now)
            audit.append(
                session, actor=actor, event="ca.retired", subject=row.label, details={"successor": new.label}, now=now
            )
    _ensure_responders(ctx, [new.label])  # the new CA answers OCSP from its first request on
    return new, old


def _bump_cn(old: list[CA], template: CaEntry) -> str:
    if not old:
        return template.common_name
    value = _cert(old[-1]).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    cn = value.decode() if isinstance(value, bytes) else value
    match = re.match(r"^(.*?)(\d+)$", cn)
    return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{cn} 2"


def make_ca_request(
    ctx: Context, config: HierarchyConfig, role: str, *, label: str, common_name: str
) -> x509.CertificateSigningRequest:
    """Offline-root ceremony, step 1: a new issuing CA key on this instance and its PKCS#10 request."""
    if role not in ISSUING_ROLES:
        raise PolicyViolation("requests are for issuing CAs: ov or ev", value=role)
    key_ref = ctx.keys.create_key(label, KeySpec.parse(getattr(config, role).key))
    key = ctx.keys.load_key(key_ref)
    org = config.organization
    return hierarchy.ca_request(subject=hierarchy.ca_name(common_name, org.name, org.country), key=key)  # type: ignore[arg-type]


def sign_ca_request(
    ctx: Context, csr: x509.CertificateSigningRequest, role: str, *, days: int = 1825
) -> x509.Certificate:
    """Offline-root ceremony, step 2 (on the root's machine): certify the request as an issuing CA."""
    if role not in ISSUING_ROLES:
        raise PolicyViolation("the root certifies issuing CAs: ov or ev", value=role)
    with ctx.transaction() as session:
        root = _root(session)
        cert = hierarchy.sign_ca_request(
            csr=csr,
            root_cert=_cert(root),
            root_key=load_private_key(ctx, root),
            urls=ca_urls_for(ctx, root.label, role="root"),
            own_policy_oid=ctx.settings.ca_policy_oid,
            ev=role == "ev",
            now=ctx.clock(),
            days=days,
        )
        audit.append(
            session,
            actor="operator",
            event="ca.request_signed",
            subject=cert.subject.rfc4514_string(),
            details={"role": role, "serial": format(cert.serial_number, "x")},
            now=ctx.clock(),
        )
        return cert


def import_ca_certificate(
    ctx: Context,
    cert: x509.Certificate,
    *,
    role: str,
    label: str,
    effective_from: datetime | None = None,
    actor: str = "operator",
) -> CA:
    """Offline-root ceremony, step 3: install the signed issuing CA whose key this instance holds."""
    # The key was made by make_ca_request under the same label; its reference follows the backend's scheme.
    key_ref = f"file:{label}.key" if ctx.settings.key_backend == "file" else f"pkcs11:label={label}"
    with ctx.transaction() as session:
        root = _root(session)
        try:
            cert.verify_directly_issued_by(_cert(root))
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PolicyViolation(f"the certificate was not issued by root {root.label}: {exc}") from exc
        if spki_sha256(ctx.keys.public_key(key_ref)) != spki_sha256(cert.public_key()):
            raise PolicyViolation(
                f"the key labelled {label} on this instance does not match the certificate", value=label
            )
        return _add_ca(
            session,
            label=label,
            role=role,
            cert=cert,
            key_ref=key_ref,
            parent=root,
            now=ctx.clock(),
            actor=actor,
            effective_from=effective_from,
        )


def cross_request(ctx: Context) -> tuple[x509.Certificate, x509.CertificateSigningRequest]:
    """What an external root needs to cross-certify ours: our root certificate and a request signed by its key."""
    with ctx.transaction() as session:
        root = _root(session)
        cert = _cert(root)
        csr = hierarchy.ca_request(subject=cert.subject, key=load_private_key(ctx, root))
        return cert, csr


def import_cross_certificate(
    ctx: Context,
    cross: x509.Certificate,
    external_root: x509.Certificate,
    *,
    external_label: str,
    actor: str = "operator",
) -> CA:
    """Install a cross-certificate: same subject and key as our root, issued by ``external_root``."""
    with ctx.transaction() as session:
        root = _root(session)
        root_cert = _cert(root)
        if cross.subject != root_cert.subject or spki_sha256(cross.public_key()) != root.spki_sha256:
            raise PolicyViolation("the cross-certificate does not certify our root's name and key")
        try:
            cross.verify_directly_issued_by(external_root)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise PolicyViolation(f"the cross-certificate was not issued by the given external root: {exc}") from exc
        ext = cas.ca_by_label(session, external_label)
        if ext is None:
            ext = _add_ca(
                session,
                label=external_label,
                role="external-root",
                cert=external_root,
                key_ref=None,
                parent=None,
                now=ctx.clock(),
                actor=actor,
            )
        return _add_ca(
            session,
            label=f"{root.label}-cross-{external_label}",
            role="cross",
            cert=cross,
            key_ref=None,
            parent=ext,
            now=ctx.clock(),
            actor=actor,
        )
