"""`ecert-ca`: the operator's command line. It parses, calls services and prints; nothing more."""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from sqlalchemy import select

from ..core.errors import EcertError
from ..settings import Settings, load_settings
from . import output

__all__ = ["app", "main"]

app = typer.Typer(help="ecert-ca: run the certificate authority (e-Cert (Server) style).", no_args_is_help=True,
                  pretty_exceptions_enable=False)
ca_app = typer.Typer(help="CA hierarchy: list, show, rollover, ceremonies.", no_args_is_help=True)
cert_app = typer.Typer(help="Subscriber certificates: issue directly, show.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(ca_app, name="ca")
app.add_typer(cert_app, name="cert")
app.add_typer(audit_app, name="audit")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEMO_PASSPHRASE_FILE = "secrets/demo-key-passphrase"


def _settings(demo: bool = False) -> Settings:
    settings = load_settings()
    if demo and settings.key_backend == "file" and not settings.key_passphrase_file \
            and settings.key_passphrase_env not in os.environ:
        # Demo convenience only: a random passphrase in a 0600 file outside the key directory.
        path = settings.data_dir / DEMO_PASSPHRASE_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        settings = load_settings(key_passphrase_file=path)
    elif not demo and not settings.key_passphrase_file and settings.key_passphrase_env not in os.environ:
        demo_file = settings.data_dir / DEMO_PASSPHRASE_FILE
        if demo_file.exists():
            settings = load_settings(key_passphrase_file=demo_file)
    return settings


@contextmanager
def _context(demo: bool = False) -> Iterator[Any]:
    from ..services.context import build_context

    ctx = build_context(_settings(demo), os.environ)
    try:
        yield ctx
    finally:
        ctx.close()


def _config(settings: Settings) -> Any:
    from ..services.ca_config import load_hierarchy_config

    return load_hierarchy_config(settings.hierarchy_config)


def _cert_of(row: Any) -> x509.Certificate:
    return x509.load_der_x509_certificate(row.cert_der)


# --- init -----------------------------------------------------------------------------------------------


@app.command()
def init(demo: Annotated[bool, typer.Option("--demo", help="Demo names and a stand-in cross-signing root.")] = False,
         json_out: JsonOpt = False) -> None:
    """Make the hierarchy: root, OV and EV issuing CAs (and, with --demo, a cross-certificate)."""
    from ..services.ceremony import init_hierarchy

    with _context(demo) as ctx:
        result = init_hierarchy(ctx, _config(ctx.settings), demo=demo)
        if json_out:
            output.emit_json("init", {"created": list(result.created), "already": result.already})
        elif result.already:
            output.console().print("The hierarchy already exists; nothing changed. See `ecert-ca ca list`.")
        else:
            output.console().print(f"Created {', '.join(result.created)} in {ctx.settings.data_dir.resolve()}")


# --- ca ---------------------------------------------------------------------------------------------------


def _ca_rows(ctx: Any) -> list[Any]:
    from ..store.models import CA

    with ctx.transaction() as session:
        return list(session.scalars(select(CA).order_by(CA.id)))


@ca_app.command("list")
def ca_list(json_out: JsonOpt = False) -> None:
    """Every CA certificate: roots, cross-certificates, issuing CAs old and new."""
    with _context() as ctx:
        rows = _ca_rows(ctx)
        data = [{"label": r.label, "role": r.role, "status": r.status, "subject": r.subject_dn,
                 "effective_from": r.effective_from, "not_after": r.not_after} for r in rows]
        if json_out:
            output.emit_json("ca-list", data)
        else:
            output.table("CA certificates", ("label", "role", "status", "effective from", "expires", "subject"),
                         [(d["label"], d["role"], d["status"], d["effective_from"], d["not_after"], d["subject"])
                          for d in data])


@ca_app.command("show")
def ca_show(label: str, pem: Annotated[bool, typer.Option("--pem", help="Print the certificate as PEM.")] = False,
            json_out: JsonOpt = False) -> None:
    """One CA certificate's details (or its PEM)."""
    with _context() as ctx:
        row = next((r for r in _ca_rows(ctx) if r.label == label), None)
        if row is None:
            output.fail(f"no CA labelled {label!r}; see `ecert-ca ca list`")
        cert = _cert_of(row)
        if pem:
            sys.stdout.write(cert.public_bytes(serialization.Encoding.PEM).decode())
            return
        data = {"label": row.label, "role": row.role, "status": row.status, "subject": row.subject_dn,
                "issuer": cert.issuer.rfc4514_string(), "serial": format(cert.serial_number, "x"),
                "not_before": row.not_before, "not_after": row.not_after, "effective_from": row.effective_from,
                "ski": row.ski_hex, "spki_sha256": row.spki_sha256, "key_ref": row.key_ref}
        output.emit_json("ca", data) if json_out else output.fields(f"CA {label}", data)


@ca_app.command("rollover")
def ca_rollover(role: Annotated[str, typer.Argument(help="ov or ev")],
                label: Annotated[str | None, typer.Option(help="Label of the new CA.")] = None,
                common_name: Annotated[str | None, typer.Option(help="CN of the new CA.")] = None,
                effective_from: Annotated[datetime | None, typer.Option(help="When it starts issuing (UTC).")] = None,
                revoke_old_at: Annotated[datetime | None, typer.Option(
                    help="Revoke the old CA(s) into the ARL at this time (UTC), reason superseded.")] = None,
                json_out: JsonOpt = False) -> None:
    """A new issuing CA for ROLE; the old one stops issuing, and is revoked into the ARL when you say."""
    from ..services.ceremony import rollover
    from ..services.revocation import revoke_ca

    def _utc(value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    with _context() as ctx:
        new, old = rollover(ctx, _config(ctx.settings), role, label=label, common_name=common_name,
                            effective_from=_utc(effective_from))
        revoked = [revoke_ca(ctx, o.label, "superseded", _utc(revoke_old_at)) for o in old] if revoke_old_at else []
        data = {"new": new.label, "effective_from": new.effective_from, "retired": [o.label for o in old],
                "revocation_scheduled": [{"label": o.label, "at": _utc(revoke_old_at)} for o in old] if revoked else []}
        if json_out:
            output.emit_json("rollover", data)
        else:
            output.console().print(f"New {role.upper()} issuing CA {new.label}, effective from "
                                   f"{new.effective_from:%d/%m/%Y}; retired: {', '.join(data['retired']) or 'none'}")


@ca_app.command("revoke")
def ca_revoke(label: str,
              reason: Annotated[str | None, typer.Option(help="superseded, cessationOfOperation, cACompromise, ...")]
              = None,
              at: Annotated[datetime | None, typer.Option(help="When (UTC); a future date is applied by the jobs.")]
              = None,
              json_out: JsonOpt = False) -> None:
    """Revoke an issuing CA certificate into the root's ARL, now or at a date (the end of a rollover)."""
    from ..services.revocation import revoke_ca

    with _context() as ctx:
        when = at.replace(tzinfo=UTC) if at and at.tzinfo is None else at
        result = revoke_ca(ctx, label, reason, when, actor="operator:cli")
        data = {"ca": result.label, "revoked_at": result.revoked_at, "reason": result.reason,
                "scheduled": result.scheduled}
        if json_out:
            output.emit_json("ca-revocation", data)
        else:
            verb = "will be revoked on" if result.scheduled else "revoked on"
            output.console().print(f"CA {label} {verb} {result.revoked_at:%d/%m/%Y %H:%M} UTC "
                                   f"({result.reason or 'no reason stated'})")


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        output.fail(f"{path} exists; not overwriting")
    path.write_bytes(data)


@ca_app.command("request")
def ca_request(role: Annotated[str, typer.Argument(help="ov or ev")],
               label: Annotated[str, typer.Option(help="Label of the new CA (also its key's label).")],
               common_name: Annotated[str, typer.Option(help="CN of the new CA.")],
               out: Annotated[Path, typer.Option(help="Where to write the PKCS#10 request (PEM).")]) -> None:
    """Offline-root ceremony 1: make an issuing CA key here and write its request for the root."""
    from ..services.ceremony import make_ca_request

    with _context() as ctx:
        csr = make_ca_request(ctx, _config(ctx.settings), role, label=label, common_name=common_name)
        _write(out, csr.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out}; sign it on the root's machine with `ecert-ca ca sign-request`.")


@ca_app.command("sign-request")
def ca_sign_request(csr_file: Annotated[Path, typer.Argument(help="The issuing CA's request (PEM).")],
                    role: Annotated[str, typer.Option(help="ov or ev")],
                    out: Annotated[Path, typer.Option(help="Where to write the certificate (PEM).")],
                    days: int = 1825) -> None:
    """Offline-root ceremony 2 (on the root's machine): certify an issuing CA request."""
    from ..services.ceremony import sign_ca_request

    with _context() as ctx:
        try:
            csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        except (OSError, ValueError) as exc:
            output.fail(f"cannot read the request {csr_file}: {exc}")
        cert = sign_ca_request(ctx, csr, role, days=days)
        _write(out, cert.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out}")


@ca_app.command("import")
def ca_import(cert_file: Path, role: Annotated[str, typer.Option(help="ov or ev")],
              label: Annotated[str, typer.Option(help="The label used with `ca request`.")]) -> None:
    """Offline-root ceremony 3: install the signed issuing CA certificate."""
    from ..services.ceremony import import_ca_certificate

    with _context() as ctx:
        row = import_ca_certificate(ctx, _load_cert(cert_file), role=role, label=label)
        output.console().print(f"Installed {row.label} ({row.role}), effective from {row.effective_from:%d/%m/%Y}")


@ca_app.command("cross-request")
def ca_cross_request(
        out_dir: Annotated[Path, typer.Option(help="Directory for root.pem and root-request.pem.")]) -> None:
    """What another root needs to cross-certify ours: our root certificate and a request signed by its key."""
    from ..services.ceremony import cross_request

    with _context() as ctx:
        cert, csr = cross_request(ctx)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write(out_dir / "root.pem", cert.public_bytes(serialization.Encoding.PEM))
        _write(out_dir / "root-request.pem", csr.public_bytes(serialization.Encoding.PEM))
        output.console().print(f"Wrote {out_dir}/root.pem and {out_dir}/root-request.pem")


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except (OSError, ValueError) as exc:
        output.fail(f"cannot read a certificate from {path}: {exc}")
        raise  # unreachable


@ca_app.command("import-cross")
def ca_import_cross(cross_file: Path,
                    external_root: Annotated[Path, typer.Option(help="The other root's certificate.")],
                    external_label: Annotated[str, typer.Option(help="A label for the other root.")]) -> None:
    """Install a cross-certificate for our root issued by another root."""
    from ..services.ceremony import import_cross_certificate

    with _context() as ctx:
        row = import_cross_certificate(ctx, _load_cert(cross_file), _load_cert(external_root),
                                       external_label=external_label)
        output.console().print(f"Installed cross-certificate {row.label}")


# --- cert -------------------------------------------------------------------------------------------------


@cert_app.command("issue")
def cert_issue(csr: Annotated[Path, typer.Option(help="The subscriber's CSR (PEM or DER).")],
               profile: Annotated[str, typer.Option(help="server, wildcard, multi, ev or ev_multi")],
               name: Annotated[list[str], typer.Option(help="A validated server name (repeat; first is the CN).")],
               org: Annotated[str, typer.Option(help="Validated organisation name (English or Chinese).")],
               country: str = "HK", state: str = "Hong Kong", locality: str = "Hong Kong",
               business_category: str | None = None, jurisdiction_country: str | None = None,
               registration_number: str | None = None,
               days: Annotated[int | None, typer.Option(
                   help="Validity in days (default: one under the BR cap).")] = None,
               out: Annotated[Path | None, typer.Option(help="Write the certificate here (PEM).")] = None,
               high_risk_reviewed: Annotated[bool, typer.Option(
                   "--high-risk-reviewed", help="A person reviewed names flagged as high risk (BR 4.2.1).")] = False,
               json_out: JsonOpt = False) -> None:
    """Issue directly through the full pipeline (CSR checks, CAA, profile, lint, sign, store).

    For names the operator has validated outside the portal (BR 3.2.2.4 is the operator's duty here);
    CAA is still looked up for every name, and a failed lookup refuses.
    """
    from ..core import csr as csr_rules
    from ..core.errors import PolicyViolation
    from ..core.names import needs_manual_review, normalize_names
    from ..core.profiles import CertType, SubjectData, names_for_application
    from ..services.caa import check_caa_at_issuance
    from ..services.issuance import BlockedKeys, IssueRequest, issue

    try:
        cert_type = CertType(profile)
    except ValueError:
        output.fail(f"unknown profile {profile!r}; choose from {', '.join(t.value for t in CertType)}", 2)
    try:
        data = csr.read_bytes()
    except OSError as exc:
        output.fail(f"cannot read {csr}: {exc.strerror}")
    with _context() as ctx:
        normalized = normalize_names(name)
        names = names_for_application(cert_type, normalized[0], tuple(normalized[1:]))
        flagged = [(n, needs_manual_review(n)) for n in names if needs_manual_review(n)]
        if flagged and not high_risk_reviewed:
            raise PolicyViolation(f"{flagged[0][0]} needs a manual high-risk review first: {flagged[0][1]}; "
                                  "run again with --high-risk-reviewed once a person has checked it",
                                  rule="BR 4.2.1", value=flagged[0][0])
        with ctx.transaction() as session:
            info = csr_rules.check_csr(data, blocked_spki=BlockedKeys(session))
        csr_rules.compare_names(info.dns_names, names)
        check_caa_at_issuance(ctx, names, actor="operator")  # BR 3.2.2.8: every issuance path
        subject = SubjectData(organization=org, country=country, state=state or None, locality=locality or None,
                              business_category=business_category, jurisdiction_country=jurisdiction_country,
                              serial_number=registration_number)
        row = issue(ctx, IssueRequest(cert_type=cert_type, names=names, subject=subject,
                                      public_key=info.public_key, requested_days=days))  # type: ignore[arg-type]
        cert = x509.load_der_x509_certificate(row.der)
        if out:
            _write(out, cert.public_bytes(serialization.Encoding.PEM))
        summary = {"serial": row.serial_hex, "names": row.names, "not_before": row.not_before,
                   "not_after": row.not_after, "profile": row.profile, "ignored_from_csr": list(info.ignored)}
        output.emit_json("certificate", summary) if json_out else output.fields("Issued", summary)


@cert_app.command("show")
def cert_show(serial: str, pem: Annotated[bool, typer.Option("--pem")] = False, json_out: JsonOpt = False) -> None:
    """One issued certificate by serial number (hex, spaces and colons allowed)."""
    from ..store.models import CA, Certificate

    wanted = serial.replace(" ", "").replace(":", "").lower().lstrip("0")
    with _context() as ctx, ctx.transaction() as session:
        rows = list(session.execute(select(Certificate, CA.label).join(CA, CA.id == Certificate.ca_id)
                                    .where(Certificate.serial_hex == wanted)))
        if not rows:
            output.fail(f"no certificate with serial {serial}")
        cert_row, ca_label = rows[0]
        if pem and cert_row.der:
            sys.stdout.write(x509.load_der_x509_certificate(cert_row.der).public_bytes(
                serialization.Encoding.PEM).decode())
            return
        data = {"serial": cert_row.serial_hex, "issuer": ca_label, "status": cert_row.status,
                "names": cert_row.names, "profile": cert_row.profile, "not_before": cert_row.not_before,
                "not_after": cert_row.not_after, "spki_sha256": cert_row.spki_sha256,
                "revoked_at": cert_row.revoked_at, "revocation_reason": cert_row.revocation_reason}
        output.emit_json("certificate", data) if json_out else output.fields(f"Certificate {wanted}", data)


@cert_app.command("revoke")
def cert_revoke(serial: str,
                reason: Annotated[str | None, typer.Option(help="keyCompromise, superseded, cessationOfOperation, "
                                                           "affiliationChanged, privilegeWithdrawn; omit for none")]
                = None,
                ca: Annotated[str | None, typer.Option(help="The issuing CA, if the serial is ambiguous.")] = None,
                json_out: JsonOpt = False) -> None:
    """Revoke a certificate (BR 4.9.1.1); its CRL and OCSP answers change at once."""
    from ..services.revocation import revoke_certificate

    with _context() as ctx:
        result = revoke_certificate(ctx, ca_label=ca, serial_hex=serial, reason=reason, actor="operator:cli")
        data = {"revoked": [{"ca": c, "serial": s} for c, s in result.revoked], "revoked_at": result.revoked_at,
                "reason": result.reason, "key_blocked": result.blocked_spki, "published": result.published}
        if json_out:
            output.emit_json("revocation", data)
        else:
            output.console().print(f"Revoked {', '.join(s for _c, s in result.revoked)} "
                                   f"({result.reason or 'no reason stated'})"
                                   + ("; the key is blocked" if result.blocked_spki else ""))


# --- audit ------------------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(known_head: Annotated[str | None, typer.Option(
                     help="A head hash printed by an earlier run: rows cut from the end are then detected.")] = None,
                 json_out: JsonOpt = False) -> None:
    """Walk the hash chain; exit 4 if a row was edited, deleted or reordered.

    Each run prints the newest row's hash: keep it somewhere else (a ticket, the operator's log) and pass
    it back with --known-head, so that deleting the newest rows cannot go unnoticed.
    """
    from ..store.audit import verify_chain
    from ..store.models import AuditEvent

    with _context() as ctx, ctx.read() as session:
        result = verify_chain(session, known_head=known_head)
        head = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
        data = {"ok": result.ok, "rows_checked": result.rows_checked, "first_bad_id": result.first_bad_id,
                "reason": result.reason, "head": head}
        if json_out:
            output.emit_json("audit-verify", data)
        elif result.ok:
            output.console().print(f"audit chain intact: {result.rows_checked} rows; head {head}")
        else:
            output.console().print(f"audit chain BROKEN at row {result.first_bad_id}: {result.reason}")
        if not result.ok:
            raise SystemExit(4)


# --- serve ------------------------------------------------------------------------------------------------


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          demo: Annotated[bool, typer.Option("--demo", help="Make the demo hierarchy first if there is none.")] = False,
          workers: int = 1) -> None:
    """Run the CA's web service (repository, CRLs, OCSP, portal and API)."""
    import uvicorn

    from ..services.ceremony import init_hierarchy
    from ..web.app import create_app

    settings = _settings(demo)
    from ..services.context import build_context

    ctx = build_context(settings, os.environ)
    if demo:
        result = init_hierarchy(ctx, _config(settings), demo=True)
        if not result.already:
            output.console().print(f"Made the demo hierarchy: {', '.join(result.created)}")
    output.console().print(
        f"ecert CA serving on http://{host}:{port}/  (data: {settings.data_dir.resolve()}, "
        f"database: {settings.effective_database_url.split('@')[-1]})\n"
        f"  CA certificates: http://{host}:{port}/repository/\n"
        f"  Subscriber portal: http://{host}:{port}/portal/  (register one with `ecert-ca application add --help`)\n"
        f"  API docs:        http://{host}:{port}/docs\n"
        f"  Certificates and CRLs name {settings.base_url} (set ECERT_BASE_URL to change it)")
    uvicorn.run(create_app(settings, os.environ, context=ctx), host=host, port=port, log_level="info",
                workers=workers)


def _install_extra_commands() -> None:
    """Commands that live in their own modules register here (kept lazy to keep start-up quick)."""
    for module, attr, name in _EXTRA:
        sub = getattr(importlib.import_module(f"ecert.cli.{module}"), attr)
        app.add_typer(sub, name=name)

_EXTRA: list[tuple[str, str, str]] = [("perspective", "app", "perspective"), ("applications", "app", "application"),
                                     ("dcv", "app", "dcv")]
_EXTRA += [("status", "crl_app", "crl"), ("status", "ocsp_app", "ocsp"), ("status", "jobs_app", "jobs")]


def _settings_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
    return f"configuration: ECERT_{field.upper()}: {first.get('msg', 'invalid')}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every expected failure becomes one line on stderr and exit status 1."""
    from pydantic import ValidationError as _ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import ArgumentError, OperationalError

    _install_extra_commands()
    try:
        app(args=argv, standalone_mode=True)
    except EcertError as exc:
        output.fail(str(exc))
    except _ValidationError as exc:
        output.fail(_settings_error(exc))
    except SettingsError as exc:
        output.fail(f"configuration: {str(exc).splitlines()[0]}")
    except ArgumentError as exc:  # NoSuchModuleError is one: an unknown database URL scheme
        output.fail(f"database URL is not usable: {str(exc).splitlines()[0]}")
    except OperationalError as exc:
        output.fail(f"database is not reachable: {str(exc.orig).splitlines()[0] if exc.orig else exc}")

